"""Sweeps and walk-forwards as background jobs (docs/research.md#jobs): the API end to end with a
real worker run (django-tasks-db's own Worker claiming the task from the database and running it),
cancel, owner isolation, idempotent replay, the heatmap, the crash reaper, the admin's apply."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from conftest import assert_error
from events.models import Event
from positions.research.models import ResearchJob
from positions.research.tests.conftest import TINY, run_worker

# Committed for real (no test-wide transaction), as in production: the worker closes
# connections left inside a transaction between tasks, and runs each task outside one.
pytestmark = pytest.mark.django_db(transaction=True)

@pytest.fixture(autouse=True)
def _one_process(settings):
    settings.VOLBAL_SWEEP_JOBS = 1  # cells in the worker's own process: the suite stays fast


def test_a_sweep_runs_on_the_worker_end_to_end(api):
    response = api.post("/v1/sweeps", TINY, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["progress"]["done"] == 0
    assert body["progress"]["total"] == (4 + 4) * 1  # 4 cells, the top 4 re-run exact
    # ... and it says so: the runs counted as cells and exact re-runs
    assert body["progress"]["cells"] == {"done": 0, "total": 4}
    assert body["progress"]["exact_reruns"] == {"done": 0, "total": 4}
    assert body["ranked"] is None and body["links"]["csv"] is None
    assert DBTaskResult.objects.filter(status="READY").count() == 1

    assert run_worker() == 1

    done = api.get(f"/v1/sweeps/{body['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"done": 8, "total": 8, "fraction": 1.0, "unit": "runs",
                                "cells": {"done": 4, "total": 4},
                                "exact_reruns": {"done": 4, "total": 4}}
    ranked = done["ranked"]
    assert [e["rank"] for e in ranked] == [1, 2, 3, 4]
    scores = [e["score"] for e in ranked]
    assert scores == sorted(scores, reverse=True)
    assert set(ranked[0]["params"]) == {"trigger_pct", "guard_low"}
    assert set(done["results"]["benchmarks"]["IBM"]) == {"held_mix", "stock_held", "fixed_mix"}
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"

    csv = api.get(done["links"]["csv"])
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    lines = csv.content.decode().splitlines()
    assert lines[0].startswith("cell,series,trigger_pct,guard_low")
    assert len(lines) == 1 + 4 + 4  # every cell on floats, then the exact re-runs
    xlsx = api.get(done["links"]["xlsx"])
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

    png = api.get(done["links"]["heatmap"] + "?x=guard_low&y=trigger_pct&metric=cagr")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    bad = api.get(f"/v1/sweeps/{body['id']}/heatmap.png?x=sizing")
    assert_error(bad, 400, "validation_error")

    listed = api.get("/v1/sweeps").json()
    assert [s["id"] for s in listed["sweeps"]] == [body["id"]]


def test_a_walkforward_runs_on_the_worker(api):
    response = api.post("/v1/sweeps", {
        "kind": "walkforward", "series": ["IBM"], "start": "2008-01-01", "end": "2010-12-31",
        "train": "1y", "test": "1y", "grid": {"trigger_pct": [0.03, 0.05]}}, format="json")
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    # 2 windows, each sweeping its 2 cells and re-running its top 2 exact
    assert done["progress"] == {"done": 8, "total": 8, "fraction": 1.0, "unit": "runs",
                                "cells": {"done": 4, "total": 4},
                                "exact_reruns": {"done": 4, "total": 4}}
    assert len(done["ranked"]) == 2  # windows: train 2008 -> test 2009, train 2009 -> test 2010
    assert "out_of_sample" in done["results"]
    assert done["links"]["heatmap"] is None
    assert api.get(done["links"]["csv"]).status_code == 200
    error = assert_error(api.get(f"/v1/sweeps/{done['id']}/heatmap.png"), 400,
                         "validation_error")
    assert "A walk-forward has no heatmap" in error["message"]
    assert error["fields"]["kind"].startswith("walkforward:")


def test_bad_requests_are_refused_and_store_nothing(api):
    cases = [
        ({**TINY, "kind": "grid"}, "kind"),
        ({**TINY, "kind": "backtest"}, "kind"),  # a backtest job starts at POST /v1/backtests
        ({**TINY, "series": ["ZZZ"]}, "series"),
        ({**TINY, "grid": {"colour": "1,2"}}, "grid"),
        ({**TINY, "grid": {"trigger_pct": "0.1:0.01:0.01"}}, "grid"),
        ({**TINY, "grid": {"trigger_pct": "0:1:1e-999999999"}}, "grid"),  # was a 500
        ({**TINY, "grid": {"trigger_pct": "0:1e5000:1"}}, "grid"),  # was a 500 (5,000 digits)
        ({**TINY, "grid": {"trigger_pct": "0:1:1e-5000"}}, "grid"),  # was a 500
        ({**TINY, "metric": "luck"}, "metric"),
        ({**TINY, "trigger_pct": 2}, "trigger_pct"),
        ({**TINY, "cash": 0}, "cash"),
        ({**TINY, "kind": "walkforward", "train": "soon", "test": "1y"}, "train"),
        ({**TINY, "kind": "walkforward", "train": "1y", "test": "1y"}, "train"),  # 1 year of data
        ({**TINY, "start": "2030-01-01"}, "series"),  # no bar left
        ({**TINY, "start": "someday"}, "start"),
        ({"kind": "walkforward", "series": ["IBM"], "train": "1", "test": "1",
          "grid": {"trigger_pct": "0.001:0.999:0.001"}}, "grid"),  # billions of runs
    ]
    for body, field in cases:
        response = api.post("/v1/sweeps", body, format="json")
        error = assert_error(response, 400, "validation_error")
        assert field in error["fields"], (field, error)
    assert ResearchJob.objects.count() == 0 and DBTaskResult.objects.count() == 0


def test_cancel_a_queued_sweep_before_a_worker_takes_it(api):
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    response = api.post(f"/v1/sweeps/{sweep_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    run_worker()  # the task finds its job cancelled and does nothing
    body = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert body["status"] == "cancelled" and body["ranked"] is None
    assert body["progress"]["done"] == 0
    assert_error(api.get(f"/v1/sweeps/{sweep_id}/results.csv"), 409, "sweep_not_finished")


def test_a_running_sweep_asked_to_stop_ends_cancelled(api):
    """The cancel of a running job sets cancel_requested (as POST .../cancel does when the job
    is running); the worker checks it at its progress ticks and ends the job cancelled."""
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    ResearchJob.objects.filter(pk=sweep_id).update(cancel_requested=True)
    run_worker()
    body = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert body["status"] == "cancelled" and body["error"] == "cancelled on request"
    assert body["progress"]["done"] < body["progress"]["total"] and body["ranked"] is None


def test_cancelling_a_running_sweep_asks_it_to_stop(api):
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    ResearchJob.objects.filter(pk=sweep_id).update(status="running",
                                                   heartbeat_at=dt.datetime.now(dt.UTC))
    body = api.post(f"/v1/sweeps/{sweep_id}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_a_crashed_worker_does_not_leave_its_sweep_running(api, settings):
    """A worker killed mid-run stops writing heartbeats; the next read (or worker) fails the
    job instead of leaving it RUNNING for ever."""
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    silent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.VOLBAL_SWEEP_STALE_SECONDS + 1)
    ResearchJob.objects.filter(pk=sweep_id).update(status="running", heartbeat_at=silent)
    body = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert body["status"] == "failed" and body["error"].startswith("worker_lost")
    fresh = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    ResearchJob.objects.filter(pk=fresh).update(status="running",
                                                heartbeat_at=dt.datetime.now(dt.UTC))
    assert api.get(f"/v1/sweeps/{fresh}").json()["status"] == "running"


def test_another_owners_sweep_is_not_found(api, other_api):
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    run_worker()
    for call in (lambda: other_api.get(f"/v1/sweeps/{sweep_id}"),
                 lambda: other_api.post(f"/v1/sweeps/{sweep_id}/cancel"),
                 lambda: other_api.get(f"/v1/sweeps/{sweep_id}/heatmap.png"),
                 lambda: other_api.get(f"/v1/sweeps/{sweep_id}/results.csv"),
                 lambda: other_api.get(f"/v1/sweeps/{sweep_id}/results.xlsx")):
        assert_error(call(), 404, "sweep_not_found")
    assert other_api.get("/v1/sweeps").json()["sweeps"] == []


def test_a_replayed_post_starts_one_job(api):
    first = api.post("/v1/sweeps", TINY, format="json", HTTP_IDEMPOTENCY_KEY="sw-1")
    again = api.post("/v1/sweeps", TINY, format="json", HTTP_IDEMPOTENCY_KEY="sw-1")
    assert first.status_code == 202 and again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert first["Location"] == first.json()["links"]["self"]
    assert again["Location"] == first["Location"]  # the replay points at the same job
    assert again.json()["id"] == first.json()["id"]
    assert ResearchJob.objects.count() == 1 and DBTaskResult.objects.count() == 1
    other = api.post("/v1/sweeps", {**TINY, "metric": "cagr"}, format="json",
                     HTTP_IDEMPOTENCY_KEY="sw-1")
    assert_error(other, 409, "idempotency_signature_mismatch")


def test_starting_sweeps_is_throttled_per_user(api, other_api, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"expensive": "1/min"})
    assert api.post("/v1/sweeps", TINY, format="json").status_code == 202
    assert_error(api.post("/v1/sweeps", TINY, format="json"), 429, "throttled")
    assert api.get("/v1/sweeps").status_code == 200  # polling is not throttled
    assert other_api.post("/v1/sweeps", TINY, format="json").status_code == 202


def test_the_admin_applies_a_cell_to_a_position(api, client, django_user_model, make_position):
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    run_worker()
    sweep = ResearchJob.objects.get(pk=sweep_id)
    best = sweep.results["top"][0]
    position = make_position(trigger_pct="0.1", guard_low="0.1")
    operator = django_user_model.objects.create_user("op", password="pw-op-123", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_researchjob", "change_position", "view_position"]))
    client.force_login(operator)

    page = client.get(reverse("admin:research_researchjob_change", args=[quote(sweep_id)]))
    assert page.status_code == 200
    html = page.content.decode()
    heatmap = reverse("admin:research_researchjob_heatmap", args=[quote(sweep_id)])
    url = reverse("admin:research_researchjob_apply", args=[quote(sweep_id), best["cell"]])
    assert heatmap in html and url in html and "apply this cell to a position" in html
    assert client.get(heatmap).content[:8] == b"\x89PNG\r\n\x1a\n"
    listing = client.get(reverse("admin:research_researchjob_changelist")).content.decode()
    assert sweep_id in listing and "cells 4/4, exact re-runs 4/4 (100%)" in listing

    assert client.get(url).status_code == 200
    response = client.post(url, {"position": position.pk})
    assert response.status_code == 302
    position.refresh_from_db()
    assert float(position.trigger_pct) == best["params"]["trigger_pct"]
    assert float(position.guard_low) == best["params"]["guard_low"]
    event = Event.objects.filter(position_id=position.pk, type="config_changed").get()
    assert sweep_id in event.message and f"cell {best['cell']}" in event.message
    assert event.inputs["origin"]["sweep_id"] == sweep_id
    assert event.inputs["origin"]["cell"] == best["cell"]
    assert event.actor_source == "admin"


def test_applying_a_cell_needs_the_change_permission(api, client, django_user_model,
                                                     make_position):
    sweep_id = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    run_worker()
    position = make_position()
    viewer = django_user_model.objects.create_user("viewer", password="pw-v-123", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_researchjob"))
    client.force_login(viewer)
    response = client.post(reverse("admin:research_researchjob_apply", args=[quote(sweep_id), 0]),
                           {"position": position.pk})
    assert response.status_code == 403
    assert not Event.objects.filter(position_id=position.pk, type="config_changed").exists()
