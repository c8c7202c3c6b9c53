"""History for research from the feed (positions/research/history.py): backtest and sweep by
--ticker (walkforward shares the sweep's loading) run on the raw daily bars with the ticker's
splits and dividends exactly as a CSV with --splits and --dividends files; the history is
cached (a second run asks the replay server nothing), --refresh asks again. Alpaca is a real
HTTP server on 127.0.0.1 that
answers recorded exchanges and checks each request: nothing reaches Alpaca."""

from __future__ import annotations

import io
import json
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
