"""The Alpaca feed (positions/marketdata/alpaca.py) against recorded exchanges of Alpaca's
documented market-data API: alpaca-py talks HTTP to a server on 127.0.0.1 that answers as
recorded and checks each request (recorded.py). There is no network here: nothing reaches
Alpaca. No database either."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from positions.marketdata import alpaca
from positions.marketdata.alpaca_http import Session
from positions.marketdata.feeds import feed_from_settings
from positions.marketdata.port import (
    CashDividend,
    FeedAuthRefused,
    FeedBadResponse,
    FeedNotConfigured,
    FeedRateLimited,
    FeedUnavailable,
    MarketData,
    Split,
)
from positions.marketdata.tests.recorded import KEY_ID, SECRET, check, expect

D = Decimal
CLOCK = 1704300000.0  # the test's Unix time, against which the recordings' resets are set
UTC = dt.UTC


class Waits:
    """Stands in for time.sleep: records how long the adapter waited."""

    def __init__(self):
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def waits():
    return Waits()


@pytest.fixture
def feed(httpserver, waits):
    session = Session(timeout=2, sleep=waits, now=lambda: CLOCK)
    return alpaca.AlpacaFeed(key_id=KEY_ID, secret_key=SECRET, url=httpserver.url_for(""),
                             session=session, retry_wait=0)


def test_latest_trades_of_many_symbols_in_one_request(httpserver, feed):
    expect(httpserver, "latest_trades")
    trades = feed.latest_trades(["aapl", "MSFT", " BRK.B ", "NOSUCH", "AAPL"])
    check(httpserver)
    assert sorted(trades) == ["AAPL", "BRK.B", "MSFT"]  # NOSUCH has no trade: absent
    aapl = trades["AAPL"]
    assert aapl.price == D("184.25") and aapl.price.as_tuple() == D("184.25").as_tuple()
    assert aapl.ts == dt.datetime(2024, 1, 3, 20, 59, 59, 804719, tzinfo=UTC)
    assert trades["BRK.B"].price == D("357.1275")
    assert trades["MSFT"].price == D("370.6")
    assert isinstance(feed, MarketData) and feed.name == "alpaca"


def test_latest_trades_are_batched(httpserver, feed, monkeypatch):
    monkeypatch.setattr(alpaca, "SYMBOLS_PER_REQUEST", 2)
    expect(httpserver, "latest_trades_batched")
    trades = feed.latest_trades(["AAPL", "MSFT", "ZIM"])
    check(httpserver)
    assert {s: t.price for s, t in trades.items()} == {"AAPL": D("184.25"), "MSFT": D("370.6")}


def test_no_symbols_no_request(httpserver, feed):
    assert feed.latest_trades([]) == {}
    assert feed.corporate_actions([" "], dt.date(2020, 1, 1), dt.date(2020, 2, 1)) == ([], [])
    assert httpserver.log == []


def test_daily_bars_raw_through_every_page(httpserver, feed):
    expect(httpserver, "daily_bars_two_pages")
    bars = feed.daily_bars("AAPL", dt.date(2020, 8, 27), dt.date(2020, 9, 1))
    check(httpserver)
    assert [(b.day, b.close) for b in bars] == [
        (dt.date(2020, 8, 27), D("500.04")), (dt.date(2020, 8, 28), D("499.23")),
        (dt.date(2020, 8, 31), D("129.04")), (dt.date(2020, 9, 1), D("134.18"))]
    first = bars[0]
    assert (first.symbol, first.open, first.high, first.low, first.volume) == (
        "AAPL", D("508.57"), D("509.94"), D("495.33"), 1021330)
    assert bars[2].high == D("131")


def test_numbers_are_read_exactly_not_through_floats(httpserver, feed):
    """More digits than a float holds: the JSON is decoded straight to Decimal."""
    httpserver.expect_request("/v2/stocks/trades/latest").respond_with_data(
        '{"trades": {"AAPL": {"t": "2024-01-03T20:59:59Z", "p": 184.25000000000000000001}}}',
        content_type="application/json")
    assert feed.latest_trades(["AAPL"])["AAPL"].price == D("184.25000000000000000001")


def test_daily_bars_none(httpserver, feed):
    expect(httpserver, "daily_bars_empty")
    assert feed.daily_bars("NOSUCH", dt.date(2020, 8, 27), dt.date(2020, 9, 1)) == []
    check(httpserver)


def test_corporate_actions_splits_and_dividends_through_every_page(httpserver, feed):
    expect(httpserver, "corporate_actions_two_pages")
    splits, dividends = feed.corporate_actions(["AAPL", "ZIM"], dt.date(2020, 8, 1),
                                               dt.date(2020, 8, 31))
    check(httpserver)
    assert splits == [
        Split("ZIM", dt.date(2020, 8, 20), 1, 3, key="alpaca:reverse_split:ZIM:2020-08-20:1:3"),
        Split("AAPL", dt.date(2020, 8, 31), 4, 1,
              key="alpaca:6f1e6a1c-2f6b-4a4e-9a43-0b7c8f0f4a11")]
    assert splits[0].reverse and not splits[1].reverse and splits[1].ratio == 4
    # the November dividend was processed inside the window asked but goes ex after the range
    assert dividends == [CashDividend("AAPL", dt.date(2020, 8, 7), dt.date(2020, 8, 13),
                                      D("0.82"), key="alpaca:0d3f3f0e-5a8b-4c21-8d7e-3b0c1f7a9e22")]


def test_corporate_actions_none(httpserver, feed):
    expect(httpserver, "corporate_actions_empty")
    assert feed.corporate_actions(["MSFT"], dt.date(2020, 8, 1), dt.date(2020, 8, 31)) == ([], [])
    check(httpserver)


def test_429_waits_for_the_reset_then_asks_again(httpserver, feed, waits):
    expect(httpserver, "latest_trades_429_then_ok")
    assert feed.latest_trades(["AAPL"])["AAPL"].price == D("184.25")
    check(httpserver)
    assert waits.seconds == [1.5]  # X-RateLimit-Reset minus now


def test_429_with_a_far_reset_is_not_waited_for(httpserver, feed, waits):
    expect(httpserver, "latest_trades_429_far_reset")
    with pytest.raises(FeedRateLimited) as raised:
        feed.latest_trades(["AAPL"])
    check(httpserver)
    assert waits.seconds == []
    assert raised.value.code == "feed_rate_limited"
    assert "429" in raised.value.message and "resets in 120 s" in raised.value.message


def test_429_retries_are_bounded(httpserver, feed, waits):
    expect(httpserver, "latest_trades_429_persistent")
    with pytest.raises(FeedRateLimited) as raised:
        feed.latest_trades(["AAPL"])
    check(httpserver)
    assert waits.seconds == [2.0, 2.0]  # Retry-After, twice; the third 429 is reported
    assert raised.value.message.endswith("its limit resets in 2 s: try again later")


def test_401_is_auth_refused(httpserver, feed):
    expect(httpserver, "latest_trades_401")
    with pytest.raises(FeedAuthRefused) as raised:
        feed.latest_trades(["AAPL"])
    check(httpserver)
    assert raised.value.code == "feed_auth_refused"
    assert "401" in raised.value.message and "request is not authorized" in raised.value.message


def test_504_is_retried_by_the_sdk(httpserver, feed):
    expect(httpserver, "latest_trades_504_then_ok")
    assert feed.latest_trades(["AAPL"])["AAPL"].price == D("184.25")
    check(httpserver)


def test_502_page_is_unavailable(httpserver, feed):
    expect(httpserver, "latest_trades_502_proxy_page")
    with pytest.raises(FeedUnavailable) as raised:
        feed.latest_trades(["AAPL"])
    check(httpserver)
    assert raised.value.code == "feed_unavailable" and raised.value.message == (
        "Alpaca answered 502 to read the latest trades (Bad Gateway; the answer is not "
        "Alpaca's JSON error)")  # the proxy's page is not quoted


def test_a_replays_diagnostics_are_not_quoted(httpserver, feed):
    """A request the replay has not recorded is answered 500 with its matchers' dump: the
    error (and so the feed_error alert and the cycle's summary) says the status and a reason."""
    with pytest.raises(FeedUnavailable) as raised:
        feed.latest_trades(["AAPL"])
    assert raised.value.message == ("Alpaca answered 500 to read the latest trades "
                                    "(Internal Server Error; the answer is not Alpaca's JSON "
                                    "error)")
    httpserver.clear_assertions()


def test_an_answer_that_is_not_json_is_a_bad_response(httpserver, feed):
    expect(httpserver, "latest_trades_200_not_json")
    with pytest.raises(FeedBadResponse) as raised:
        feed.latest_trades(["AAPL"])
    check(httpserver)
    assert raised.value.code == "feed_bad_response"


def test_a_hung_endpoint_times_out(httpserver):
    httpserver.expect_request("/v2/stocks/trades/latest").respond_with_handler(
        lambda request: time.sleep(1.0))
    feed = alpaca.AlpacaFeed(key_id=KEY_ID, secret_key=SECRET, url=httpserver.url_for(""),
                             session=Session(timeout=0.2))
    started = time.monotonic()
    with pytest.raises(FeedUnavailable) as raised:
        feed.latest_trades(["AAPL"])
    assert time.monotonic() - started < 1.0
    assert "in time" in raised.value.message


def test_unreachable_endpoint(httpserver):
    url = httpserver.url_for("")
    feed = alpaca.AlpacaFeed(key_id=KEY_ID, secret_key=SECRET, url=url.replace(
        f":{httpserver.port}", ":9"), session=Session(timeout=1))  # port 9 (discard): closed
    with pytest.raises(FeedUnavailable) as raised:
        feed.latest_trades(["AAPL"])
    assert "could not be reached" in raised.value.message


# --------------------------------------------------------------------------------------------
# Choosing the feed from the environment
# --------------------------------------------------------------------------------------------


def test_feed_from_settings_builds_alpaca_from_the_brokers_credentials(httpserver, monkeypatch):
    env = {"VOLBAL_PRICE_FEED": "alpaca", "ALPACA_API_KEY_ID": KEY_ID,
           "ALPACA_API_SECRET_KEY": SECRET, "ALPACA_DATA_URL": httpserver.url_for("")}
    feed = feed_from_settings(env)
    assert isinstance(feed, alpaca.AlpacaFeed) and feed.feed.value == "iex"
    expect(httpserver, "latest_trades_batched")  # default iex; the endpoint from the settings
    monkeypatch.setattr(alpaca, "SYMBOLS_PER_REQUEST", 2)
    assert sorted(feed.latest_trades(["AAPL", "MSFT", "ZIM"])) == ["AAPL", "MSFT"]
    check(httpserver)
    assert feed_from_settings({**env, "ALPACA_DATA_FEED": "SIP"}).feed.value == "sip"


@pytest.mark.parametrize("env, code", [
    ({"VOLBAL_PRICE_FEED": "alpaca"}, "alpaca_credentials_missing"),
    ({"VOLBAL_PRICE_FEED": "alpaca", "ALPACA_API_KEY_ID": "k", "ALPACA_API_SECRET_KEY": "s",
      "ALPACA_DATA_FEED": "nasdaq"}, "feed_not_configured"),
    *(({"VOLBAL_PRICE_FEED": "alpaca", "ALPACA_API_KEY_ID": "k", "ALPACA_API_SECRET_KEY": "s",
        "ALPACA_DATA_URL": url}, "feed_not_configured")
      for url in ("notaurl", "ftp://127.0.0.1:8765", "http://", "http://127.0.0.1:70000")),
    ({"VOLBAL_PRICE_FEED": "yahoo"}, "feed_not_configured"),
    ({"VOLBAL_PRICE_FEED": "file"}, "feed_not_configured"),
])
def test_feed_from_settings_refuses_what_cannot_work(env, code):
    with pytest.raises(FeedNotConfigured) as raised:
        feed_from_settings(env)
    assert raised.value.code == code and raised.value.message


@pytest.mark.parametrize("value", [None, "", " none "])
def test_no_feed_configured(value):
    assert feed_from_settings({} if value is None else {"VOLBAL_PRICE_FEED": value}) is None
