"""Alerts (docs/alerts.md; positions/workflows/alerts.py): a ticker without prices during a session,
a trade cycle that did not run, a ledger difference found by the nightly check. Each fires in a
session and not outside one (real XNYS dates: Friday 2024-07-05, the Independence Day holiday the
day before, the Saturday after), once per position and episode, with a sentence saying what
happened. The clock is faked (volbal.clock.now)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from events.models import ALERT_TYPES, Event
from orders.services import order_fill, order_submit_for
from positions.models import Portfolio, Position
from positions.portfolios.services import portfolio_create
from positions.services import prices_record
from positions.workflows.alerts import cycle_missed_check, price_stale_check
from positions.workflows.cycle import trade_cycle
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
UTC = dt.UTC
OPEN = dt.datetime(2024, 7, 5, 13, 30, tzinfo=UTC)  # Friday's session opens 09:30 in New York
CLOSE = dt.datetime(2024, 7, 5, 20, 0, tzinfo=UTC)  # and closes 16:00
HOLIDAY = dt.datetime(2024, 7, 4, 15, 0, tzinfo=UTC)  # Independence Day, 11:00 in New York
SATURDAY = dt.datetime(2024, 7, 6, 15, 0, tzinfo=UTC)
WEDNESDAY_CLOSE = dt.datetime(2024, 7, 3, 17, 0, tzinfo=UTC)  # an early close (13:00)
LONG_AGO = dt.datetime(2024, 7, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.VOLBAL_CALENDAR = "XNYS"
    settings.VOLBAL_PRICE_STALE_AFTER = 15
    settings.VOLBAL_CYCLE_MISSED_AFTER = 5


@pytest.fixture
def at(monkeypatch):
    def set_now(moment):
        monkeypatch.setattr(clock, "now", lambda: moment)
        return moment
    return set_now


@pytest.fixture
def opened(make_position):
    """A position opened long ago (so it has waited as long as any check asks)."""
    def make(**kw):
        pos = make_position(**{"qty": "10", "cash": "1000", **kw})
        Position.objects.filter(pk=pos.pk).update(created_at=LONG_AGO)
        return Position.objects.get(pk=pos.pk)
    return make


def price(ticker, p, ts):
    prices_record(rows=[{"ticker": ticker, "price": D(str(p)), "ts": ts}])


def alerts(position, type):
    return list(Event.objects.filter(position_id=position.pk, type=type).order_by("id"))


def minutes(m):
    return dt.timedelta(minutes=m)


# --- price_stale ---------------------------------------------------------------------------


def test_a_ticker_without_prices_in_a_session_alerts_each_position_once_per_episode(opened, at):
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)  # the last price before the holiday
    a, b = opened(), opened(qty="0", cash="500")
    fresh = opened(ticker="ABC")
    at(OPEN - minutes(5))
    price("ABC", 50, OPEN - minutes(5))

    # 14 minutes into the session: counted from the open, not from Wednesday's price
    at(OPEN + minutes(14))
    price("ABC", 51, OPEN + minutes(14))
    assert price_stale_check() == []
    at(OPEN + minutes(16))
    recorded = price_stale_check()
    assert sorted(e.position_id for e in recorded) == sorted([a.id, b.id])
    (alert,) = alerts(a, "price_stale")
    assert alert.message == (
        "Alert: no new price for ZIM for 16 minutes during the session (the latest, 100, is "
        "from 2024-07-03T17:00:00+00:00), more than VOLBAL_PRICE_STALE_AFTER (15 minutes): "
        "the position is not evaluated until a price arrives.")
    assert alert.inputs["ticker"] == "ZIM" and alert.inputs["last_price"] == D(100)
    assert alert.outputs["stale_since"] == OPEN.isoformat()
    assert alerts(fresh, "price_stale") == []  # ABC had a price 2 minutes ago

    # the same episode: checked again and again, nothing more for ZIM (ABC, silent since
    # minute 14, starts its own at minute 30)
    for m, expected in ((17, []), (30, [fresh.id]), (120, [])):
        at(OPEN + minutes(m))
        assert [e.position_id for e in price_stale_check()] == expected
    assert len(alerts(a, "price_stale")) == len(alerts(b, "price_stale")) == 1

    # a new price ends the episode; 15 minutes without the next one start another
    at(OPEN + minutes(121))
    price("ZIM", 101, OPEN + minutes(121))
    at(OPEN + minutes(135))
    assert price_stale_check() == []
    at(OPEN + minutes(137))
    assert len(price_stale_check()) == 2
    second = alerts(a, "price_stale")[-1]
    assert "no new price for ZIM for 16 minutes" in second.message
    assert "the latest, 101, is from 2024-07-05T15:31:00+00:00" in second.message
    assert len(alerts(a, "price_stale")) == 2


def test_no_price_alert_outside_sessions(opened, at):
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    pos = opened()
    for moment in (HOLIDAY, SATURDAY, CLOSE + minutes(30), OPEN - minutes(1),
                   WEDNESDAY_CLOSE + minutes(60)):  # after Wednesday's early close
        at(moment)
        assert price_stale_check() == [], moment
    assert alerts(pos, "price_stale") == []


def test_a_ticker_never_priced_alerts_once_and_idle_or_new_positions_do_not(opened, make_position,
                                                                            at, settings):
    pos = opened(ticker="NEW")
    empty = opened(ticker="NEW", qty="0", cash="0")  # holds nothing: nothing to trade
    at(OPEN + minutes(20))
    just_opened = make_position(ticker="NEW", qty="1", cash="10")  # opened now: not waited
    recorded = price_stale_check()
    assert [e.position_id for e in recorded] == [pos.id]
    assert recorded[0].message.startswith(
        "Alert: no price for NEW has been recorded for 20 minutes during the session")
    assert alerts(empty, "price_stale") == alerts(just_opened, "price_stale") == []
    at(OPEN + minutes(60))
    assert price_stale_check() == []
    settings.VOLBAL_PRICE_STALE_AFTER = 0  # off
    at(OPEN + minutes(200))
    price("NEW", 5, OPEN + minutes(100))
    assert price_stale_check() == []


def test_the_trade_cycle_raises_the_price_alert_at_its_start(opened, at):
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    pos = opened(auto_submit=True, broker="paper")
    result = trade_cycle(now=at(OPEN + minutes(30)))
    (alert,) = alerts(pos, "price_stale")
    assert any(line == f"{pos.id} {alert.message}" for line in result.lines)
    assert alert.actor_source == "system"  # a test calling the cycle: no command or worker
    trade_cycle(now=at(OPEN + minutes(31)))
    assert len(alerts(pos, "price_stale")) == 1


# --- cycle_missed --------------------------------------------------------------------------


def test_a_missed_cycle_alerts_the_positions_that_depend_on_it_once_per_outage(opened, at,
                                                                              settings):
    settings.VOLBAL_PRICE_STALE_AFTER = 0  # this test is about the cycle
    auto = opened(auto_submit=True)
    paper = opened(broker="paper")
    manual = opened()  # evaluations only: nothing it waits for
    trade_cycle(now=at(OPEN + minutes(60)))

    at(OPEN + minutes(64))
    assert cycle_missed_check() == []
    at(OPEN + minutes(66))
    recorded = cycle_missed_check()
    assert sorted(e.position_id for e in recorded) == sorted([auto.id, paper.id])
    (alert,) = alerts(auto, "cycle_missed")
    assert alert.message == (
        "Alert: the trade cycle has not run for 6 minutes during the session (the last one "
        "finished at 2024-07-05T14:30:00+00:00), more than VOLBAL_CYCLE_MISSED_AFTER (5 "
        "minutes): this position's proposals are not submitted and its orders are not routed "
        "or polled until a cycle runs again.")
    assert alerts(manual, "cycle_missed") == []

    for m in (70, 100, 200):  # the same outage
        at(OPEN + minutes(m))
        assert cycle_missed_check() == []

    # the cycle comes back, then stops again: a second outage, a second alert
    trade_cycle(now=at(OPEN + minutes(201)))
    at(OPEN + minutes(205))
    assert cycle_missed_check() == []
    at(OPEN + minutes(207))
    assert len(cycle_missed_check()) == 2
    assert len(alerts(auto, "cycle_missed")) == len(alerts(paper, "cycle_missed")) == 2
    assert alerts(manual, "cycle_missed") == []


def test_a_missed_cycle_counts_from_the_open_and_not_outside_sessions(opened, at, settings):
    settings.VOLBAL_PRICE_STALE_AFTER = 0
    pos = opened(auto_submit=True)
    trade_cycle(now=at(WEDNESDAY_CLOSE - minutes(1)))  # the last cycle: before the holiday
    for moment in (WEDNESDAY_CLOSE + minutes(30), HOLIDAY, SATURDAY, OPEN - minutes(1),
                   OPEN + minutes(4), CLOSE + minutes(10)):
        at(moment)
        assert cycle_missed_check() == [], moment
    at(OPEN + minutes(6))
    (alert,) = cycle_missed_check()
    assert alert.position_id == pos.id
    assert "has not run for 6 minutes during the session (the last one finished at " \
           "2024-07-03T16:59:00+00:00)" in alert.message
    settings.VOLBAL_CYCLE_MISSED_AFTER = 0  # off
    trade_cycle(now=at(OPEN + minutes(7)))
    at(OPEN + minutes(100))
    assert cycle_missed_check() == []


def test_check_alerts_runs_both_checks_once_per_pass(opened, at):
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    pos = opened(auto_submit=True)
    at(OPEN + minutes(20))
    out = io.StringIO()
    call_command("check_alerts", stdout=out)
    text = out.getvalue()
    assert f"{pos.id} price_stale: Alert: no new price for ZIM" in text
    assert f"{pos.id} cycle_missed: Alert: no trade cycle has run for 20 minutes" in text
    assert "2 recorded (1 cycle_missed, 1 price_stale)." in text
    assert {e.actor_name for e in Event.objects.filter(type__in=ALERT_TYPES)} == {
        "command:check_alerts"}
    out = io.StringIO()
    call_command("check_alerts", "--loop", "--interval", "0.01", "--passes", "2", stdout=out)
    assert out.getvalue().count("none new.") == 2
    assert Event.objects.filter(position_id=pos.pk, type__in=ALERT_TYPES).count() == 2


# --- ledger_difference ---------------------------------------------------------------------


def verify(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_ledger", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_the_nightly_ledger_check_alerts_each_different_position_once_per_difference(opened):
    tampered, sound = opened(), opened()
    assert verify("--record-alerts")[0] == 0
    Position.objects.filter(pk=tampered.pk).update(cash=D("990"))

    code, _ = verify()  # a check by hand records nothing
    assert code == 1 and alerts(tampered, "ledger_difference") == []

    code, out = verify("--record-alerts")
    assert code == 1 and "1 ledger_difference alert recorded (0 already alerted" in out
    (alert,) = alerts(tampered, "ledger_difference")
    assert alert.message == (
        "Alert: the ledger check found 1 difference between this position's books and the "
        "replay of its fills, dividends and splits: cash: stored 990, expected 1000.")
    assert alert.outputs["differences"] == [
        {"field": "cash", "stored": D("990"), "expected": D("1000")}]
    assert alert.actor_name == "command:verify_ledger"
    assert alerts(sound, "ledger_difference") == []
    # "last recorded change" still names the change before the alert
    assert "last recorded change: position_created" in out

    # the next night, the same difference: not again
    code, out = verify("--record-alerts")
    assert code == 1 and "0 ledger_difference alerts recorded (1 already alerted" in out
    # a different difference: alerted
    Position.objects.filter(pk=tampered.pk).update(cash=D("980"), qty=D("11"))
    verify("--record-alerts")
    latest = alerts(tampered, "ledger_difference")[-1]
    assert len(alerts(tampered, "ledger_difference")) == 2
    assert "found 2 differences" in latest.message
    assert {d["field"] for d in latest.outputs["differences"]} == {"qty", "cash"}


def test_a_portfolio_whose_cash_differs_is_alerted_once_as_its_own_event(opened, user, api):
    fund = portfolio_create(owner=user, name="Core", cash=D("500"))
    sound = opened()
    Portfolio.objects.filter(pk=fund.pk).update(cash=D("450"))
    code, out = verify("--record-alerts")
    assert code == 1 and "1 ledger_difference alert recorded (0 already alerted" in out
    (alert,) = Event.objects.filter(type="ledger_difference")
    assert (alert.position_id, alert.portfolio_id) == ("", fund.pk)
    assert alert.message == (
        "Alert: the ledger check found 1 difference between this portfolio's unallocated cash "
        "and the replay of its cash movements: cash: stored 450, expected 500.")
    assert alerts(sound, "ledger_difference") == []
    # the owner reads it among the portfolio's events
    events = api.get(f"/v1/portfolios/{fund.pk}/events").json()["events"]
    assert [e["type"] for e in events] == ["portfolio_created", "ledger_difference"]
    assert [(a["type"], a["portfolio_id"]) for a in api.get("/v1/alerts").json()["alerts"]] == [
        ("ledger_difference", fund.pk)]
    # the next night, the same difference: not again; another: alerted
    assert "0 ledger_difference alerts recorded (1 already alerted" in verify("--record-alerts")[1]
    Portfolio.objects.filter(pk=fund.pk).update(cash=D("400"))
    verify("--record-alerts")
    assert Event.objects.filter(type="ledger_difference", portfolio_id=fund.pk).count() == 2


def test_the_last_recorded_change_is_the_last_change_of_the_books_not_an_alert(opened, at, user):
    # The bug this guards against: with the cash altered in the database, verify_ledger named
    # check_alerts' price_stale as the last change, and on its next run its own ledger_difference.
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    pos = opened()
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("2"),
                                idempotency_key="k")
    order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"))
    fill = Event.objects.get(position_id=pos.pk, type="order_filled")
    Position.objects.filter(pk=pos.pk).update(cash=D("1"))
    at(OPEN + minutes(20))
    call_command("check_alerts", stdout=io.StringIO())
    (stale,) = alerts(pos, "price_stale")
    assert stale.actor_name == "command:check_alerts"
    named = (f"{pos.id} last recorded change: order_filled (event {fill.pk}, "
             f"{fill.created_at:%Y-%m-%d %H:%M:%S %Z}) by {fill.actor}")
    for _night in (1, 2):  # the second run follows its own ledger_difference alert
        code, out = verify("--record-alerts")
        assert code == 1 and named in out, out
        assert "price_stale" not in out and "ledger_difference (" not in out
    assert Event.objects.filter(position_id=pos.pk).latest("id").type == "ledger_difference"


def test_a_wait_of_one_minute_is_said_in_the_singular(opened, at, settings):
    settings.VOLBAL_PRICE_STALE_AFTER = settings.VOLBAL_CYCLE_MISSED_AFTER = 1
    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    pos = opened(auto_submit=True)
    at(OPEN + dt.timedelta(seconds=90))
    (stale,) = price_stale_check()
    assert ("no new price for ZIM for 1 minute during the session (the latest, 100, is from "
            "2024-07-03T17:00:00+00:00), more than VOLBAL_PRICE_STALE_AFTER (1 minute): ")\
        in stale.message
    (missed,) = cycle_missed_check()
    assert missed.position_id == pos.id
    assert ("no trade cycle has run for 1 minute during the session (none is recorded), more "
            "than VOLBAL_CYCLE_MISSED_AFTER (1 minute): ") in missed.message


# --- checks at once (PostgreSQL, real parallel connections) ---------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_checks_running_at_once_record_each_alert_once(opened, at):
    import threading

    from django.db import connection

    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    positions = [opened(auto_submit=True) for _ in range(30)]
    now = at(OPEN + minutes(20))
    n = 6
    barrier = threading.Barrier(n, timeout=30)
    errors: list = []

    def check() -> None:
        try:
            barrier.wait()
            price_stale_check(now=now)
            cycle_missed_check(now=now)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    for pos in positions:
        assert len(alerts(pos, "price_stale")) == 1
        assert len(alerts(pos, "cycle_missed")) == 1


def test_a_check_costs_the_same_few_statements_for_many_positions(opened, at):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    at(WEDNESDAY_CLOSE)
    price("ZIM", 100, WEDNESDAY_CLOSE)
    price("ABC", 100, WEDNESDAY_CLOSE)

    def statements(n: int, minute: int) -> tuple[int, int]:
        for _ in range(n):
            opened(ticker="ZIM", auto_submit=True)
        now = at(OPEN + minutes(minute))
        price("ABC", 100, now)  # ABC stays fresh
        price_stale_check(now=now)
        cycle_missed_check(now=now)
        at(OPEN + minutes(minute + 1))
        with CaptureQueriesContext(connection) as during_the_episode:
            assert price_stale_check() == [] and cycle_missed_check() == []
        price("ZIM", 100, now)  # the episodes end; then nothing is stale
        with CaptureQueriesContext(connection) as nothing_stale:
            assert price_stale_check() == []
        return len(during_the_episode), len(nothing_stale)

    few = statements(3, 20)
    many = statements(40, 40)  # ZIM's new episode; the cycle's outage goes on
    assert few == many and max(many) <= 6, (few, many)
