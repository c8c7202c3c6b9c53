"""The fill service (docs/strategy.md#fills) where bench/mutation.py found changes no test
noticed: what the events of a fill and of a refusal say, the commission an order accumulates,
and a broker's execution reported again (the same id changes nothing; other numbers under
the same id are an anomaly, and the fill applied stands)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from events.models import Event
from orders.models import Fill, Order
from orders.services import order_cancel, order_fill, order_submit_for
from positions.models import Position
from volbal.errors import DomainError

pytestmark = pytest.mark.django_db


def submit(user, pos, side: str, qty: str, key: str) -> Order:
    order, _ = order_submit_for(owner=user, position_id=pos.id, side=side, qty=D(qty),
                                idempotency_key=key)
    return order


def events_after(pos, after: int) -> list[Event]:
    return list(Event.objects.filter(position_id=pos.pk, id__gt=after).order_by("id"))


def last_id(pos) -> int:
    return Event.objects.filter(position_id=pos.pk).order_by("-id").first().id


def balances(pos_id: str, order_id: str) -> tuple:
    pos, order = Position.objects.get(pk=pos_id), Order.objects.get(pk=order_id)
    return (pos.qty, pos.cash, pos.anchor_price, order.status, order.filled_qty,
            order.avg_fill_price, order.commission_paid, Fill.objects.count())


def test_a_fill_says_what_it_did_in_its_events(user, make_position):
    pos = make_position(qty="0", cash="10000")  # commission rate 0.0001
    order = submit(user, pos, "BUY", "5", "b")
    after = last_id(pos)
    order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"))
    # default commission 0.0001 x 2 x 100 = 0.02; cash 10000 - 200 - 0.02 = 9799.98
    partial, anchor = events_after(pos, after)
    fill = Fill.objects.get()
    assert (fill.broker, fill.broker_fill_id) == ("manual", None)  # entered by hand
    assert partial.type == "order_partially_filled" and partial.order_id == order.id
    assert partial.message == "BUY 2 ZIM at 100 (commission 0.02); order 2/5 filled."
    assert partial.inputs == {"price": 100, "filled_qty": 2, "commission": D("0.02")}
    assert partial.outputs == {"fill_id": fill.id, "status": "partially_filled",
                               "filled_qty": 2, "avg_fill_price": 100, "position_qty": 2,
                               "position_cash": D("9799.98")}
    assert anchor.type == "anchor_updated" and anchor.order_id == order.id
    assert anchor.message == "Anchor unset -> 100 after the fill."
    assert anchor.inputs == {"fill_price": 100}

    after = last_id(pos)
    order_fill(owner=user, order_id=order.id, price=D("95.5"), filled_qty=D("3"),
               commission=D("0.5"))
    filled, anchor = events_after(pos, after)
    # average (2 x 100 + 3 x 95.5) / 5 = 486.5 / 5 = 97.3; cash 9799.98 - 286.5 - 0.5
    assert filled.type == "order_filled"
    assert filled.message == "BUY 3 ZIM at 95.5 (commission 0.5); order 5/5 filled."
    assert filled.outputs["status"] == "filled" and filled.outputs["avg_fill_price"] == D(
        "97.3")
    assert filled.outputs["position_qty"] == 5
    assert filled.outputs["position_cash"] == D("9512.98")
    assert anchor.message == "Anchor 100 -> 95.5 after the fill."
    assert anchor.outputs == {"old": 100, "new": D("95.5")}
    order.refresh_from_db()
    assert (order.status, order.commission_paid, order.avg_fill_price) == (
        "filled", D("0.52"), D("97.3"))


@pytest.mark.parametrize(("setup", "fill", "code", "sentence"), [
    ("filled", {"filled_qty": "1"}, "order_not_open", "Order {id} is filled."),
    ("cancelled", {"filled_qty": "1"}, "order_not_open", "Order {id} is cancelled."),
    ("open", {"filled_qty": "5.5"}, "fill_exceeds_order",
     "A fill of 5.5 exceeds the 5 the order has left."),
    ("open", {"filled_qty": "5", "price": "2000"}, "insufficient_cash",
     "Buying 5 at 2000.00 costs 10001.00 including commission, more than the cash "
     "10000.00."),
])
def test_a_refused_fill_changes_nothing_and_its_event_says_why(user, make_position, setup,
                                                               fill, code, sentence):
    pos = make_position(qty="0", cash="10000")
    order = submit(user, pos, "BUY", "5", "b")
    if setup == "filled":
        order_fill(owner=user, order_id=order.id, price=D("10"), filled_qty=D("5"))
    elif setup == "cancelled":
        order_cancel(owner=user, order_id=order.id)
    before, after = balances(pos.id, order.id), last_id(pos)
    price = D(fill.get("price", "10"))
    with pytest.raises(DomainError) as exc:
        order_fill(owner=user, order_id=order.id, price=price, filled_qty=D(fill["filled_qty"]))
    message = sentence.format(id=order.id)
    assert (exc.value.code, exc.value.message, exc.value.status) == (code, message, 409)
    assert balances(pos.id, order.id) == before
    (event,) = events_after(pos, after)
    assert (event.type, event.order_id) == ("fill_rejected", order.id)
    assert event.message == f"Fill refused on {order.id}: {message}"
    assert event.inputs == {"price": price, "filled_qty": D(fill["filled_qty"]),
                            "commission": None}
    assert event.outputs == {"code": code}


def test_a_brokers_execution_is_stored_with_its_id_and_applied_once(user, make_position):
    pos = make_position(qty="0", cash="10000")
    order = submit(user, pos, "BUY", "5", "b")
    after = last_id(pos)
    _, _, first = order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"),
                             commission=D("1"), broker="paper", broker_fill_id="x-1")
    assert (first.broker, first.broker_fill_id) == ("paper", "x-1")
    filled = events_after(pos, after)[0]
    assert filled.inputs == {"price": 100, "filled_qty": 2, "commission": 1,
                             "broker": "paper", "broker_fill_id": "x-1"}
    # 10000 - 200 - 1
    state, after = balances(pos.id, order.id), last_id(pos)
    assert state[:2] == (D("2"), D("9799"))

    # the same execution polled again: the fill applied, nothing changed, nothing recorded
    again_order, again_pos, again = order_fill(
        owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"), commission=D("1"),
        broker="paper", broker_fill_id="x-1")
    assert again.id == first.id and again_order.id == order.id and again_pos.id == pos.id
    assert balances(pos.id, order.id) == state and events_after(pos, after) == []
    # without its commission (the broker did not say): the same
    order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"),
               broker="paper", broker_fill_id="x-1")
    assert balances(pos.id, order.id) == state and events_after(pos, after) == []

    # the same id from another broker is another execution
    _, _, other = order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("1"),
                             commission=D("0"), broker="alpaca", broker_fill_id="x-1")
    assert other.id != first.id
    assert balances(pos.id, order.id)[:2] == (D("3"), D("9699"))


@pytest.mark.parametrize("changed", [{"price": D("101")}, {"filled_qty": D("1")},
                                     {"commission": D("2")}])
def test_a_brokers_execution_reported_again_with_other_numbers_is_an_anomaly(
        user, make_position, changed):
    pos = make_position(qty="0", cash="10000")
    order = submit(user, pos, "BUY", "5", "b")
    _, _, first = order_fill(owner=user, order_id=order.id, price=D("100"), filled_qty=D("2"),
                             commission=D("1"), broker="paper", broker_fill_id="x-1")
    state, after = balances(pos.id, order.id), last_id(pos)
    numbers = {"price": D("100"), "filled_qty": D("2"), "commission": D("1"), **changed}
    _, _, seen = order_fill(owner=user, order_id=order.id, broker="paper",
                            broker_fill_id="x-1", **numbers)
    assert seen.id == first.id and balances(pos.id, order.id) == state
    (event,) = events_after(pos, after)
    assert (event.type, event.order_id) == ("broker_fill_mismatch", order.id)
    assert event.message == (
        f"Broker fill x-1 reported again with other numbers ({numbers['filled_qty']} at "
        f"{numbers['price']}); the fill applied (2 at 100) stands.")
    assert event.outputs == {"fill_id": first.id, "qty": 2, "price": 100, "commission": 1,
                             "order_id": order.id}


def test_an_execution_id_seen_on_another_order_is_an_anomaly_there(user, make_position):
    pos = make_position(qty="0", cash="10000")
    one = submit(user, pos, "BUY", "5", "one")
    _, _, first = order_fill(owner=user, order_id=one.id, price=D("100"), filled_qty=D("5"),
                             commission=D("0"), broker="paper", broker_fill_id="x-1")
    two = submit(user, pos, "BUY", "5", "two")
    state, after = balances(pos.id, two.id), last_id(pos)
    _, _, seen = order_fill(owner=user, order_id=two.id, price=D("100"), filled_qty=D("5"),
                            commission=D("0"), broker="paper", broker_fill_id="x-1")
    assert seen.id == first.id and balances(pos.id, two.id) == state
    (event,) = events_after(pos, after)
    assert (event.type, event.order_id, event.outputs["order_id"]) == (
        "broker_fill_mismatch", two.id, one.id)
