"""Rebalancing (docs/strategy.md#portfolios): cash only, toward the targets, by hand
(manage.py rebalance) and by the trade cycle at the first cycle of a period's first session or
on a band drift; each move a cash_transferred with reason rebalance; the ledger stays clean."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from events.models import Event
from positions.models import Portfolio, Position
from positions.portfolios.services import portfolio_create, portfolio_rebalance, position_open
from positions.services import prices_record
from positions.workflows.cycle import trade_cycle
from positions.workflows.ledger import ledger_verify
from volbal import clock

pytestmark = pytest.mark.django_db
SESSION = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)  # Friday 11:00 in New York
NEXT_SESSION = dt.datetime(2024, 7, 8, 15, tzinfo=dt.UTC)  # Monday


@pytest.fixture
def at(monkeypatch):
    def set_now(moment):
        monkeypatch.setattr(clock, "now", lambda: moment)
        monkeypatch.setattr(timezone, "now", lambda: moment)
    set_now(SESSION)
    return set_now


def price(ticker, p, ts=SESSION - dt.timedelta(minutes=5)):
    prices_record(rows=[{"ticker": ticker, "price": D(str(p)), "ts": ts}])


def book(user, *, cash, rebalance="never", band=None, created=None):
    """F = ``cash``; A: 10 shares at 50 with 300 cash, target 0.2; B: 200 cash, target 0.6.
    T = 1000 + F, all the cash C = 500 + F."""
    portfolio = portfolio_create(owner=user, name="P", cash=D(cash), rebalance=rebalance,
                                 rebalance_band=band)
    if created is not None:
        Portfolio.objects.filter(pk=portfolio.pk).update(created_at=created)
    a = position_open(owner=user, ticker="AAA", qty=D(10), cash=D(300), anchor_price=D(50),
                      portfolio=portfolio.id, target_weight=D("0.2"))
    b = position_open(owner=user, ticker="BBB", qty=D(0), cash=D(200),
                      portfolio=portfolio.id, target_weight=D("0.6"))
    price("AAA", 50)
    return portfolio, a, b


def cash_of(*rows):
    return tuple(type(r).objects.get(pk=r.pk).cash for r in rows)


def rebalance_moves():
    return [(e.position_id, e.inputs["from"], e.inputs["to"], e.inputs["amount"])
            for e in Event.objects.filter(type="cash_transferred", inputs__reason="rebalance")]


def test_by_hand_cash_goes_back_first_then_out_scaled_to_the_cash_there_is(user, at):
    portfolio, a, b = book(user, cash=0)
    # T = 1000, C = 500: c_A* = max(0, 200 - 500) = 0, c_B* = 600; f* = min(500, 0.2 T) = 200,
    # so the positions share C - f* = 300: B gets 600 x 300/600 = 300, A gives its 300 back.
    out = io.StringIO()
    call_command("rebalance", "--portfolio", portfolio.id, stdout=out)
    assert cash_of(portfolio, a, b) == (D(200), D(0), D(300))
    assert rebalance_moves() == [(a.id, a.id, "portfolio", D(300)),
                                 (b.id, "portfolio", b.id, D(100))]
    assert "2 move(s), 400 moved" in out.getvalue()
    portfolio.refresh_from_db()
    assert portfolio.last_rebalanced_on == clock.session_day(SESSION)
    assert {e.actor_name for e in Event.objects.filter(type="cash_transferred")} == {
        "command:rebalance"}
    a.refresh_from_db()
    assert (a.qty, a.anchor_price) == (D(10), D(50))  # cash only, never shares or the anchor
    assert ledger_verify().differences == []


def test_enough_cash_meets_every_target_and_leaves_the_rest_unallocated(user, at):
    portfolio, a, b = book(user, cash=1500)
    # T = 2500: A wants 500 - 500 = 0 cash, B 1500; f* = 0.2 x 2500 = 500; C = 2000.
    portfolio_rebalance(portfolio_id=portfolio.id)
    assert cash_of(portfolio, a, b) == (D(500), D(0), D(1500))
    again = portfolio_rebalance(portfolio_id=portfolio.id)  # at the targets: nothing moves
    assert again.moves == [] and len(rebalance_moves()) == 2


def test_without_a_price_for_shares_it_is_refused_and_moves_nothing(user, at):
    portfolio, a, b = book(user, cash=100)
    position_open(owner=user, ticker="NOPRICE", qty=D(1), cash=D(0), portfolio=portfolio.id)
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("rebalance", "--portfolio", portfolio.id, stdout=io.StringIO(),
                     stderr=err)
    assert "price_unknown" in err.getvalue()
    assert cash_of(portfolio, a, b) == (D(100), D(300), D(200))
    assert not rebalance_moves()


def test_the_cycle_rebalances_at_the_first_session_of_a_new_period_once(user, at):
    monthly, a, b = book(user, cash=0, rebalance="monthly",
                         created=dt.datetime(2024, 6, 20, 15, tzinfo=dt.UTC))
    never = portfolio_create(owner=user, name="N", cash=D(100))
    c = position_open(owner=user, ticker="CCC", qty=D(0), cash=D(0), portfolio=never.id,
                      target_weight=D(1))
    trade_cycle()
    assert cash_of(monthly, a, b) == (D(200), D(0), D(300))
    assert cash_of(never, c) == (D(100), D(0))  # never: untouched
    trade_cycle()  # the same session: not again
    at(NEXT_SESSION)
    Position.objects.filter(pk=b.pk).update(cash=D(250))  # drift; still July: not due
    b.refresh_from_db()
    trade_cycle()
    assert len(rebalance_moves()) == 2


def test_the_cycle_lines_name_the_rebalance(user, at):
    monthly, _a, _b = book(user, cash=0, rebalance="monthly",
                           created=dt.datetime(2024, 6, 20, 15, tzinfo=dt.UTC))
    lines = trade_cycle().lines
    assert any(line.startswith(f"{monthly.id}: rebalanced, 2 move(s), 400 moved")
               for line in lines), lines


def test_a_period_does_not_start_in_the_middle_of_the_month_it_was_created_in(user, at):
    monthly, a, b = book(user, cash=0, rebalance="monthly",
                         created=dt.datetime(2024, 7, 1, 15, tzinfo=dt.UTC))
    trade_cycle()
    assert cash_of(monthly, a, b) == (D(0), D(300), D(200))


def test_the_cycle_rebalances_on_a_band_drift(user, at):
    banded, a, b = book(user, cash=0, rebalance="band", band=D("0.05"))
    # weights: A 800/1000 = 0.8 vs 0.2: drifts more than 0.05
    trade_cycle()
    assert cash_of(banded, a, b) == (D(200), D(0), D(300))
    at(NEXT_SESSION)
    trade_cycle()  # cash alone cannot bring A's shares to 0.2: moves nothing more
    assert len(rebalance_moves()) == 2
    assert ledger_verify().differences == []
