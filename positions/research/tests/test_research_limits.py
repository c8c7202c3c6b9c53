"""What one request may ask of the research jobs: numbers bounded before any arithmetic (a
``1e999999`` is refused at once, naming the field), window lengths and dividend entries refused
as 400s naming the field (never a 500), the quotas (runs per job; queued jobs and runs per
user), the command that purges old jobs, the research jobs' own queue, and the schema's 401s of
the job files."""

from __future__ import annotations

import datetime as dt
import io
import json
import time

import pytest
import yaml
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from conftest import assert_error
from positions.research.models import JobStatus, ResearchJob
from positions.research.tests.conftest import TINY, run_worker
from positions.workflows.schedule import trade_cycle_run

pytestmark = pytest.mark.django_db(transaction=True)

# Far below the 44 s of CPU one such request cost when the digits were not bounded first.
FAST = 2.0


def post_raw(api, url: str, text: str):
    """POST a body written by hand (JSON numbers such as 1e999999 kept as written)."""
    started = time.monotonic()
    response = api.generic("POST", url, text, content_type="application/json")
    return response, time.monotonic() - started


def sweep_text(grid: str, **more) -> str:
    extra = "".join(f', "{k}": {json.dumps(v)}' for k, v in more.items())
    return ('{"kind": "sweep", "series": ["IBM"], "start": "2010-01-01", "end": "2010-03-31", '
            f'"grid": {grid}{extra}}}')


@pytest.mark.parametrize("grid", ['{"sizing": ["proportional", "=HYPERLINK(\\"x\\")"]}',
                                  '{"sizing": "=1+1,proportional"}'])
def test_a_grid_choice_is_one_of_its_values_before_it_is_queued(api, grid):
    """A choice field's grid values are its choices, refused before the job is queued (they
    reached the job's results.csv and .xlsx as text; a formula there is escaped too)."""
    response, _ = post_raw(api, "/v1/sweeps", sweep_text(grid))
    body = assert_error(response, 400, "validation_error")
    assert body["fields"]["grid"].startswith("sizing") and "proportional" in body["fields"]["grid"]
    assert ResearchJob.objects.count() == 0 and DBTaskResult.objects.count() == 0


# --- numbers bounded before any arithmetic --------------------------------------------------


@pytest.mark.parametrize("grid, said", [
    ('{"min_notional": "0:1e999999:1"}', "digits before the point"),
    ('{"trigger_pct": "0:1:1e-999999"}', "digits after the point"),
    ('{"min_notional": [1e999999, 1]}', "digits before the point"),
    ('{"trigger_pct": [0.05, 1e-999999]}', "digits after the point"),
    ('{"trigger_pct": ["0.05", "0.0000000000000000000000000000000001"]}',
     "digits after the point"),
    ('{"min_notional": "0,' + "1" * 100 + '"}', "longer than 64 characters"),
])
def test_a_sweep_grid_number_is_bounded_before_any_arithmetic(api, grid, said):
    response, seconds = post_raw(api, "/v1/sweeps", sweep_text(grid))
    body = assert_error(response, 400, "validation_error")
    assert seconds < FAST
    assert "grid" in body["fields"] and said in body["fields"]["grid"]
    name = json.loads(grid.replace("1e999999", "1").replace("1e-999999", "1")).popitem()[0]
    assert body["fields"]["grid"].startswith(name)  # which grid field
    assert ResearchJob.objects.count() == 0 and DBTaskResult.objects.count() == 0


def test_a_range_as_a_strategy_field_is_refused_at_once(api):
    response, seconds = post_raw(api, "/v1/sweeps", sweep_text(
        '{"guard_low": "0.1,0.2"}', trigger_pct="0:1:1e-999999"))
    body = assert_error(response, 400, "validation_error")
    assert seconds < FAST and "trigger_pct" in body["fields"]


