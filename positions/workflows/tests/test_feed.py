"""Prices and corporate actions from the feed (positions/workflows/feed.py): the trade cycle
prices the positions relying on it by itself, a failing feed is alerted once per episode,
corporate actions are recorded once per position however often they are fetched, and the
fetch commands. Alpaca is a real HTTP server on 127.0.0.1 answering recorded exchanges and
checking each request (positions/marketdata/tests/recorded.py): nothing reaches Alpaca."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from events.models import Event
from orders.models import Order
from positions.dividends import dividend_announce
from positions.marketdata.tests.recorded import KEY_ID, SECRET, check, expect
from positions.models import Dividend, Position, Price, Split, TickerFeed
from positions.services import prices_record
from positions.workflows.cycle import trade_cycle
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
HERE = Path(__file__).parent / "exchanges"
SESSION = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)  # Friday 11:00 in New York


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def at(monkeypatch):
    def set_now(moment):
        monkeypatch.setattr(clock, "now", lambda: moment)
        monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    set_now(SESSION)
    return set_now


@pytest.fixture
def alpaca(settings, monkeypatch, httpserver):
    """VOLBAL_PRICE_FEED=alpaca against the replay server."""
    settings.VOLBAL_PRICE_FEED = "alpaca"
    settings.ALPACA_DATA_URL = httpserver.url_for("")
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    return httpserver


def opened(position, day):
    """The position as opened on ``day`` (the service opens it now)."""
    moment = dt.datetime.combine(day, dt.time(14), dt.UTC)
    Position.objects.filter(pk=position.pk).update(created_at=moment)
    position.refresh_from_db()
    return position


def alerts(pos, type="feed_error"):
    return list(Event.objects.filter(position_id=pos.pk, type=type))


def test_the_cycle_prices_a_paper_position_by_itself_and_trades_it(make_position, at, alpaca):
    paper = opened(make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                                 broker="paper", auto_submit=True, commission_rate="0"),
                   dt.date(2024, 7, 1))
    expect(alpaca, "cycle_prices_paper", HERE)
    result = trade_cycle()
    price = Price.objects.get(ticker="ZIM")
    assert (price.price, price.source) == (D(96), "alpaca")
    assert price.ts == dt.datetime(2024, 7, 5, 14, 59, 0, 123456, tzinfo=dt.UTC)  # the trade's
    order = Order.objects.get(position=paper)
    assert order.side == "BUY" and order.status == "submitted" and order.routed_at is not None
    assert any("fetched from alpaca: ZIM 96" in line for line in result.lines)
    assert "Not priced" not in result.row.message

    at(SESSION + dt.timedelta(minutes=1))
    trade_cycle()  # corporate actions are asked once per session: only the trade
    check(alpaca)
    order.refresh_from_db()
    assert order.status == "filled" and order.avg_fill_price == D(95)
    feed = TickerFeed.objects.get(ticker="ZIM")
    assert (feed.price, feed.source, feed.actions_through) == (D(95), "alpaca",
                                                               dt.date(2024, 7, 5))


def test_a_failing_feed_is_alerted_once_per_episode_and_the_cycle_goes_on(make_position, at,
                                                                         alpaca):
    paper = opened(make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                                 broker="paper", auto_submit=True), dt.date(2024, 7, 1))
    looker = opened(make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100"),
                    dt.date(2024, 7, 1))
    dividend_announce(owner=None, position_id=paper.id, ex_date=dt.date(2024, 7, 5),
                      pay_date=dt.date(2024, 7, 20), dps=D("0.5"))
    TickerFeed.objects.create(ticker="ZIM", actions_through=dt.date(2024, 7, 5))
    expect(alpaca, "cycle_feed_fails", HERE)

    row = trade_cycle().row
    assert row.dividends_effective == 1  # the cycle went on
    assert row.message.endswith("Not priced by the feed: ZIM.") and row.errors == 1
    [alert] = alerts(paper)
    assert "feed_auth_refused" in alert.message and alert.inputs["ticker"] == "ZIM"
    assert alerts(looker) == []  # a manual position without auto_submit does not rely on it
    assert not Price.objects.exists()

    at(SESSION + dt.timedelta(minutes=1))
    trade_cycle()  # the same episode: no second alert
    assert len(alerts(paper)) == 1

    at(SESSION + dt.timedelta(minutes=2))
    row = trade_cycle().row  # the feed answers: the episode ends
    assert "Not priced" not in row.message
    assert TickerFeed.objects.get(ticker="ZIM").failing_since is None

    at(SESSION + dt.timedelta(minutes=3))
    trade_cycle()  # a new episode: a new alert
    check(alpaca)
    assert len(alerts(paper)) == 2
    feed = TickerFeed.objects.get(ticker="ZIM")
    assert feed.error_code == "feed_auth_refused" and feed.price == D(97)


def test_corporate_actions_refused_are_asked_again_by_the_next_cycle(make_position, at,
                                                                    alpaca):
    paper = opened(make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                                 broker="paper", auto_submit=True), dt.date(2024, 7, 1))
    expect(alpaca, "cycle_actions_fail", HERE)
    result = trade_cycle()
    assert result.row.errors == 1 and any("Corporate actions not fetched: feed_auth_refused"
                                          in line for line in result.lines)
    feed = TickerFeed.objects.get(ticker="ZIM")
    assert (feed.price, feed.error_code, feed.actions_through) == (D(96), "feed_auth_refused",
                                                                   None)
    assert alerts(paper) == []  # priced: not a feed_error episode

    at(SESSION + dt.timedelta(minutes=1))
    trade_cycle()
    check(alpaca)
    assert TickerFeed.objects.get(ticker="ZIM").actions_through == dt.date(2024, 7, 5)


def test_a_price_from_before_the_sessions_open_is_not_submitted(make_position, at):
    paper = make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                          broker="paper", auto_submit=True)
    prices_record(rows=[{"ticker": "ZIM", "price": D(90),
                         "ts": dt.datetime(2024, 7, 3, 19, 59, tzinfo=dt.UTC)}])
    result = trade_cycle()
    assert result.row.evaluated == 1 and result.row.proposals == 1
    assert not Order.objects.filter(position=paper).exists()
    assert any("not submitted: price_stale" in line for line in result.lines)


def test_corporate_actions_are_recorded_once_per_position_opened_before_them(make_position,
                                                                             monkeypatch,
                                                                             alpaca):
    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2020, 9, 1, 15, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    early = opened(make_position(ticker="AAPL", qty="100", cash="1000", anchor_price="400"),
                   dt.date(2020, 7, 1))
    late = opened(make_position(ticker="AAPL", qty="10", cash="1000", anchor_price="500"),
                  dt.date(2020, 8, 15))
    zim = opened(make_position(ticker="ZIM", qty="0", cash="1000"), dt.date(2020, 7, 1))
    recorded = Path(__file__).parents[2] / "marketdata" / "tests" / "exchanges"
    expect(alpaca, "corporate_actions_two_pages", recorded)
    expect(alpaca, "corporate_actions_two_pages", recorded)
    out = io.StringIO()
    call_command("fetch_corporate_actions", "--start", "2020-08-01", "--end", "2020-08-31",
                 stdout=out)
    assert ("4 recorded, 0 already recorded, 1 for a position opened on or after its date; "
            "3 splits applied") in out.getvalue()  # as they were recorded (due)
    early.refresh_from_db()
    late.refresh_from_db()
    # the dividend (ex 08-07) on the 100 shares held then, then the 4-for-1 split (08-31)
    assert early.qty == D(400) and early.anchor_price == (D(400) - D("0.82")) / 4
    assert late.qty == D(40)
    div = Dividend.objects.get(position=early)
    assert div.source_key == "alpaca:0d3f3f0e-5a8b-4c21-8d7e-3b0c1f7a9e22"
    assert div.status == "paid" and div.withholding_rate == early.withholding_tax_rate
    assert div.net_amount == D("100") * D("0.82") * (1 - early.withholding_tax_rate)
    assert not Dividend.objects.filter(position=late).exists()  # ex before it opened
    split = Split.objects.get(position=zim)
    assert split.ratio == Fraction(1, 3) and split.source_key.startswith("alpaca:reverse")

    out = io.StringIO()
    call_command("fetch_corporate_actions", "--start", "2020-08-01", "--end", "2020-08-31",
                 stdout=out)
    check(alpaca)
    assert "0 recorded, 4 already recorded" in out.getvalue()
    assert Split.objects.count() == 3 and Dividend.objects.count() == 1
    early.refresh_from_db()
    assert early.qty == D(400)


def test_a_position_opened_on_an_actions_day_does_not_get_it(make_position, monkeypatch,
                                                             alpaca):
    """The entitlement's boundary (corporate_actions.held_before): a position opened on a
    split's effective date or a dividend's ex-date, after the day began, did not hold the
    ticker before it; one opened the evening before did."""
    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2020, 9, 1, 15, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock.now)

    def opened_at(moment, **fields):
        position = make_position(**fields)
        Position.objects.filter(pk=position.pk).update(created_at=moment)
        return position

    on_split_day = opened_at(dt.datetime(2020, 8, 31, 14, tzinfo=dt.UTC), ticker="AAPL",
                             qty="40", cash="5000", anchor_price="129")
    on_ex_day = opened_at(dt.datetime(2020, 8, 7, 4, tzinfo=dt.UTC),  # 00:00 in New York
                          ticker="AAPL", qty="10", cash="5000", anchor_price="500")
    the_eve = opened_at(dt.datetime(2020, 8, 31, 3, 59, tzinfo=dt.UTC),  # 23:59 the day before
                        ticker="AAPL", qty="10", cash="5000", anchor_price="500")
    on_zim_day = opened_at(dt.datetime(2020, 8, 20, 13, tzinfo=dt.UTC), ticker="ZIM", qty="30",
                           cash="1000", anchor_price="10")
    expect(alpaca, "corporate_actions_two_pages",
           Path(__file__).parents[2] / "marketdata" / "tests" / "exchanges")
    out = io.StringIO()
    call_command("fetch_corporate_actions", "--tickers", "AAPL,ZIM", "--start", "2020-08-01",
                 "--end", "2020-08-31", stdout=out)
    check(alpaca)
    assert ("2 recorded, 0 already recorded, 5 for a position opened on or after its date; "
            "2 splits applied, 0 dividends effective, 0 paid.") in out.getvalue()
    assert Position.objects.get(pk=on_split_day.pk).qty == D(40)  # not 160
    assert not Split.objects.filter(position=on_split_day).exists()
    assert not Dividend.objects.exists()  # the ex-date of on_ex_day's opening: not its
    assert Position.objects.get(pk=on_ex_day.pk).qty == D(40)  # the split of 08-31: its
    assert Position.objects.get(pk=the_eve.pk).qty == D(40)
    assert Position.objects.get(pk=on_zim_day.pk).qty == D(30)


def test_fetch_prices_by_hand_and_history(make_position, monkeypatch, alpaca):
    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2024, 1, 4, 15, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    recorded = Path(__file__).parents[2] / "marketdata" / "tests" / "exchanges"
    expect(alpaca, "latest_trades", recorded)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):  # NOSUCH has no trade
        call_command("fetch_prices", "--tickers", "aapl,MSFT,BRK.B,NOSUCH", stdout=out,
                     stderr=err)
    assert "3 prices recorded, 1 tickers not priced: NOSUCH." in out.getvalue()
    aapl = Price.objects.get(ticker="AAPL")
    assert (aapl.price, aapl.source) == (D("184.25"), "alpaca")

    expect(alpaca, "daily_bars_two_pages", recorded)
    out = io.StringIO()
    call_command("fetch_prices", "--tickers", "AAPL", "--history", "--start", "2020-08-27",
                 "--end", "2020-09-01", stdout=out)
    check(alpaca)
    assert "AAPL: 4 daily closes recorded from alpaca" in out.getvalue()
    closes = list(Price.objects.filter(ticker="AAPL", ts__lt=dt.datetime(2021, 1, 1,
                                                                          tzinfo=dt.UTC))
                  .values_list("ts", "price"))
    # each at its session's close: 16:00 in New York, 20:00 UTC in summer
    assert closes[0] == (dt.datetime(2020, 8, 27, 20, tzinfo=dt.UTC), D("500.04"))
    assert closes[-1] == (dt.datetime(2020, 9, 1, 20, tzinfo=dt.UTC), D("134.18"))


def test_fetch_prices_asks_the_tickers_of_the_active_positions_by_default(make_position,
                                                                          monkeypatch, alpaca):
    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2024, 1, 4, 15, tzinfo=dt.UTC))
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    make_position(ticker="AAPL", qty="10", cash="0")  # manual, no auto_submit: not the cycle's
    make_position(ticker="MSFT", qty="0", cash="1000", broker="paper", auto_submit=True)
    make_position(ticker="ZIM", qty="0", cash="0")  # holds nothing: not active
    expect(alpaca, "fetch_prices_held", HERE)  # one request: AAPL,MSFT
    out = io.StringIO()
    call_command("fetch_prices", stdout=out)
    check(alpaca)
    assert "2 prices recorded." in out.getvalue()
    assert set(Price.objects.values_list("ticker", "source")) == {("AAPL", "alpaca"),
                                                                  ("MSFT", "alpaca")}


def test_without_a_feed_the_cycle_fetches_nothing(make_position, at, httpserver):
    make_position(ticker="ZIM", qty="50", cash="5000", broker="paper", auto_submit=True)
    row = trade_cycle().row
    assert httpserver.log == [] and not TickerFeed.objects.exists()
    assert "Not priced" not in row.message


def test_the_admin_shows_each_tickers_last_fetch_and_error(admin_client, make_position, at,
                                                          alpaca):
    opened(make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                         broker="paper", auto_submit=True), dt.date(2024, 7, 1))
    TickerFeed.objects.create(ticker="ZIM", actions_through=dt.date(2024, 7, 5))
    expect(alpaca, "cycle_feed_fails", HERE)
    trade_cycle()  # refused
    at(SESSION + dt.timedelta(minutes=1))
    trade_cycle()  # refused
    at(SESSION + dt.timedelta(minutes=2))
    trade_cycle()  # 97 at 15:01
    at(SESSION + dt.timedelta(minutes=3))
    trade_cycle()  # refused again
    check(alpaca)
    page = admin_client.get("/admin/positions/tickerfeed/").content.decode()
    assert "ZIM" in page and "97" in page and "alpaca" in page and "feed_auth_refused" in page
    detail = admin_client.get("/admin/positions/tickerfeed/ZIM/change/").content.decode()
    assert "request is not authorized" in detail
    prices = admin_client.get("/admin/positions/price/").content.decode()
    assert "alpaca" in prices  # each price shows its source


@pytest.mark.parametrize(("args", "refusal"), [
    (("fetch_prices", "--tickers", ""), "--tickers '' names no ticker"),
    (("fetch_prices", "--tickers", ",,,"), "--tickers ',,,' names no ticker"),
    (("fetch_prices", "--tickers", "AAPL,AA PL"), "--tickers: 'AA PL': ticker must be"),
    (("fetch_prices", "--tickers", "../../tmp/x"), "--tickers: '../../tmp/x': ticker must be"),
    (("fetch_prices", "--history", "--start", "2026-12-07", "--end", "2026-12-01"),
     "--end 2026-12-01 is before --start 2026-12-07"),
    (("fetch_corporate_actions", "--tickers", ","), "--tickers ',' names no ticker"),
    (("fetch_corporate_actions", "--start", "2026-12-07", "--end", "2026-12-01"),
     "--end 2026-12-01 is before --start 2026-12-07"),
])
def test_the_fetch_commands_refuse_no_tickers_a_bad_one_or_a_backward_range(
        make_position, alpaca, args, refusal):
    make_position(ticker="AAPL", qty="10", cash="1000")  # never "all" instead
    with pytest.raises(CommandError, match=re.escape(refusal)):
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    assert alpaca.log == []
