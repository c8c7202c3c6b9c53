"""A deposit is not a gain, through the services (docs/returns.md): any history of deposits,
withdrawals and transfers (some refused) on a portfolio and its positions, at prices that do
not move, leaves every time-weighted and money-weighted return at zero, and the net flows are
the money that came in less what went out: for the portfolio, its deposits and withdrawals and
those of its members (transfers stay inside); for a position, its own movements and transfers.
Deterministic Hypothesis (``derandomize=True``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings

from positions.performance import portfolio_performance, position_performance
from positions.portfolios.services import (
    portfolio_cash_move,
    portfolio_create,
    portfolio_transfer,
    position_cash_move,
    position_open,
)
from positions.portfolios.tests.test_cash_ledger import moves as ledger_moves
from positions.services import prices_record
from volbal.errors import DomainError

T0 = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)
# the histories of verify_ledger's property (at least one movement each)
moves = ledger_moves.filter(bool)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=moves)
def test_cash_movements_at_still_prices_earn_nothing(user, clock_at, history):
    with transaction.atomic():  # each example rolls back: the next starts from nothing
        clock_at(T0)
        prices_record(rows=[{"ticker": "ZIM", "price": D("50"), "ts": T0}])
        portfolio = portfolio_create(owner=user, name="P", cash=D(1000))
        positions = [position_open(owner=user, ticker="ZIM", qty=D(i + 1), cash=D(100 * i),
                                   portfolio=portfolio.id if i < 2 else None) for i in range(3)]
        flows = {"portfolio": D(0), 0: D(0), 1: D(0), 2: D(0)}
        for k, move in enumerate(history):
            clock_at(T0 + dt.timedelta(hours=k + 1))
            try:
                if move[0] == "portfolio_cash":
                    portfolio_cash_move(owner=user, portfolio_id=portfolio.id, amount=move[1])
                    flows["portfolio"] += move[1]
                elif move[0] == "position_cash":
                    _kind, n, amount = move
                    position_cash_move(owner=user, position_id=positions[n].id, amount=amount)
                    flows[n] += amount
                    if n < 2:
                        flows["portfolio"] += amount
                else:
                    _kind, source, target, amount = move
                    portfolio_transfer(owner=user, portfolio_id=portfolio.id,
                                       source=source if source == "portfolio"
                                       else positions[source].id,
                                       target=target if target == "portfolio"
                                       else positions[target].id, amount=amount)
                    for side, sign in ((source, -1), (target, 1)):
                        if side != "portfolio":
                            flows[side] += sign * amount
            except DomainError:
                continue  # refused: nothing moved
        clock_at(T0 + dt.timedelta(days=3))
        results = {"portfolio": portfolio_performance(portfolio).figures}
        results.update({n: position_performance(p).figures for n, p in enumerate(positions)})
        for name, figures in results.items():
            assert figures.net_flows == flows[name], name
            assert figures.time_weighted.value == 0, name
            assert figures.money_weighted.value is not None, (name, figures.money_weighted)
            assert abs(figures.money_weighted.value) <= D("1e-9"), name
        transaction.set_rollback(True)
