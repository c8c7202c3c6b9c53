"""A portfolio swept as a series is (docs/backtests.md#portfolio-backtests): ``manage.py sweep
--portfolio`` and ``POST /v1/sweeps`` with ``portfolio``; every cell is the portfolio backtest
of its configuration (the best cell's figures are ``backtest --portfolio``'s with its values),
ranked on the portfolio's figures, against the portfolio's benchmarks; refusals with the
backtest's codes."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django_tasks_db.models import DBTaskResult

from conftest import assert_error
from positions.marketdata.tests.recorded import check, expect
from positions.research.models import ResearchJob
from positions.research.tests.conftest import run_worker
from positions.research.tests.test_backtest_portfolio_api import EXCHANGES
from positions.research.tests.test_history import alpaca  # noqa: F401 (the recorded feed)
from positions.strategy.backtest import engine

PORTFOLIO = ["--portfolio", "IBM=0.4,MSFT=0.4", "--rebalance", "quarterly", "--cash", "100000",
             "--start", "2011-01-01"]
GRID = ["--grid", "trigger_pct=0.02,0.04", "--grid", "guard_low=0.2,0.3"]


def command(name, *args) -> dict:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def backtest_doc(**fields) -> dict:
    args = [a for k, v in fields.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    return json.loads(command("backtest", *PORTFOLIO, *args, "--json"))


@pytest.fixture(scope="module")
def swept():
    return json.loads(command("sweep", *PORTFOLIO, *GRID, "--jobs", "1", "--no-progress",
                              "--json"))


def test_every_cell_is_the_portfolio_backtest_of_its_values(swept):
    assert swept["series"] == ["portfolio"]
    assert set(swept["benchmarks"]["portfolio"]) == {"held", "fixed_mix"}
    top = swept["top"]
    assert len(top) == 4
    best = top[0]
    doc = backtest_doc(**best["params"])
    assert best["params"] == swept["best"]["params"]
    m = best["series"]["portfolio"]
    for key in ("total_return", "sharpe", "cagr", "max_drawdown"):
        assert m[key] == pytest.approx(doc["metrics"][key], abs=1e-6), key
    assert m["final_value"] == pytest.approx(doc["metrics"]["final_value"], abs=1e-6)
    assert m["buys"] + m["sells"] == sum(h["orders"] for h in doc["holdings"])
    held = doc["benchmarks"]["held"]["total_return"]
    assert m["excess_over_held_mix"] == pytest.approx(doc["metrics"]["total_return"] - held,
                                                      abs=2e-6)
    assert swept["benchmarks"]["portfolio"]["held"]["total_return"] == pytest.approx(held,
                                                                                    abs=1e-6)
    # the ranking is on the portfolio's Sharpe, best first
    sharpes = [c["series"]["portfolio"]["sharpe"] for c in top]
    assert sharpes == sorted(sharpes, reverse=True)
    assert sharpes[-1] < sharpes[0]


def test_the_table_names_the_portfolios_benchmarks():
    out = command("sweep", *PORTFOLIO, *GRID, "--jobs", "1", "--no-progress")
    assert "over 1 series (portfolio)" in out and "cells on exact (Decimal)" in out
    assert "Benchmarks on portfolio: held at weights sharpe" in out
    assert "fixed mix sharpe" in out


@pytest.mark.parametrize("args, message", [
    (["--portfolio", "IBM=0.4,IBM=0.4"], "duplicate_holding: "),
    (["--portfolio", "IBM=0.7,MSFT=0.7"], "invalid_weights: "),
    (["--portfolio", "IBM=0.4", "--rebalance", "band"], "invalid_rebalance: "),
    (["--portfolio", "IBM=0.4", "--sample", "MSFT"], "--portfolio runs alone"),
    (["--portfolio", "IBM=0.000000000001"], "invalid_weights: portfolio.holdings[0].weight "
     "(IBM): weight × cash is 0.00000001; it must be at least 0.000001"),
])
@pytest.mark.parametrize("name", ["sweep", "walkforward"])
def test_command_refusals(name, args, message):
    extra = ["--train", "2y", "--test", "1y"] if name == "walkforward" else []
    with pytest.raises(CommandError) as exc:
        command(name, *args, *GRID, *extra, "--jobs", "1", "--no-progress")
    assert str(exc.value).startswith(message)


BODY = {"kind": "sweep", "portfolio": {"holdings": [{"sample": "IBM", "weight": 0.4},
                                                    {"sample": "MSFT", "weight": 0.4}],
                                       "rebalance": "quarterly"},
        "cash": 100000, "start": "2011-01-01",
        "grid": {"trigger_pct": [0.02, 0.04], "guard_low": [0.2, 0.3]}}


@pytest.mark.django_db(transaction=True)
def test_the_api_runs_a_portfolio_sweep_on_the_worker(api, settings, swept):
    settings.VOLBAL_SWEEP_JOBS = 1
    response = api.post("/v1/sweeps", BODY, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["params"]["portfolio"]["rebalance"] == "quarterly"
    assert body["progress"]["cells"] == {"done": 0, "total": 4}
    assert body["progress"]["exact_reruns"] == {"done": 0, "total": 0}  # cells run exact
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{body['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    # the command's ranking and figures
    assert [c["params"] for c in done["ranked"]] == [c["params"] for c in swept["top"]]
    assert done["ranked"][0]["score"] == pytest.approx(swept["top"][0]["score"], abs=1e-9)
    assert set(done["results"]["benchmarks"]["portfolio"]) == {"held", "fixed_mix"}
    xlsx = api.get(done["links"]["xlsx"])
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    png = api.get(done["links"]["heatmap"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change, code, field", [
    ({"holdings": [{"sample": "IBM", "weight": 0.4}, {"sample": "ibm", "weight": 0.1}]},
     "duplicate_holding", "portfolio.holdings[1]"),
    ({"holdings": [{"sample": "IBM", "weight": 0.7}, {"sample": "MSFT", "weight": 0.7}]},
     "invalid_weights", "portfolio"),
    ({"holdings": [{"sample": "NOPE", "weight": 0.4}]}, "unknown_sample",
     "portfolio.holdings[0]"),
    ({"rebalance": "weekly"}, "invalid_rebalance", "portfolio.rebalance"),
    ({"holdings": [{"sample": "IBM", "weight": "0.000000000001"}]}, "invalid_weights",
     "portfolio.holdings[0].weight"),
    ({"holdings": [{"series": [{"ts": "2020-01-02", "price": 1}], "weight": 0.4}]},
     "validation_error", "portfolio.holdings[0]"),
])
@pytest.mark.parametrize("kind", ["sweep", "walkforward"])
def test_api_refusals_store_nothing(api, change, code, field, kind):
    response = api.post("/v1/sweeps", {**BODY, "kind": kind, "train": "2y", "test": "1y",
                                       "portfolio": {**BODY["portfolio"], **change}},
                        format="json")
    error = assert_error(response, 400, code)
    assert field in error["fields"], error
    assert ResearchJob.objects.count() == 0 and DBTaskResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("extra, field", [
    ({"series": ["IBM"]}, "portfolio"),
    ({"portfolio": "IBM=0.4"}, "portfolio"),
])
def test_api_refuses_a_portfolio_beside_series_or_not_an_object(api, extra, field):
    response = api.post("/v1/sweeps", {**BODY, **extra}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"], error


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------

WF = ["--portfolio", "IBM=0.4,MSFT=0.4", "--rebalance", "quarterly", "--cash", "100000",
      "--start", "2008-01-01", "--train", "2y", "--test", "1y", "--jobs", "1", "--no-progress"]


def test_a_one_cell_walkforward_is_the_portfolio_backtest_of_its_span():
    """One cell: every window picks it, so the stitched out-of-sample run is the portfolio
    backtest over the test windows' span with that configuration, to the micro."""
    doc = json.loads(command("walkforward", *WF, "--grid", "trigger_pct=0.04", "--json"))
    oos = doc["out_of_sample"]
    assert doc["series"] == "portfolio" and len(doc["windows"]) == 3
    assert oos["start"] == "2010-01-04" and oos["end"] == "2012-12-31"
    single = json.loads(command("backtest", "--portfolio", "IBM=0.4,MSFT=0.4", "--rebalance",
                                "quarterly", "--cash", "100000", "--trigger-pct", "0.04",
                                "--start", oos["start"], "--end", oos["end"], "--json"))
    assert oos["metrics"] == single["metrics"]
    assert oos["holdings"] == single["holdings"] and oos["rebalances"] == single["rebalances"]
    assert oos["benchmarks"] == single["benchmarks"]