def test_a_grid_within_the_bounds_is_still_accepted(api):
    response, _ = post_raw(api, "/v1/sweeps", sweep_text(
        '{"min_notional": [0, 100.5, 1e3], "trigger_pct": "0.02:0.04:0.01"}'))
    assert response.status_code == 202, response.content
    assert response.json()["params"]["grid"] == [["min_notional", "0,100.5,1000"],
                                                 ["trigger_pct", "0.02:0.04:0.01"]]


def test_a_dividend_amount_is_bounded_too(api):
    text = ('{"prices": [{"ts": "2024-01-02", "price": 100}, {"ts": "2024-01-03", "price": 101}],'
            ' "dividends": [{"ex_date": "2024-01-03", "dps": 1e999999}]}')
    response, seconds = post_raw(api, "/v1/backtests", text)
    body = assert_error(response, 400, "validation_error")
    assert seconds < FAST and "dividends[0].dps" in body["fields"]["dividends"]


# --- 400s naming the field, not 500s --------------------------------------------------------


@pytest.mark.parametrize("field", ["train", "test"])
def test_a_walk_forward_window_too_long_for_the_calendar_is_a_400(api, field):
    lengths = {"train": "3y", "test": "1y", field: "99999999999999d"}
    body = {**TINY, "kind": "walkforward", "end": "2012-12-31", **lengths}
    error = assert_error(api.post("/v1/sweeps", body, format="json"), 400, "validation_error")
    assert set(error["fields"]) == {field}
    assert "at most 36,600 days" in error["fields"][field]


@pytest.mark.parametrize("second, said", [
    ({"ex_date": "2024-01-03"}, "dividends[1].dps: This field is required."),
    ({"dps": 1}, "dividends[1].ex_date: This field is required."),
    ({"ex_date": "2024-01-03", "dps": "x"}, "dividends[1].dps: 'x' is not a number"),
    ({"ex_date": 20240103, "dps": 1}, "dividends[1].ex_date: expected an ISO date"),
    ({"ex_date": "2024-01-03", "dps": 1, "when": 1}, "dividends[1]: unknown field 'when'"),
    ("2024-01-03", "dividends[1] must be an object"),
])
def test_a_bad_dividend_after_the_first_is_a_400_naming_it(api, second, said):
    body = {"prices": [{"ts": "2024-01-02", "price": 100}, {"ts": "2024-01-03", "price": 101}],
            "dividends": [{"ex_date": "2024-01-02", "dps": 1}, second]}
    error = assert_error(api.post("/v1/backtests", body, format="json"), 400,
                         "validation_error")
    assert error["fields"]["dividends"].startswith(said)


# --- quotas ---------------------------------------------------------------------------------


def test_a_job_may_run_at_most_the_configured_backtests(api, settings):
    settings.VOLBAL_RESEARCH_MAX_JOB_RUNS = 7  # TINY: 4 cells and 4 exact re-runs = 8 runs
    error = assert_error(api.post("/v1/sweeps", TINY, format="json"), 400, "validation_error")
    assert "8 backtests" in error["fields"]["grid"] and "at most 7" in error["fields"]["grid"]
    assert "VOLBAL_RESEARCH_MAX_JOB_RUNS" in error["message"]
    settings.VOLBAL_RESEARCH_MAX_JOB_RUNS = 8
    assert api.post("/v1/sweeps", TINY, format="json").status_code == 202


def test_a_user_may_have_so_many_jobs_queued_or_running(api, other_api, settings):
    settings.VOLBAL_RESEARCH_MAX_ACTIVE_JOBS = 2
    first = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    assert api.post("/v1/sweeps", TINY, format="json").status_code == 202
    error = assert_error(api.post("/v1/sweeps", TINY, format="json"), 429,
                         "research_quota_exceeded")
    assert "2 research jobs" in error["message"]
    assert "VOLBAL_RESEARCH_MAX_ACTIVE_JOBS" in error["message"]
    # a backtest job counts too
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 100
    backtest = {"sample": "IBM", "start": "2010-01-01", "end": "2010-12-31"}
    assert_error(api.post("/v1/backtests", backtest, format="json"), 429,
                 "research_quota_exceeded")
    # another user's room is their own; a finished job frees its room
    assert other_api.post("/v1/sweeps", TINY, format="json").status_code == 202
    api.post(f"/v1/sweeps/{first}/cancel")
    assert api.post("/v1/backtests", backtest, format="json").status_code == 202
    assert ResearchJob.objects.count() == 4


