"""Real parallel requests on PostgreSQL: withdrawals and transfers racing for the same cash
cannot overdraw it, one Idempotency-Key moves the cash once however many requests carry it,
parallel joins cannot take a portfolio's target weights above 1, and a rebalance racing
withdrawals leaves every balance at zero or more and the ledger clean."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from events.models import Event
from orders.tests.test_concurrency import (  # noqa: F401 (api_user: a fixture)
    answers,
    api_user,
    client_for_thread,
    run_parallel,
)
from positions.models import Portfolio, Position
from positions.portfolios.services import portfolio_create, portfolio_rebalance, position_open
from positions.workflows.ledger import ledger_verify

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_withdrawals_cannot_overdraw(api_user):  # noqa: F811
    portfolio = portfolio_create(owner=api_user, name="P", cash=Decimal(1000))
    n = 12  # 12 x 100 asked of 1000: exactly 10 succeed
    results = run_parallel(n, answers(api_user, "post", f"/v1/portfolios/{portfolio.id}/cash",
                                      [{"amount": -100}] * n, [f"w{i}" for i in range(n)]))
    statuses = Counter(status for status, _body, _replayed in results)
    assert statuses == {201: 10, 409: 2}
    assert {body["detail"] for status, body, _ in results if status == 409} == {
        "insufficient_cash"}
    assert Portfolio.objects.get().cash == 0
    assert Event.objects.filter(type="cash_withdrawn").count() == 10


def test_parallel_transfers_out_of_one_position_cannot_overdraw(api_user):  # noqa: F811
    portfolio = portfolio_create(owner=api_user, name="P", cash=Decimal(0))
    position = position_open(owner=api_user, ticker="ZIM", qty=Decimal(0), cash=Decimal(250),
                             portfolio=portfolio.id)
    n = 8
    results = run_parallel(n, answers(
        api_user, "post", f"/v1/portfolios/{portfolio.id}/transfers",
        [{"from": position.id, "to": "portfolio", "amount": 50}] * n,
        [f"t{i}" for i in range(n)]))
    assert Counter(status for status, _b, _r in results) == {201: 5, 409: 3}
    assert (Position.objects.get().cash, Portfolio.objects.get().cash) == (0, 250)


def test_one_key_moves_the_cash_once(api_user):  # noqa: F811
    position = position_open(owner=api_user, ticker="ZIM", qty=Decimal(0), cash=Decimal(0))
    n = 16
    results = run_parallel(n, answers(api_user, "post", f"/v1/positions/{position.id}/cash",
                                      [{"amount": 25}] * n, ["same-key"] * n))
    assert Counter(status for status, _b, _r in results) == {201: 1, 200: n - 1}
    assert {body["cash"] for _s, body, _r in results} == {25}
    assert sum(1 for _s, _b, replayed in results if replayed == "true") == n - 1
    assert Position.objects.get().cash == 25
    assert Event.objects.filter(type="cash_deposited").count() == 1


def test_parallel_joins_cannot_take_the_weights_above_one(api_user):  # noqa: F811
    portfolio = portfolio_create(owner=api_user, name="P", cash=Decimal(0))
    ids = [position_open(owner=api_user, ticker=f"T{i}", qty=Decimal(0), cash=Decimal(1)).id
           for i in range(8)]

    def join(i: int):
        response = client_for_thread(api_user).patch(
            f"/v1/positions/{ids[i]}", {"portfolio": portfolio.id, "target_weight": 0.3},
            format="json")
        return response.status_code, response.json()

    results = run_parallel(8, join)
    assert Counter(status for status, _body in results) == {200: 3, 409: 5}
    assert {body["detail"] for status, body in results if status == 409} == {
        "target_weights_exceed_one"}
    weights = Position.objects.filter(portfolio=portfolio).values_list("target_weight",
                                                                       flat=True)
    assert sorted(weights) == [Decimal("0.3")] * 3


def test_a_rebalance_racing_withdrawals_leaves_no_cash_below_zero(api_user):  # noqa: F811
    portfolio = portfolio_create(owner=api_user, name="P", cash=Decimal(600))
    positions = [position_open(owner=api_user, ticker=f"T{i}", qty=Decimal(0),
                               cash=Decimal(100), portfolio=portfolio.id,
                               target_weight=Decimal("0.3")) for i in range(3)]
    withdraw = answers(api_user, "post", f"/v1/positions/{positions[0].id}/cash",
                       [{"amount": -60}] * 8, [f"k{i}" for i in range(8)])

    def work(i: int):
        if i % 2:
            return withdraw(i)[0]
        return portfolio_rebalance(portfolio_id=portfolio.id).turnover

    run_parallel(8, work)
    assert Portfolio.objects.get().cash >= 0
    assert min(Position.objects.values_list("cash", flat=True)) >= 0
    assert ledger_verify().differences == []
