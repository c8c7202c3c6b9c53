"""``fill: limit`` (resting orders, docs/backtests.md#resting-orders-fill-limit) at every entrance:
``POST /v1/backtests``, a sweep with fill as a grid axis (``--grid fill=next_bar,limit`` and
``POST /v1/sweeps``), the walk-forward's ``--fill limit`` (command and API), jobs stored before
``fill`` existed, and bad fill values refused with the existing codes."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from conftest import assert_error
from positions.research.models import ResearchJob
from positions.research.tests.conftest import TINY, run_worker

# Committed for real (no test-wide transaction): the worker runs each task outside one.
pytestmark = pytest.mark.django_db(transaction=True)

IBM_2Y = {"sample": "IBM", "start": "2005-01-01", "end": "2006-12-31", "trigger_pct": 0.04}


@pytest.fixture(autouse=True)
def _one_process(settings):
    settings.VOLBAL_SWEEP_JOBS = 1  # cells in the worker's own process: the suite stays fast


def command(name, *args) -> dict:
    out = io.StringIO()
    call_command(name, *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def post_backtest(api, body):
    return api.post("/v1/backtests", data=json.dumps(body), content_type="application/json")


# --------------------------------------------------------------------------------------------
# POST /v1/backtests
# --------------------------------------------------------------------------------------------


def test_a_limit_backtest_on_a_sample_answers_the_command_with_next_bar_beside_it(api, settings):
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 10**9  # answered at once (504 bars: a job)
    r = post_backtest(api, {**IBM_2Y, "fill": "limit"})
    assert r.status_code == 200, r.content
    doc = r.json()
    assert doc == command("backtest", "--sample", "IBM", "--start", "2005-01-01", "--end",
                          "2006-12-31", "--trigger-pct", "0.04", "--fill", "limit")
    cmp = doc["comparison"]
    assert set(cmp) == {"limit", "next_bar"}
    assert set(cmp["limit"]) == {"total_return", "trades", "avg_slippage_to_trigger_bps"}
    assert cmp["limit"]["total_return"] == doc["metrics"]["total_return"]
    assert cmp["limit"]["trades"] == len(doc["orders"])
    # A resting order fills at its limit or better: never worse than its trigger.
    assert cmp["limit"]["avg_slippage_to_trigger_bps"] <= 0
    # The next_bar figures are those of the same request under next_bar, which has no
    # comparison of its own.
    nb = post_backtest(api, {**IBM_2Y, "fill": "next_bar"}).json()
    assert "comparison" not in nb
    assert cmp["next_bar"]["total_return"] == nb["metrics"]["total_return"]
    assert cmp["next_bar"]["trades"] == len(nb["orders"])
    assert cmp["limit"]["trades"] != cmp["next_bar"]["trades"]


def test_a_limit_backtest_on_posted_closes_fills_where_a_close_reaches_the_rung(api):
    """A posted series has closes only: a bar's open, high and low are its close, so the 97
    buy rung fills at the first close at or under it (96.5), not at 97."""
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    body = {"prices": [{"ts": d, "price": p} for d, p in zip(days, [100, 98, 96.5, 97],
                                                                strict=True)],
            "fill": "limit", "commission_rate": 0, "min_notional": 0, "guard_low": 0,
            "guard_high": 1}
    r = post_backtest(api, body)
    assert r.status_code == 200, r.content
    doc = r.json()
    assert [(o["date"], o["side"], o["price"], o["kind"]) for o in doc["orders"]] == [
        ("2024-01-01", "BUY", 100, "opening"), ("2024-01-03", "BUY", 96.5, "buy_trigger")]
    # the same crossing under next_bar fills a bar later, at 97
    assert doc["comparison"]["next_bar"]["trades"] == 2
    assert doc["comparison"]["limit"]["avg_slippage_to_trigger_bps"] < 0


# --------------------------------------------------------------------------------------------
# Sweeps: fill as a grid axis
# --------------------------------------------------------------------------------------------


def test_a_sweep_command_compares_next_bar_and_limit_in_one_grid():
    doc = command("sweep", "--sample", "IBM", "--start", "2010-01-01", "--end", "2010-12-31",
                  "--grid", "fill=next_bar,limit", "--grid", "trigger_pct=0.03,0.05",
                  "--metric", "total_return", "--jobs", "1", "--no-progress")
    cells = {(t["params"]["fill"], t["params"]["trigger_pct"]): t for t in doc["top"]}
    assert set(cells) == {("next_bar", 0.03), ("next_bar", 0.05), ("limit", 0.03),
                          ("limit", 0.05)}
    # each cell is the backtest of its fill
    for fill in ("next_bar", "limit"):
        bt = command("backtest", "--sample", "IBM", "--start", "2010-01-01", "--end",
                     "2010-12-31", "--trigger-pct", "0.05", "--fill", fill)
        assert cells[(fill, 0.05)]["series"]["IBM"]["total_return"] == pytest.approx(
            bt["metrics"]["total_return"], abs=1e-6)
    assert cells[("limit", 0.05)]["score"] != cells[("next_bar", 0.05)]["score"]


def test_a_sweep_job_with_a_fill_axis_runs_on_the_worker(api):
    body = {**TINY, "grid": {"fill": "next_bar,limit", "trigger_pct": [0.03, 0.05]}}
    response = api.post("/v1/sweeps", body, format="json")
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert sorted((e["params"]["fill"], e["params"]["trigger_pct"]) for e in done["ranked"]) == [
        ("limit", 0.03), ("limit", 0.05), ("next_bar", 0.03), ("next_bar", 0.05)]
    cli = command("sweep", "--sample", "IBM", "--start", "2010-01-01", "--end", "2010-12-31",
                  "--grid", "fill=next_bar,limit", "--grid", "trigger_pct=0.03,0.05",
                  "--metric", "total_return", "--jobs", "1", "--no-progress")
    assert [(e["params"], e["score"]) for e in done["ranked"]] == [
        (t["params"], t["score"]) for t in cli["top"]]
    png = api.get(done["links"]["heatmap"] + "?x=fill&y=trigger_pct")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# Walk-forwards: one fill for the whole run
# --------------------------------------------------------------------------------------------

WF_ARGS = ("--sample", "IBM", "--start", "2008-01-01", "--end", "2010-12-31", "--train", "1y",
           "--test", "1y", "--grid", "trigger_pct=0.03,0.05", "--jobs", "1", "--no-progress")


def test_a_walkforward_runs_with_resting_orders_from_the_command_and_the_api(api):
    limit = command("walkforward", *WF_ARGS, "--fill", "limit")
    market = command("walkforward", *WF_ARGS, "--fill", "next_bar")
    assert len(limit["windows"]) == len(market["windows"]) == 2
    assert limit["out_of_sample"]["metrics"] != market["out_of_sample"]["metrics"]
    response = api.post("/v1/sweeps", {
        "kind": "walkforward", "series": ["IBM"], "start": "2008-01-01", "end": "2010-12-31",
        "train": "1y", "test": "1y", "grid": {"trigger_pct": [0.03, 0.05]}, "fill": "limit"},
        format="json")
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    oos = done["results"]["out_of_sample"]
    assert oos["metrics"] == limit["out_of_sample"]["metrics"]
    assert oos["orders"] == limit["out_of_sample"]["orders"]


def test_a_walkforward_refuses_fill_as_a_grid():
    with pytest.raises(CommandError, match="--grid: fill is a run option of a walk-forward"):
        command("walkforward", *WF_ARGS, "--grid", "fill=next_bar,limit")


# --------------------------------------------------------------------------------------------
# Old jobs, bad values
# --------------------------------------------------------------------------------------------


def test_a_job_stored_before_fill_existed_still_runs_and_reads(api):
    """A job's stored parameters from before ``fill``: read as same_bar, as the run was."""
    response = api.post("/v1/sweeps", TINY, format="json")
    assert response.status_code == 202, response.content
    job = ResearchJob.objects.get()
    assert job.params.pop("fill") == "same_bar"
    job.save(update_fields=["params"])
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{job.pk}").json()
    assert done["status"] == "succeeded", done["error"]
    fresh = api.post("/v1/sweeps", {**TINY, "fill": "same_bar"}, format="json").json()
    assert run_worker() == 1
    again = api.get(f"/v1/sweeps/{fresh['id']}").json()
    assert [e["score"] for e in again["ranked"]] == [e["score"] for e in done["ranked"]]


