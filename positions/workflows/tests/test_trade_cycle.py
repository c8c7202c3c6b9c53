"""The trade cycle (manage.py trade; docs/strategy.md#live-loop): dividends, then positions with a
newer price are polled and evaluated once, auto_submit positions submit and route, paper fills
come back on the next price; quiet outside sessions; several cycles at once split the positions."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from events.models import Event
from orders.models import Order
from positions.dividends import dividend_announce
from positions.models import Position, TradeCycle
from positions.services import prices_record
from positions.workflows.cycle import trade_cycle
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
SESSION = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)  # Friday 11:00 in New York
SATURDAY = dt.datetime(2024, 7, 6, 15, tzinfo=dt.UTC)


@pytest.fixture
def at(monkeypatch):
    """Set "now" for the service's clock and for the rows' creation times (an order's creation
    is when the paper broker's next price must come after, by its market time)."""
    def set_now(moment):
        monkeypatch.setattr(clock, "now", lambda: moment)
        monkeypatch.setattr(timezone, "now", lambda: moment)
    set_now(SESSION)
    return set_now


def price(ticker, p, ts):
    prices_record(rows=[{"ticker": ticker, "price": D(str(p)), "ts": ts}])


def evaluations(pos):
    return Event.objects.filter(position_id=pos.pk, type="evaluation").count()


def test_a_cycle_evaluates_new_prices_once_and_submits_only_with_auto_submit(make_position, at):
    paper = make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                          broker="paper", auto_submit=True, commission_rate="0")
    looker = make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100")
    other = make_position(ticker="ABC", qty="50", cash="5000", anchor_price="100")
    price("ZIM", 96, SESSION - dt.timedelta(minutes=5))  # 96 <= 97: a buy for both
    result = trade_cycle()
    row = TradeCycle.objects.get()
    assert (row.market_open, row.positions_claimed, row.evaluated) == (True, 2, 2)
    assert (row.proposals, row.submitted, row.routed) == (2, 1, 1)
    assert row.message == result.row.message and "2 evaluated" in row.message
    assert evaluations(paper) == evaluations(looker) == 1 and evaluations(other) == 0
    order = Order.objects.get(position=paper)
    assert order.side == "BUY" and order.routed_at is not None and order.status == "submitted"
    assert not Order.objects.filter(position=looker).exists()  # recorded only

    # No newer price: nothing to evaluate again.
    trade_cycle()
    assert evaluations(paper) == evaluations(looker) == 1

    # The next price (observed after the order was placed, at SESSION): the paper order fills
    # at it first, then the position is evaluated there.
    at(SESSION + dt.timedelta(minutes=1))
    price("ZIM", 95, SESSION + dt.timedelta(minutes=1))
    row = trade_cycle().row
    order.refresh_from_db()
    paper.refresh_from_db()
    assert order.status == "filled" and order.avg_fill_price == D(95)
    assert paper.anchor_price == D(95) and row.fills == 1
    assert evaluations(paper) == 2
    ev = Event.objects.filter(position_id=paper.pk, type="evaluation").last()
    assert ev.outputs["reason"] == "no_trigger"  # evaluated after the fill, against 95


def test_outside_sessions_the_cycle_evaluates_nothing_but_dividends_run(make_position, at,
                                                                         user):
    pos = make_position(qty="10", cash="1000", anchor_price="100", auto_submit=True)
    Position.objects.filter(pk=pos.pk).update(  # opened before the ex-date
        created_at=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2024, 7, 5),
                      pay_date=dt.date(2024, 7, 20), dps=D(1))
    price("ZIM", 50, SESSION)
    at(SATURDAY)
    row = trade_cycle().row
    assert (row.market_open, row.evaluated, row.dividends_effective) == (False, 0, 1)
    assert "market closed" in row.message
    assert evaluations(pos) == 0
    pos.refresh_from_db()
    assert pos.dividend_receivable == D("7.5")  # 10 shares x 1 x (1 - 0.25)


def test_the_trade_command_prints_lines_and_one_summary_per_cycle(make_position, at):
    make_position(qty="50", cash="5000", anchor_price="100")
    price("ZIM", 103, SESSION)
    out = io.StringIO()
    call_command("trade", "--loop", "--cycles", "2", "--interval", "0.01", stdout=out)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("Cycle (in session") for line in lines) == 2
    assert any("sell_trigger SELL" in line for line in lines)
    assert TradeCycle.objects.count() == 2


