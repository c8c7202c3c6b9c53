"""The file feed (positions/marketdata/file.py): today's price, split and dividend files read
through the market-data port. Files in a temporary directory; no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from positions.marketdata.feeds import feed_from_settings
from positions.marketdata.file import FileFeed
from positions.marketdata.port import (
    Bar,
    CashDividend,
    FeedBadResponse,
    FeedNotConfigured,
    FeedRequestRefused,
    MarketData,
    Split,
)

D = Decimal
NY = ZoneInfo("America/New_York")  # the test settings' VOLBAL_TRADING_TZ (the default)


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "prices.csv").write_text(
        "ticker,price,ts\n"
        "aapl,129.50,2020-08-31T14:00:00Z\n"
        "MSFT,225.53,2020-08-31T19:59:00Z\n"
        "AAPL,130.10,2020-08-31T15:30:00Z\n")
    (tmp_path / "AAPL.csv").write_text(  # a Yahoo-style download: unadjusted Close
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-08-27,508.57,509.94,495.33,500.04,122.93,155552400\n"
        "2020-08-28,504.05,505.77,498.31,499.23,122.73,187630000\n"
        "\n"
        "2020-08-31,127.58,131.00,126.00,129.04,126.91,225702700\n")
    (tmp_path / "zim.csv").write_text("Date,Close\n2020-08-19,10.50\n2020-08-20,31.20\n")
    (tmp_path / "AAPL.splits.csv").write_text("date,ratio\n2020-08-31,4\n")
    (tmp_path / "ZIM.splits.csv").write_text("date,ratio\n2020-08-20,0.1\n2021-01-04,1.5\n")
    (tmp_path / "AAPL.dividends.csv").write_text(
        "ex_date,pay_date,dps\n2020-08-07,2020-08-13,0.82\n2020-11-06,,0.205\n")
    return tmp_path


def test_latest_trades_the_latest_of_prices_csv_and_the_history(folder):
    feed = FileFeed(folder)
    assert isinstance(feed, MarketData) and feed.name == "file"
    trades = feed.latest_trades(["aapl", "MSFT", "ZIM", "NOSUCH"])
    assert sorted(trades) == ["AAPL", "MSFT", "ZIM"]  # NOSUCH has no file: absent
    # AAPL's history closes at 16:00 New York (20:00Z), after both of prices.csv's rows
    assert (trades["AAPL"].price, trades["AAPL"].ts) == (
        D("129.04"), dt.datetime(2020, 8, 31, 16, 0, tzinfo=NY))
    assert (trades["MSFT"].price, trades["MSFT"].ts) == (
        D("225.53"), dt.datetime(2020, 8, 31, 19, 59, tzinfo=dt.UTC))
    assert trades["ZIM"].price == D("31.20")


def test_daily_bars_raw_with_ohlc_in_the_range(folder):
    bars = FileFeed(folder).daily_bars("AAPL", dt.date(2020, 8, 28), dt.date(2020, 9, 30))
    assert bars == [
        Bar("AAPL", dt.date(2020, 8, 28), D("504.05"), D("505.77"), D("498.31"), D("499.23"),
            187630000),
        Bar("AAPL", dt.date(2020, 8, 31), D("127.58"), D("131.00"), D("126.00"), D("129.04"),
            225702700)]  # the Close, never the Adj Close


def test_daily_bars_of_a_close_only_file(folder):
    bars = FileFeed(folder).daily_bars("zim", dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    assert [(b.day, b.close, b.open, b.high, b.low, b.volume) for b in bars] == [
        (dt.date(2020, 8, 19), D("10.50"), None, None, None, None),
        (dt.date(2020, 8, 20), D("31.20"), None, None, None, None)]
    assert FileFeed(folder).daily_bars("MSFT", dt.date(2020, 1, 1), dt.date(2020, 12, 31)) == []


def test_corporate_actions_in_the_range(folder):
    splits, dividends = FileFeed(folder).corporate_actions(
        ["AAPL", "ZIM", "MSFT"], dt.date(2020, 8, 1), dt.date(2020, 8, 31))
    assert splits == [
        Split("ZIM", dt.date(2020, 8, 20), 1, 10, key="file:ZIM:split:2020-08-20:1:10"),
        Split("AAPL", dt.date(2020, 8, 31), 4, 1, key="file:AAPL:split:2020-08-31:4:1")]
    assert dividends == [CashDividend("AAPL", dt.date(2020, 8, 7), dt.date(2020, 8, 13),
                                      D("0.82"), key="file:AAPL:cash_dividend:2020-08-07:0.82")]
    later, paid = FileFeed(folder).corporate_actions(["ZIM", "AAPL"], dt.date(2020, 9, 1),
                                                     dt.date(2021, 12, 31))
    assert [(s.new_rate, s.old_rate) for s in later] == [(3, 2)]  # 1.5 new per old is 3:2
    assert [(d.ex_date, d.payable_date) for d in paid] == [
        (dt.date(2020, 11, 6), dt.date(2020, 11, 6))]  # a blank pay_date is the ex-date


def test_a_bad_row_names_the_file_and_line(folder):
    (folder / "AAPL.csv").write_text("Date,Close\n2020-08-27,500.04\n2020-08-28,abc\n")
    with pytest.raises(FeedBadResponse) as raised:
        FileFeed(folder).daily_bars("AAPL", dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    assert raised.value.code == "feed_bad_response"
    assert "AAPL.csv" in raised.value.message and "line 3" in raised.value.message
    (folder / "AAPL.csv").write_text("Date,Open,Close\n2020-08-27,-1,500.04\n")
    with pytest.raises(FeedBadResponse, match="line 2: open '-1' is not a positive number"):
        FileFeed(folder).daily_bars("AAPL", dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    (folder / "ZIM.splits.csv").write_text("date,ratio\n2020-08-20,1\n")
    with pytest.raises(FeedBadResponse, match="ZIM.splits.csv: line 2"):
        FileFeed(folder).corporate_actions(["ZIM"], dt.date(2020, 1, 1), dt.date(2020, 12, 31))


def test_a_symbol_that_is_not_a_ticker_names_no_file(folder):
    with pytest.raises(FeedRequestRefused) as raised:
        FileFeed(folder).latest_trades(["AAPL", "../prices"])
    assert raised.value.code == "feed_request_refused" and "'../PRICES'" in raised.value.message


def test_a_missing_directory_is_not_configured(tmp_path):
    with pytest.raises(FeedNotConfigured):
        FileFeed(tmp_path / "nowhere").latest_trades(["AAPL"])


def test_feed_from_settings_file(folder):
    feed = feed_from_settings({"VOLBAL_PRICE_FEED": "File", "VOLBAL_PRICE_FEED_DIR": str(folder)})
    assert isinstance(feed, FileFeed)
    assert feed.latest_trades(["MSFT"])["MSFT"].price == D("225.53")