@pytest.mark.parametrize("body, field", [
    ({**IBM_2Y, "fill": "market"}, "fill"),
    ({**IBM_2Y, "fill": "LIMIT "}, "fill"),
    ({**IBM_2Y, "fill": None}, "fill"),
])
def test_a_bad_fill_is_a_400_naming_it(api, body, field):
    error = assert_error(post_backtest(api, body), 400, "validation_error")
    assert field in error["fields"]


def test_bad_fills_in_sweeps_and_walkforwards_are_refused_and_store_nothing(api):
    wf = {"kind": "walkforward", "series": ["IBM"], "start": "2008-01-01", "end": "2010-12-31",
          "train": "1y", "test": "1y", "grid": {"trigger_pct": [0.03, 0.05]}}
    cases = [
        ({**TINY, "fill": "market"}, "fill"),
        ({**TINY, "grid": {"fill": "next_bar,market"}}, "grid"),
        ({**TINY, "grid": {"fill": "0:1:1"}}, "grid"),
        ({**wf, "fill": "resting"}, "fill"),
        ({**wf, "grid": {"fill": "next_bar,limit"}}, "grid"),
    ]
    for body, field in cases:
        error = assert_error(api.post("/v1/sweeps", body, format="json"), 400,
                             "validation_error")
        assert field in error["fields"], (field, error)
    assert ResearchJob.objects.count() == 0 and DBTaskResult.objects.count() == 0