def test_a_user_may_have_so_many_runs_still_to_do(api, settings):
    settings.VOLBAL_RESEARCH_MAX_QUEUED_RUNS = 12  # TINY is 8 runs
    assert api.post("/v1/sweeps", TINY, format="json").status_code == 202
    error = assert_error(api.post("/v1/sweeps", TINY, format="json"), 429,
                         "research_quota_exceeded")
    assert "8 backtests still to run" in error["message"] and "12" in error["message"]
    assert "VOLBAL_RESEARCH_MAX_QUEUED_RUNS" in error["message"]
    assert run_worker() == 1  # done: its runs no longer count
    assert api.post("/v1/sweeps", TINY, format="json").status_code == 202


@pytest.mark.postgres
def test_concurrent_requests_cannot_both_take_the_last_room(api, user, settings):
    """Two connections create jobs at once with room for one: the owner's row lock makes the
    second wait for the first and then see its job."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from conftest import client_for

    settings.VOLBAL_RESEARCH_MAX_ACTIVE_JOBS = 1

    def post(_):
        try:
            return client_for(user).post("/v1/sweeps", TINY, format="json").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(post, range(4)))
    assert statuses == [202, 429, 429, 429]
    assert ResearchJob.objects.count() == 1


# --- the research queue ---------------------------------------------------------------------


def test_research_jobs_have_their_own_queue_which_the_cycle_worker_does_not_serve(api):
    """A worker of the default queue (the one the trade cycle runs on) takes no research job,
    so a long sweep cannot delay a cycle; the research queue's worker runs it."""
    job = api.post("/v1/sweeps", TINY, format="json").json()["id"]
    assert DBTaskResult.objects.get().queue_name == "research"
    assert trade_cycle_run.queue_name == "default"
    assert run_worker("default") == 0
    assert ResearchJob.objects.get(pk=job).status == JobStatus.QUEUED
    assert run_worker("research") == 1
    assert ResearchJob.objects.get(pk=job).status == JobStatus.SUCCEEDED


# --- purging old jobs -----------------------------------------------------------------------


def test_purge_deletes_finished_jobs_older_than_the_given_days(api):
    ids = [api.post("/v1/sweeps", TINY, format="json").json()["id"] for _ in range(3)]
    old, recent, queued = ids
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    ResearchJob.objects.filter(pk=old).update(status="failed", finished_at=long_ago,
                                              created_at=long_ago)
    ResearchJob.objects.filter(pk=recent).update(status="failed",
                                                 finished_at=dt.datetime.now(dt.UTC))
    ResearchJob.objects.filter(pk=queued).update(created_at=long_ago)  # old, but not finished
    out = io.StringIO()
    call_command("purge_research_jobs", "--older-than", "30", stdout=out)
    assert out.getvalue().startswith("1 finished research job(s) older than 30 day(s) deleted")
    assert set(ResearchJob.objects.values_list("id", flat=True)) == {recent, queued}
    assert api.get(f"/v1/sweeps/{old}").status_code == 404
    with pytest.raises(CommandError, match="--older-than must be between 0 and"):
        call_command("purge_research_jobs", "--older-than", "-1")


# --- the schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["heatmap.png", "results.csv", "results.xlsx"])
def test_the_job_files_document_their_401(client, path):
    schema = yaml.safe_load(client.get("/v1/schema/").content)
    responses = schema["paths"][f"/v1/sweeps/{{id}}/{path}"]["get"]["responses"]
    assert "401" in responses