def test_a_walkforward_switches_every_holding_per_window(tmp_path):
    # openpyxl: reads the workbook back
    import openpyxl

    png, xlsx = tmp_path / "wf.png", tmp_path / "wf.xlsx"
    args = [*WF, "--start", "2005-01-01", "--grid", "trigger_pct=0.02,0.04,0.06", "--grid",
            "guard_low=0.2,0.3"]  # the later --start wins
    doc = json.loads(command("walkforward", *args, "--json", "--plot", str(png),
                             "--xlsx", str(xlsx)))
    chosen = [(w["trigger_pct"], w["guard_low"]) for w in doc["windows"]]
    assert len(set(chosen)) > 1  # the windows chose differently: the switches matter
    oos = doc["out_of_sample"]
    # the stitched run differs from each fixed configuration's over the same span
    for trigger, low in set(chosen):
        fixed = json.loads(command("backtest", "--portfolio", "IBM=0.4,MSFT=0.4",
                                   "--rebalance", "quarterly", "--cash", "100000",
                                   "--trigger-pct", str(trigger), "--guard-low", str(low),
                                   "--start", oos["start"], "--end", oos["end"], "--json"))
        assert fixed["metrics"]["final_value"] != oos["metrics"]["final_value"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["Windows", "Daily"]
    daily = list(wb["Daily"].iter_rows(values_only=True))
    assert daily[0][:4] == ("date", "portfolio", "held", "fixed_mix")
    assert daily[-1][1] == pytest.approx(oos["metrics"]["final_value"], abs=1e-5)


@pytest.mark.django_db(transaction=True)
def test_the_api_walks_a_portfolio_forward_on_the_worker(api, settings):
    settings.VOLBAL_SWEEP_JOBS = 1
    body = {**BODY, "kind": "walkforward", "start": "2008-01-01", "train": "2y", "test": "1y",
            "grid": {"trigger_pct": [0.02, 0.06], "guard_low": [0.2, 0.3]}}
    response = api.post("/v1/sweeps", body, format="json")
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    doc = json.loads(command("walkforward", *WF, "--grid", "trigger_pct=0.02,0.06",
                             "--grid", "guard_low=0.2,0.3", "--json"))
    assert [(w["trigger_pct"], w["guard_low"]) for w in done["ranked"]] == \
        [(w["trigger_pct"], w["guard_low"]) for w in doc["windows"]]
    assert done["results"]["out_of_sample"]["metrics"] == doc["out_of_sample"]["metrics"]


@pytest.mark.django_db(transaction=True)
def test_a_portfolio_job_fetches_its_tickers_history(api, settings, alpaca):  # noqa: F811
    """A ticker holding's history is fetched for the request (the recorded feed) and read
    again by the worker from the cache: the job runs on AAPL's raw bars and its split."""
    settings.VOLBAL_SWEEP_JOBS = 1
    expect(alpaca, "history_aapl", EXCHANGES)
    response = api.post("/v1/sweeps", {
        "kind": "sweep", "portfolio": {"holdings": [{"ticker": "aapl", "weight": 0.5}],
                                       "rebalance": "monthly"},
        "start": "2020-08-27", "end": "2020-09-01", "min_notional": 0,
        "metric": "total_return", "grid": {"trigger_pct": [0.01, 0.05],
                                           "guard_low": [0.2, 0.3]}}, format="json")
    check(alpaca)
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert len(done["ranked"]) == 4
    # the best cell is POST /v1/backtests' portfolio backtest with its values (the history
    # from the cache now; the command would read AAPL as the bundled sample)
    r = api.post("/v1/backtests", {
        "portfolio": {"holdings": [{"ticker": "AAPL", "weight": 0.5}], "rebalance": "monthly"},
        "start": "2020-08-27", "end": "2020-09-01", "min_notional": 0,
        **done["ranked"][0]["params"]}, format="json")
    assert r.status_code == 200, r.content
    assert done["ranked"][0]["score"] == pytest.approx(r.json()["metrics"]["total_return"],
                                                       abs=1e-6)
    png = api.get(done["links"]["heatmap"])  # the finished job read again without its history
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.django_db(transaction=True)
def test_a_portfolio_job_with_a_ticker_needs_start(api):
    response = api.post("/v1/sweeps", {**BODY, "start": None, "portfolio": {
        "holdings": [{"ticker": "AAPL", "weight": 0.5}]}}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "start" in error["fields"], error
    assert ResearchJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["sweep", "walkforward"])
def test_a_job_past_exact_arithmetic_fails_with_the_sentence(api, settings, kind):
    """A holding's dividend so large its amounts pass 28 significant digits: the job fails
    with the single backtest's sentence (engine.exact_arithmetic), not a Python error."""
    settings.VOLBAL_SWEEP_JOBS = 1
    body = {**BODY, "kind": kind, "cash": 10**9, "start": "2011-01-01", "end": "2012-12-31",
            "portfolio": {"holdings": [
                {"sample": "MSFT", "weight": 0.3},
                {"sample": "IBM", "weight": 0.3, "dividends": [
                    {"ex_date": "2012-02-01", "pay_date": "2012-02-10",
                     "dps": "999999999999999999"}]}], "rebalance": "monthly"},
            **({"train": "6m", "test": "6m"} if kind == "walkforward" else {})}
    response = api.post("/v1/sweeps", body, format="json")
    assert response.status_code == 202, response.content
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "failed"
    assert done["error"] == engine.TOO_LARGE


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["sweep", "walkforward"])
def test_holdings_sharing_under_two_bars_are_the_backtests_no_common_bars(api, kind):
    one_day = {"start": "2011-01-03", "end": "2011-01-03"}
    backtest = api.post("/v1/backtests", {"portfolio": BODY["portfolio"], **one_day},
                        format="json")
    assert_error(backtest, 400, "no_common_bars")
    response = api.post("/v1/sweeps", {**BODY, **one_day, "kind": kind, "train": "2y",
                                       "test": "1y"}, format="json")
    error = assert_error(response, 400, "no_common_bars")
    assert error == backtest.json()
    assert ResearchJob.objects.count() == 0
    with pytest.raises(CommandError) as exc:
        command(kind, *PORTFOLIO, "--start", "2011-01-03", "--end", "2011-01-03", *GRID,
                *(["--train", "2y", "--test", "1y"] if kind == "walkforward" else []),
                "--jobs", "1", "--no-progress")
    assert str(exc.value) == f"no_common_bars: {error['message']}"


@pytest.mark.django_db
def test_a_portfolio_sweeps_caps_count_each_holding(api, settings):
    """Each cell of a portfolio runs every holding: 4 cells (exact, no re-runs) of a
    two-holding portfolio are 8 backtests for the job's cap and the user's queued quota."""
    settings.VOLBAL_RESEARCH_MAX_JOB_RUNS = 7
    error = assert_error(api.post("/v1/sweeps", BODY, format="json"), 400, "validation_error")
    assert "8 backtests" in error["fields"]["grid"] and "at most 7" in error["fields"]["grid"]
    settings.VOLBAL_RESEARCH_MAX_JOB_RUNS = 8
    settings.VOLBAL_RESEARCH_MAX_QUEUED_RUNS = 7
    assert_error(api.post("/v1/sweeps", BODY, format="json"), 429, "research_quota_exceeded")
    settings.VOLBAL_RESEARCH_MAX_QUEUED_RUNS = 8
    assert api.post("/v1/sweeps", BODY, format="json").status_code == 202
