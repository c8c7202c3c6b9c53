"""Backtests above the synchronous size limit run as jobs (docs/research.md#jobs): ``POST
/v1/backtests`` answers 202 with a job of kind ``backtest`` on the sweeps' queue, run by a real
worker; its result is the document the endpoint answers synchronously; cancel, owner isolation,
idempotent replay (a body past 2.5 MB too) and the per-user throttle."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from django_tasks_db.models import DBTaskResult

from conftest import assert_error
from positions.research.models import ResearchJob
from positions.research.tests.conftest import run_worker

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/v1/backtests"
# IBM over 2010: 252 bars at 5 orders a day; a limit of 100 evaluations makes it a job.
IBM = {"sample": "IBM", "start": "2010-01-01", "end": "2010-12-31", "trigger_pct": 0.035,
       "guard_low": 0.2, "fill": "next_bar"}


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 100


def post(api, body, **headers):
    return api.post(URL, data=json.dumps(body), content_type="application/json", **headers)


def answered_now(api, settings, body) -> dict:
    """The synchronous answer to ``body`` (the limit raised for it)."""
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 10**9
    try:
        r = post(api, body)
        assert r.status_code == 200, r.content
        return r.json()
    finally:
        settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 100


def test_a_large_backtest_runs_as_a_job_and_answers_what_a_small_one_answers(api, settings):
    response = post(api, IBM)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["kind"] == "backtest" and job["status"] == "queued"
    assert job["progress"] == {"done": 0, "total": 252, "fraction": 0.0, "unit": "bars",
                               "cells": None, "exact_reruns": None}
    assert job["params"]["bars"] == 252 and job["params"]["trigger_pct"] == "0.035"
    assert response["Location"] == job["links"]["self"]
    assert job["links"]["self"].endswith(f"/v1/sweeps/{job['id']}")
    assert job["results"] is None and job["links"]["csv"] is None
    assert DBTaskResult.objects.filter(status="READY").count() == 1

    assert run_worker() == 1

    done = api.get(f"/v1/sweeps/{job['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"done": 252, "total": 252, "fraction": 1.0, "unit": "bars",
                                "cells": None, "exact_reruns": None}
    assert done["ranked"] is None and done["links"]["heatmap"] is None
    error = assert_error(api.get(f"/v1/sweeps/{job['id']}/heatmap.png?x=trigger_pct&y=guard_low"),
                         400, "validation_error")
    assert "A backtest job has no heatmap" in error["message"] and "walk" not in str(error)
    assert error["fields"]["kind"].startswith("backtest:")
    assert done["results"] == answered_now(api, settings, IBM)
    assert done["results"]["orders"][0]["kind"] == "opening"
    csv = api.get(done["links"]["csv"])
    assert csv.status_code == 200 and csv.content.decode().startswith("date,")
    assert len(csv.content.decode().splitlines()) == 1 + 252  # the daily equity
    xlsx = api.get(done["links"]["xlsx"])
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert [s["kind"] for s in api.get("/v1/sweeps").json()["sweeps"]] == ["backtest"]


def test_a_posted_series_job_reads_the_request_exactly(api, settings):
    """Prices, dividends and strategy fields with more digits than a float keeps round-trip
    through the stored job to the same answer (decimals with 8 places are exact, not floats)."""
    day0 = np.datetime64("2021-01-04", "D")
    prices = [{"ts": str(day0 + i), "price": round(100 + 9 * np.sin(i / 4) + i * 0.01, 4)}
              for i in range(300)]
    body = {"prices": prices, "dividends": [{"ex_date": str(day0 + 100), "dps": 0.4321}],
            "trigger_pct": 0.03123457, "commission_rate": 0.00012, "min_notional": 0}
    response = post(api, body)
    assert response.status_code == 202, response.content
    assert response.json()["params"]["dividends"] == 1
    assert "prices" not in response.json()["params"]
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["results"] == answered_now(api, settings, body)
    assert done["results"]["metrics"]["dividends"] > 0


def test_cancel_a_queued_backtest_job(api):
    job_id = post(api, IBM).json()["id"]
    body = api.post(f"/v1/sweeps/{job_id}/cancel").json()
    assert body["status"] == "cancelled"
    run_worker()  # finds it cancelled: nothing runs
    body = api.get(f"/v1/sweeps/{job_id}").json()
    assert body["status"] == "cancelled" and body["results"] is None
    assert_error(api.get(f"/v1/sweeps/{job_id}/results.csv"), 409, "sweep_not_finished")


def test_a_running_backtest_job_asked_to_stop_ends_cancelled(api):
    job_id = post(api, IBM).json()["id"]
    ResearchJob.objects.filter(pk=job_id).update(cancel_requested=True)
    run_worker()
    body = api.get(f"/v1/sweeps/{job_id}").json()
    assert body["status"] == "cancelled" and body["error"] == "cancelled on request"
    assert body["results"] is None


def test_a_crashed_backtest_worker_fails_the_job(api, settings):
    job_id = post(api, IBM).json()["id"]
    silent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.VOLBAL_SWEEP_STALE_SECONDS + 1)
    ResearchJob.objects.filter(pk=job_id).update(status="running", heartbeat_at=silent)
    body = api.get(f"/v1/sweeps/{job_id}").json()
    assert body["status"] == "failed" and body["error"].startswith("worker_lost")


def test_another_owners_backtest_job_is_not_found(api, other_api):
    job_id = post(api, IBM).json()["id"]
    run_worker()
    for call in (lambda: other_api.get(f"/v1/sweeps/{job_id}"),
                 lambda: other_api.post(f"/v1/sweeps/{job_id}/cancel"),
                 lambda: other_api.get(f"/v1/sweeps/{job_id}/results.csv"),
                 lambda: other_api.get(f"/v1/sweeps/{job_id}/results.xlsx")):
        assert_error(call(), 404, "sweep_not_found")
    assert other_api.get("/v1/sweeps").json()["sweeps"] == []


def test_a_replayed_post_creates_one_backtest_job(api):
    first = post(api, IBM, HTTP_IDEMPOTENCY_KEY="bt-job-1")
    again = post(api, IBM, HTTP_IDEMPOTENCY_KEY="bt-job-1")
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"] == first.json()["links"]["self"]
    assert ResearchJob.objects.count() == 1 and DBTaskResult.objects.count() == 1
    other = post(api, {**IBM, "trigger_pct": 0.04}, HTTP_IDEMPOTENCY_KEY="bt-job-1")
    assert_error(other, 409, "idempotency_signature_mismatch")
    assert ResearchJob.objects.count() == 1


def test_a_body_past_django_s_memory_limit_with_a_key_is_replayed_too(api, settings):
    """A posted series above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with an Idempotency-Key: the
    key's middleware reads the body (it was a 400 bad_request at Django's limit)."""
    t0 = np.datetime64("2020-01-01T09:30", "m")
    body = {"prices": [{"ts": str(t0 + i), "price": 100 + i % 7} for i in range(70_000)]}
    assert len(json.dumps(body)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    first = post(api, body, HTTP_IDEMPOTENCY_KEY="bt-big")
    assert first.status_code == 202, first.content
    again = post(api, body, HTTP_IDEMPOTENCY_KEY="bt-big")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert ResearchJob.objects.count() == 1


def test_starting_backtest_jobs_is_throttled_per_user(api, other_api, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"expensive": "1/min"})
    assert post(api, IBM).status_code == 202
    assert_error(post(api, IBM), 429, "throttled")
    assert post(other_api, IBM).status_code == 202
    assert ResearchJob.objects.count() == 2


def test_the_schema_documents_the_job_answer(api):
    import yaml

    schema = yaml.safe_load(api.get("/v1/schema/").content)
    op = schema["paths"]["/v1/backtests"]["post"]
    assert op["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Sweep"}
    assert "Sweep" in schema["components"]["schemas"]
    assert "Idempotency-Key" in [p["name"] for p in op["parameters"]]
    assert "backtest" in json.dumps(schema["components"]["schemas"])