def test_the_commands_refuse_a_bad_fill():
    with pytest.raises(CommandError, match="--fill"):
        command("backtest", "--sample", "IBM", "--fill", "market")
    with pytest.raises(CommandError, match="--grid: fill: fill must be one of: same_bar, "
                                           "next_bar, limit"):
        command("sweep", "--sample", "IBM", "--grid", "fill=next_bar,market", "--jobs", "1",
                "--no-progress")


def test_a_sweep_reads_a_csv_s_range_when_a_cell_rests_limit_orders(tmp_path):
    """The 97 buy rung is reached by the second bar's low, never by a close: the limit cell
    (the grid's value in any case) fills there, so the CSV's Low was read."""
    f = tmp_path / "x.csv"
    f.write_text("Date,Open,High,Low,Close\n2024-01-02,100,100,100,100\n"
                 "2024-01-03,99,100,96,98\n2024-01-04,98,99,98,98\n")
    doc = command("sweep", "--csv", str(f), "--grid", "fill=next_bar,LIMIT", "--grid",
                  "trigger_pct=0.03", "--min-notional", "0", "--commission-rate", "0",
                  "--metric", "total_return", "--jobs", "1", "--no-progress", "--exact")
    buys = {t["params"]["fill"]: t["series"]["x.csv"]["buys"] for t in doc["top"]}
    assert buys == {"limit": 2, "next_bar": 1}  # the opening, and the limit's fill at 97


