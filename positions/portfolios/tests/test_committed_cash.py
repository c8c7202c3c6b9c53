"""Cash that open buy orders commit cannot be moved away under them (issue 22, F6;
docs/portfolios.md#cash-that-open-orders-commit): a withdrawal or a transfer out of a position
leaves it, and a rebalance does not take it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from conftest import assert_error
from orders.services import order_fill, order_submit_for
from positions.models import Position
from positions.portfolios.services import portfolio_create, portfolio_rebalance, position_open
from positions.services import prices_record
from volbal import clock

pytestmark = pytest.mark.django_db


def opened(user, *, rebalance_weight=None):
    prices_record(rows=[{"ticker": "ZIM", "price": D(100), "ts": clock.now()}])
    pid = portfolio_create(owner=user, name="Core", cash=D(0)).id
    position = position_open(owner=user, portfolio=pid, target_weight=rebalance_weight,
                             ticker="ZIM", qty=D(0), cash=D(1000), commission_rate=D(0))
    order, _ = order_submit_for(owner=user, position_id=position.id, side="BUY", qty=D(8),
                                idempotency_key=None)  # commits 8 × 100 = 800 of its 1000
    return pid, position, order


def test_a_withdrawal_leaves_what_open_buys_commit(api, user):
    _pid, position, order = opened(user)
    body = assert_error(api.post(f"/v1/positions/{position.id}/cash", {"amount": -300},
                                 format="json", HTTP_IDEMPOTENCY_KEY="w1"), 409,
                        "insufficient_cash")
    assert order.id in body["message"] and "at most 200" in body["message"]
    assert Position.objects.get(pk=position.id).cash == 1000
    ok = api.post(f"/v1/positions/{position.id}/cash", {"amount": -200}, format="json",
                  HTTP_IDEMPOTENCY_KEY="w2")
    assert ok.status_code == 201, ok.content
    # the broker's fill of the accepted order still finds its cash
    order_fill(owner=user, order_id=order.id, price=D(100), filled_qty=D(8), commission=D(0))
    position.refresh_from_db()
    assert (position.qty, position.cash) == (8, 0)


def test_a_transfer_out_leaves_what_open_buys_commit(api, user):
    pid, position, order = opened(user)
    body = assert_error(api.post(f"/v1/portfolios/{pid}/transfers",
                                 {"from": position.id, "to": "portfolio", "amount": 201},
                                 format="json", HTTP_IDEMPOTENCY_KEY="t1"), 409,
                        "insufficient_cash")
    assert order.id in body["message"]
    ok = api.post(f"/v1/portfolios/{pid}/transfers",
                  {"from": position.id, "to": "portfolio", "amount": 200}, format="json",
                  HTTP_IDEMPOTENCY_KEY="t2")
    assert ok.status_code == 201, ok.content


def test_a_rebalance_does_not_take_committed_cash(user):
    # a target of 10 % of a portfolio of 1000: without the open buy the rebalance would move
    # 900 of the position's cash to the portfolio; with 800 committed (8 shares as good as
    # bought: 80 % in shares already) only the free 200 may move
    pid, position, _order = opened(user, rebalance_weight=D("0.1"))
    done = portfolio_rebalance(portfolio_id=pid, owner=user)
    position.refresh_from_db()
    assert position.cash >= 800, done.text()
    assert done.turnover <= 200
