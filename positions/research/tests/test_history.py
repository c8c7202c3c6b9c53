"""History for research from the feed (positions/research/history.py): backtest and sweep by
--ticker (walkforward shares the sweep's loading) run on the raw daily bars with the ticker's
splits and dividends exactly as a CSV with --splits and --dividends files; the history is
cached (a second run asks the replay server nothing), --refresh asks again. Alpaca is a real
HTTP server on 127.0.0.1 that
answers recorded exchanges and checks each request: nothing reaches Alpaca."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from positions.marketdata.tests.recorded import KEY_ID, SECRET, check, expect

HERE = Path(__file__).parent / "exchanges"
RANGE = ("--start", "2020-08-27", "--end", "2020-09-01")


@pytest.fixture
def alpaca(settings, monkeypatch, httpserver, tmp_path):
    settings.VOLBAL_PRICE_FEED = "alpaca"
    settings.ALPACA_DATA_URL = httpserver.url_for("")
    settings.VOLBAL_MARKETDATA_CACHE_DIR = tmp_path / "cache"
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    return httpserver


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_backtest_by_ticker_runs_as_the_csv_with_its_splits_and_dividends_files(alpaca,
                                                                              tmp_path):
    expect(alpaca, "history_aapl", HERE)
    fetched, said = run("backtest", "--ticker", "AAPL", *RANGE, "--json")
    check(alpaca)
    assert "AAPL 2020-08-27 to 2020-09-01 from alpaca: 4 daily bars, 1 splits" in said

    # The same history as files: the raw closes and the 4-for-1 split.
    csv = tmp_path / "AAPL.csv"
    csv.write_text("Date,Close\n2020-08-27,500.04\n2020-08-28,499.23\n2020-08-31,129.04\n"
                   "2020-09-01,134.18\n")
    splits = tmp_path / "splits.csv"
    splits.write_text("date,ratio\n2020-08-31,4\n")
    from_files, _ = run("backtest", "--csv", str(csv), "--splits", str(splits), *RANGE,
                        "--json")
    assert json.loads(fetched) == json.loads(from_files)

    cached, said = run("backtest", "--ticker", "AAPL", *RANGE, "--json")
    assert len(alpaca.log) == 3  # the two pages of bars and the actions: nothing more
    assert "from the cache" in said and json.loads(cached) == json.loads(fetched)

    expect(alpaca, "history_aapl", HERE)
    _, said = run("backtest", "--ticker", "AAPL", *RANGE, "--refresh")
    check(alpaca)
    assert len(alpaca.log) == 6 and "from alpaca" in said


def test_a_sweep_by_ticker_uses_the_cache(alpaca):
    expect(alpaca, "history_aapl", HERE)
    out, said = run("sweep", "--ticker", "AAPL", *RANGE, "--grid", "trigger_pct=0.02,0.04",
                    "--jobs", "1", "--no-progress", "--json")
    check(alpaca)
    assert "from alpaca" in said and "AAPL" in json.dumps(json.loads(out))
    _, said = run("sweep", "--ticker", "AAPL", *RANGE, "--grid", "trigger_pct=0.02,0.04",
                  "--jobs", "1", "--no-progress")
    assert "from the cache" in said and len(alpaca.log) == 3
    with pytest.raises(CommandError, match="--ticker runs alone"):
        run("sweep", "--ticker", "AAPL", "--sample", "IBM", *RANGE, "--grid",
            "trigger_pct=0.02,0.04")


def test_a_ticker_needs_a_feed_and_a_start(settings):
    settings.VOLBAL_PRICE_FEED = ""
    with pytest.raises(CommandError, match="--ticker needs --start"):
        run("backtest", "--ticker", "AAPL")
    with pytest.raises(CommandError, match="feed_not_configured"):
        run("backtest", "--ticker", "AAPL", "--start", "2020-01-01")


@pytest.mark.django_db
def test_post_backtests_by_ticker_fetches_then_reads_the_cache(alpaca, api, tmp_path):
    expect(alpaca, "history_aapl", HERE)
    body = {"ticker": "aapl", "start": "2020-08-27", "end": "2020-09-01", "min_notional": 0}
    first = api.post("/v1/backtests", body, format="json")
    check(alpaca)
    assert first.status_code == 200, first.content
    again = api.post("/v1/backtests", body, format="json")
    assert again.status_code == 200 and len(alpaca.log) == 3  # from the cache
    assert again.json() == first.json()
    # The same as the command's run from the cache, with the split applied
    out, _ = run("backtest", "--ticker", "AAPL", *RANGE, "--min-notional", "0", "--json")
    assert json.loads(out) == first.json()

    missing = api.post("/v1/backtests", {"ticker": "AAPL"}, format="json")
    assert missing.status_code == 400 and missing.json()["detail"] == "validation_error"
    assert "start" in missing.json()["fields"]
    both = api.post("/v1/backtests", {"ticker": "AAPL", "sample": "IBM",
                                      "start": "2020-08-27"}, format="json")
    assert both.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_post_sweeps_by_ticker_runs_on_the_worker_from_the_cache(alpaca, api, settings):
    from positions.research.tests.test_sweep_jobs import run_worker

    settings.VOLBAL_SWEEP_JOBS = 1
    expect(alpaca, "history_aapl", HERE)
    response = api.post("/v1/sweeps", {"kind": "sweep", "ticker": "AAPL",
                                       "start": "2020-08-27", "end": "2020-09-01",
                                       "grid": {"trigger_pct": "0.02,0.04"}}, format="json")
    check(alpaca)
    assert response.status_code == 202, response.content
    assert response.json()["params"]["ticker"] == "AAPL"
    assert run_worker() == 1
    done = api.get(f"/v1/sweeps/{response.json()['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert len(alpaca.log) == 3  # the worker read the cache


@pytest.mark.django_db
def test_a_feed_that_fails_is_a_machine_code_not_a_500(alpaca, api):
    expect(alpaca, "latest_trades_401",
           Path(__file__).parents[2] / "marketdata" / "tests" / "exchanges")
    alpaca.clear_all_handlers()
    alpaca.expect_request("/v2/stocks/bars").respond_with_json(
        {"code": 40110000, "message": "request is not authorized"}, status=401)
    r = api.post("/v1/backtests", {"ticker": "AAPL", "start": "2020-08-27"}, format="json")
    assert r.status_code == 502 and r.json()["detail"] == "feed_auth_refused"
    assert "could not be fetched" in r.json()["message"]


def test_a_walkforward_by_ticker_fetches_then_reads_the_cache(alpaca):
    expect(alpaca, "history_aapl", HERE)
    args = ("walkforward", "--ticker", "AAPL", *RANGE, "--train", "2", "--test", "1",
            "--grid", "trigger_pct=0.02,0.04", "--jobs", "1", "--no-progress", "--json")
    fetched, said = run(*args)
    check(alpaca)  # the two pages of bars and the actions, each as recorded
    assert "AAPL 2020-08-27 to 2020-09-01 from alpaca: 4 daily bars, 1 splits" in said
    report = json.loads(fetched)
    assert report["series"] == "AAPL"
    assert [(w["test_start"], w["test_end"]) for w in report["windows"]] == [
        ("2020-08-31", "2020-08-31"), ("2020-09-01", "2020-09-01")]
    # The 4-for-1 split of 2020-08-31 applied (the raw close falls from 499.23 to 129.04):
    # the window testing that day barely moves, where unadjusted it would lose three quarters.
    assert abs(report["windows"][0]["out_of_sample_total_return"]) < 0.01

    cached, said = run(*args)
    assert "from the cache" in said and len(alpaca.log) == 3  # no request
    report.pop("seconds", None)
    assert {k: v for k, v in json.loads(cached).items() if k != "seconds"} == report


def test_a_session_in_progress_is_not_fetched_nor_cached_as_a_close(alpaca, monkeypatch):
    """During 2020-09-01's session its bar is an intraday trade, not a close: the range is cut
    to the last closed session, said, and a later or future end reads the same cache file."""
    from django.utils import timezone

    from volbal import clock

    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2020, 9, 1, 15, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock.now)
    expect(alpaca, "history_aapl_cut", HERE)
    _, said = run("backtest", "--ticker", "AAPL", *RANGE)
    check(alpaca)
    assert ("AAPL 2020-08-27 to 2020-08-31 from alpaca: 3 daily bars, 1 splits, 0 dividends "
            "(--end 2020-09-01 cut to the last closed session: a session's bar is final after "
            "its close)") in said
    _, said = run("backtest", "--ticker", "AAPL", "--start", "2020-08-27", "--end",
                  "2020-12-31")  # in the future: the same closed sessions, from the cache
    assert len(alpaca.log) == 3
    assert "AAPL 2020-08-27 to 2020-08-31 from the cache: 3 daily bars" in said
    with pytest.raises(CommandError, match="feed_request_refused: no closed session from "
                                           "2020-09-01 to 2020-09-01: the last closed "
                                           "session is 2020-08-31"):
        run("backtest", "--ticker", "AAPL", "--start", "2020-09-01", "--end", "2020-09-01")


@pytest.mark.parametrize(("args", "refusal"), [
    (("--ticker", "../../tmp/x"), "--ticker '../../tmp/x': ticker must be"),
    (("--ticker", "AA PL"), "--ticker 'AA PL': ticker must be"),
    (("--ticker", "AAPL", "--end", "2020-08-01"), "--end 2020-08-01 is before --start"),
])
def test_backtest_by_ticker_refuses_a_bad_ticker_or_range_before_asking(alpaca, args,
                                                                        refusal):
    with pytest.raises(CommandError, match=re.escape(refusal)):
        run("backtest", "--start", "2020-08-27", *args)
    assert alpaca.log == []