def test_evaluate_positions_is_the_cycles_evaluation_step(make_position, at):
    pos = make_position(qty="50", cash="5000", anchor_price="100")
    price("ZIM", 96, SESSION)
    out = io.StringIO()
    call_command("evaluate_positions", "--submit", stdout=out)
    assert "buy_trigger BUY" in out.getvalue() and "1 submitted" in out.getvalue()
    # The price is done: the cycle does not evaluate it again.
    assert trade_cycle().row.evaluated == 0
    assert evaluations(pos) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_cycles_split_the_positions(make_position, at):
    """Four cycles at once over 120 positions (batches of 7): each evaluated exactly once, no
    order submitted twice."""
    from orders.tests.test_concurrency import run_parallel

    positions = [make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                               auto_submit=True, broker="paper") for _ in range(120)]
    price("ZIM", 96, SESSION)
    runs = run_parallel(4, lambda i: trade_cycle(batch_size=7, worker=f"w{i}").row)
    assert sum(r.evaluated for r in runs) == 120
    assert sum(r.positions_claimed for r in runs) == 120
    for pos in positions:
        assert evaluations(pos) == 1
        assert Order.objects.filter(position=pos).count() == 1
    assert not Position.objects.filter(cycle_lease_until__isnull=False).exists()


def test_the_cycle_applies_a_due_split_before_it_evaluates(make_position, at, user):
    from positions.workflows.corporate_actions import split_announce

    pos = make_position(qty="10", cash="1000", anchor_price="100", auto_submit=True)
    Position.objects.filter(pk=pos.pk).update(created_at=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    at(dt.datetime(2024, 7, 3, 15, tzinfo=dt.UTC))  # announced two days ahead
    split_announce(owner=user, position_id=pos.id, ratio=D(2), effective_date=dt.date(2024, 7, 5))
    at(SESSION)
    price("ZIM", 50, SESSION)  # the split-adjusted price: no trigger once the anchor is re-based
    trade_cycle()
    pos.refresh_from_db()
    assert (pos.qty, pos.anchor_price, pos.cash) == (D(20), D(50), D(1000))
    assert Event.objects.filter(position_id=pos.id, type="split_applied").count() == 1
    assert not Order.objects.filter(position_id=pos.id).exists()


def test_a_price_held_back_by_the_jump_guard_is_evaluated_once_per_cycle(make_position, at):
    pos = make_position(ticker="ZIM", qty="100", cash="5000", anchor_price="50",
                        broker="paper", auto_submit=True)
    price("ZIM", 50, SESSION - dt.timedelta(days=1))
    price("ZIM", 30, SESSION - dt.timedelta(minutes=1))  # -40 %: an unconfirmed jump
    trade_cycle()  # due again at once (held back, not done), yet evaluated once
    assert evaluations(pos) == 1 and Order.objects.count() == 0
    assert TradeCycle.objects.get().evaluated == 1
    trade_cycle()
    assert evaluations(pos) == 2 and Order.objects.count() == 0


def test_a_refused_position_keeps_nothing_and_the_rest_of_its_batch_goes_on(make_position, at):
    """One batch of three: the middle position's proposal is more than an order can hold
    (qty_out_of_range): it keeps no event and no mark (its claim runs out); the others are
    evaluated and submit as if it were not there."""
    # max_price_jump 1: any fall passes the price-jump guard (not what this test is about)
    first = make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                          broker="paper", auto_submit=True, max_price_jump="1")
    huge = make_position(ticker="ZIM", qty="0", cash="10000000000000", anchor_price="100",
                         broker="paper", auto_submit=True, max_price_jump="1")
    last = make_position(ticker="ZIM", qty="50", cash="5000", anchor_price="100",
                         broker="paper", auto_submit=True, max_price_jump="1")
    price("ZIM", "0.000001", SESSION - dt.timedelta(minutes=1))
    result = trade_cycle(batch_size=10)
    row = TradeCycle.objects.get()
    assert (row.positions_claimed, row.evaluated, row.submitted, row.errors) == (3, 3, 2, 0)
    assert evaluations(first) == evaluations(last) == 1 and evaluations(huge) == 0
    assert Order.objects.filter(position=huge).count() == 0
    assert Order.objects.filter(position__in=[first, last], routed_at__isnull=False).count() == 2
    huge.refresh_from_db()
    assert huge.evaluated_price_ts is None and huge.cycle_lease_until is not None
    assert any(huge.id in line and "refused" in line for line in result.lines)


def test_without_a_calendar_the_summary_says_so_not_a_session(make_position, at, settings):
    """VOLBAL_CALENDAR empty: every moment trades; the summary names no exchange session."""
    settings.VOLBAL_CALENDAR = ""
    make_position(qty="50", cash="5000", anchor_price="100")
    price("ZIM", 103, SESSION)
    out = io.StringIO()
    call_command("trade", "--quiet", stdout=out)
    summary = out.getvalue().splitlines()[0]
    assert summary.startswith("Cycle (no calendar: always in session): 1 claimed"), summary
    assert "session 2024" not in summary
    settings.VOLBAL_CALENDAR = "XNYS"
    at(SATURDAY)
    assert trade_cycle().row.message.startswith("Cycle (market closed, session 2024-07-08)")