def test_a_hot_limit_backtest_is_a_job_and_a_limit_portfolio_beyond_the_limit_a_413(api):
    # an attacker's find: this 109-byte request held a server process for 5.6 s of CPU
    # (534,525 evaluations, the estimate 3,270), a 4-holding portfolio for 8 s
    hot = {"trigger_pct": 0.00000001, "max_orders_per_day": 100000, "start_weight": 0.99,
           "fill": "limit"}
    job = post_backtest(api, {"sample": "AAPL", **hot})
    assert job.status_code == 202, job.content
    assert job.json()["kind"] == "backtest" and job["Location"]
    body = {"portfolio": {"holdings": [{"sample": s, "weight": 0.25}
                                       for s in ("IBM", "MSFT", "AAPL", "GOOG")]}, **hot}
    refused = assert_error(post_backtest(api, body), 413, "portfolio_too_large")
    assert "evaluate the strategy" in refused["message"]
    same_bar = post_backtest(api, {"sample": "AAPL", **hot, "fill": "same_bar"})
    assert same_bar.status_code == 200  # one evaluation a bar: answered at once


def test_derivations_past_the_limit_make_a_job_or_a_413_though_the_estimate_passed(
        api, settings, monkeypatch):
    # the estimate of a limit run's derivations is no bound (a reviewer's find): with it
    # passing every request, the derivations are capped as they run
    from positions.strategy.backtest import budget

    monkeypatch.setattr(budget, "LIMIT_EVALUATIONS_PER_CHANGE", 0)
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 5_000
    hot = {"trigger_pct": 0.00000001, "max_orders_per_day": 100000, "start_weight": 0.99,
           "fill": "limit"}
    job = post_backtest(api, {"sample": "AAPL", **hot})
    assert job.status_code == 202, job.content  # 3,270 bars pass 5,000; their pairs do not
    assert ResearchJob.objects.filter(pk=job.json()["id"]).exists()
    body = {"portfolio": {"holdings": [{"sample": "IBM", "weight": 0.5}]}, **hot,
            "start": "2010-01-01", "end": "2015-12-31"}
    refused = assert_error(post_backtest(api, body), 413, "portfolio_too_large")
    assert "resting limit orders" in refused["message"]
    small = post_backtest(api, {"sample": "IBM", "start": "2010-01-01", "end": "2010-01-31",
                                "fill": "limit"})
    assert small.status_code == 200, small.content  # within the cap: answered at once


def test_a_limit_backtest_above_the_synchronous_limit_runs_as_a_job(api, settings):
    """As a job (the evaluation limit lowered) the answer is the synchronous one, its
    comparison included; a backtest job stored before ``fill`` (its options without it) runs
    as same_bar."""
    body = {"sample": "IBM", "start": "2010-01-01", "end": "2010-12-31", "fill": "limit"}
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 100
    job = post_backtest(api, body)
    assert job.status_code == 202, job.content
    old = post_backtest(api, {**body, "fill": "same_bar"}).json()
    stored = ResearchJob.objects.get(pk=old["id"])
    assert stored.state["options"].pop("fill") == "same_bar"
    stored.save(update_fields=["state"])
    assert run_worker() == 2
    done = api.get(f"/v1/sweeps/{job.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    old_done = api.get(f"/v1/sweeps/{old['id']}").json()
    assert old_done["status"] == "succeeded", old_done["error"]
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 10**9
    now = post_backtest(api, body)
    assert now.status_code == 200, now.content
    assert done["results"] == now.json()
    assert set(done["results"]["comparison"]) == {"limit", "next_bar"}
    assert old_done["results"] == post_backtest(api, {**body, "fill": "same_bar"}).json()


def test_a_limit_backtest_whose_amounts_outgrow_exact_decimals_is_a_clean_400(api, settings):
    """A zigzag 100/200 compounds past 28 significant digits: the limit run (its next_bar
    comparison and its metrics included) answers the same 400 the same_bar run does, naming
    the size of the result, not the cash."""
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 10**9
    start = dt.date(2000, 1, 3)
    body = {"prices": [{"ts": (start + dt.timedelta(days=i)).isoformat(),
                        "price": 100 if i % 2 == 0 else 200} for i in range(3400)]}
    for fill in ("same_bar", "limit"):
        r = post_backtest(api, {**body, "fill": fill})
        error = assert_error(r, 400, "validation_error")
        assert "28 significant digits" in str(error), (fill, error)
        assert "cash and prices are too large" not in str(error)
