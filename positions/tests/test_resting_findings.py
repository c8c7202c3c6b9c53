"""What an attacker found in resting orders (issue 23's follow-up): a price the jump guard
holds back fills no rung; the daily cap counts what traded; at most one rung fills between
two cycles; a change that cancels the rungs makes the position due at once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from events.models import Event
from orders.models import Order
from positions.services import prices_record
from positions.splits import price_confirm
from positions.tests.test_resting_orders import PLAIN, always_in_session  # noqa: F401
from positions.workflows.cycle import trade_cycle
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal


def price(p, ts=None):
    ts = ts or clock.now()
    prices_record(rows=[{"ticker": "ZIM", "price": D(str(p)), "ts": ts}])
    return ts


def limit_position(make_position, **kw):
    return make_position(**{"qty": "50", "cash": "5000", "anchor_price": "100",
                            "broker": "paper", "order_type": "limit", "auto_submit": True,
                            **PLAIN, **kw})


def test_a_price_the_guard_holds_back_fills_no_resting_rung(make_position, api):
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    assert Order.objects.filter(position=pos, rung__isnull=False, status="submitted").count() == 2
    jump_ts = price(100000)
    trade_cycle()
    assert not Order.objects.filter(position=pos, filled_qty__gt=0).exists()
    pos.refresh_from_db()
    assert (pos.qty, pos.cash) == (D(50), D(5000))
    assert Event.objects.filter(position_id=pos.pk, type="price_jump_unconfirmed").count() == 1
    # the rungs were cancelled for the guard, and the evaluation names the jump, not its rung
    reasons = set(Event.objects.filter(position_id=pos.pk, type="order_cancelled")
                  .values_list("inputs__reason", flat=True))
    assert len(reasons) == 1 and "price_jump_unconfirmed" in reasons.pop()
    last = Event.objects.filter(position_id=pos.pk, type="evaluation").last()
    assert last.outputs["blocked"][0]["blocked_by"] == "price_jump_unconfirmed"
    body = api.get(f"/v1/positions/{pos.id}/resting-orders").json()
    assert body["orders"] == [] and body["ladder"] == []
    assert "price-jump guard" in body["message"] and "100000" in body["message"]
    # once an operator confirms the price, the next cycle trades again
    price_confirm(ticker="ZIM", ts=jump_ts)
    trade_cycle()
    price(100000)
    trade_cycle()
    assert Order.objects.filter(position=pos, side="SELL", filled_qty__gt=0).exists()


def test_the_resting_orders_say_when_the_guard_blocks_rungs_still_open(make_position, api):
    """Between the jump being recorded and the cycle cancelling the rungs, the endpoint says
    why the ladder rests nothing while orders are open."""
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    price(100000)
    body = api.get(f"/v1/positions/{pos.id}/resting-orders").json()
    assert len(body["orders"]) == 2
    assert body["message"].startswith("2 resting at the paper broker")
    assert "blocked by the price-jump guard" in body["message"]
    assert "the next cycle cancels them" in body["message"]


def test_cancelled_rungs_do_not_count_toward_the_daily_cap(make_position, api):
    pos = limit_position(make_position, max_orders_per_day=2)
    price(100)
    trade_cycle()
    for pct in (0.05, 0.04):  # each cancels the two rungs, none filled
        assert api.patch(f"/v1/positions/{pos.id}", {"trigger_pct": pct},
                         format="json").status_code == 200
        if pct == 0.05:
            price(100)
            trade_cycle()
    assert Order.objects.filter(position=pos, status="cancelled").count() == 4
    assert not Order.objects.filter(position=pos, filled_qty__gt=0).exists()
    body = api.get(f"/v1/positions/{pos.id}/ladder").json()
    assert body["blocked_by"] is None, body
    # nor does it refuse a market order: nothing traded today
    r = api.post(f"/v1/positions/{pos.id}/orders", {"side": "BUY", "qty": 1},
                 format="json", HTTP_IDEMPOTENCY_KEY="m-1")
    assert r.status_code == 201, r.content


def test_at_most_one_rung_fills_between_two_cycles(make_position):
    """Two prices between cycles, the first through the buy rung and the second through the
    sell rung: the buy fills (first by market time), the sell is cancelled (its size was of
    the old book), and the next cycle rests the new ladder's rungs, as the backtest does."""
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    t1 = clock.now() + dt.timedelta(seconds=1)
    price("96", ts=t1)
    price("110", ts=t1 + dt.timedelta(seconds=1))
    row = trade_cycle().row
    assert row.errors == 0, row.message
    filled = list(Order.objects.filter(position=pos, filled_qty__gt=0))
    assert [(o.side, o.avg_fill_price) for o in filled] == [("BUY", D("96"))]
    sell = Order.objects.get(position=pos, rung="SELL", limit_price=D("103.00"))
    assert sell.status == "cancelled" and sell.filled_qty == 0
    reason = Event.objects.get(order_id=sell.id, type="order_cancelled").inputs["reason"]
    assert reason.startswith("the buy rung filled first, at 96")
    pos.refresh_from_db()
    assert (pos.qty, pos.anchor_price) == (D(55), D(96))
    # the new rungs rest around the new anchor, sized from the new book
    assert {o.rung for o in Order.objects.filter(position=pos, status="submitted")} == {
        "BUY", "SELL"}


def test_the_next_cycle_rests_the_rungs_a_change_cancelled_without_a_new_price(
        make_position, api):
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    api.patch(f"/v1/positions/{pos.id}", {"trigger_pct": 0.05}, format="json")
    assert not Order.objects.filter(position=pos, status="submitted").exists()
    row = trade_cycle().row  # no new price: the cancelled rungs made the position due
    assert row.positions_claimed == 1, row.message
    assert {(o.rung, o.limit_price) for o in Order.objects.filter(
        position=pos, status="submitted")} == {("BUY", D("95.00")), ("SELL", D("105.00"))}
