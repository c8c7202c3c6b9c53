"""Fills (docs/strategy.md#fills), cancels and an order with its fills."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import assert_error
from events.models import Event
from orders.models import Fill, IdempotencyRecord, Order
from positions.models import Position

pytestmark = pytest.mark.django_db

_keys = iter(range(10**9))


def place(api, position, side="BUY", qty=10) -> str:
    response = api.post(
        f"/v1/positions/{position.id}/orders",
        {"side": side, "qty": qty},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"place-{next(_keys)}",
    )
    assert response.status_code == 201, response.content
    return response.json()["order_id"]


def unchecked_order(position, side: str, qty) -> str:
    """An open order that submission would refuse today (placed before it checked holdings and
    cash, or reported by a broker): the fill must still judge it on its own."""
    from volbal import clock

    return Order.objects.create(position=position, side=side, qty=Decimal(str(qty)),
                                trading_day=clock.trading_day()).id


def fill(api, order_id, body, **headers):
    return api.post(f"/v1/orders/{order_id}/fill", body, format="json", **headers)


def snapshot(position_id: str, order_id: str):
    """Everything a fill may change."""
    position = Position.objects.get(pk=position_id)
    order = Order.objects.get(pk=order_id)
    return (
        (position.qty, position.cash, position.anchor_price, position.updated_at),
        (order.status, order.filled_qty, order.avg_fill_price, order.commission_paid,
         order.updated_at),
        Fill.objects.filter(order_id=order_id).count(),
    )


def new_events(position_id: str, after_id: int) -> list[Event]:
    return list(Event.objects.filter(position_id=position_id, id__gt=after_id).order_by("id"))


def last_event_id(position_id: str) -> int:
    return Event.objects.filter(position_id=position_id).order_by("-id").first().id


# --- applied fills ------------------------------------------------------------------------------


def test_a_full_buy_fill_moves_cash_and_shares_and_fills_the_order(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)
    response = fill(api, order_id, {"price": 100, "filled_qty": 10, "commission": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == order_id
    assert body["status"] == "filled"
    assert body["position_id"] == position.id
    assert body["position_qty"] == 10
    assert body["position_cash"] == 10000 - 10 * 100 - 1
    assert body["filled_qty"] == 10 and body["remaining_qty"] == 0
    assert body["avg_fill_price"] == 100 and body["anchor_price"] == 100
    assert body["fill"]["filled_qty"] == 10 and body["fill"]["price"] == 100
    assert body["fill"]["commission"] == 1 and body["fill"]["id"].startswith("fil_")
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(10), Decimal(8999))


def test_the_default_commission_is_commission_rate_times_notional(api, make_position):
    position = make_position(qty=0, cash=10000, commission_rate="0.001")
    order_id = place(api, position, "BUY", 3)
    body = fill(api, order_id, {"price": 123.45, "filled_qty": 3}).json()
    commission = Decimal("0.001") * 3 * Decimal("123.45")  # 0.37035
    assert body["fill"]["commission"] == float(commission)
    expected_cash = Decimal(10000) - 3 * Decimal("123.45") - commission
    assert Decimal(str(body["position_cash"])) == expected_cash
    assert Order.objects.get(pk=order_id).commission_paid == commission


def test_the_default_commission_uses_the_position_default_rate(api, make_position):
    position = make_position(qty=0, cash=10000)  # commission_rate 0.0001
    order_id = place(api, position, "BUY", 10)
    body = fill(api, order_id, {"price": 100, "filled_qty": 10}).json()
    assert body["fill"]["commission"] == 0.1
    assert body["position_cash"] == 8999.9


def test_a_zero_commission_is_taken_as_given(api, make_position):
    position = make_position(qty=0, cash=1000)
    order_id = place(api, position, "BUY", 10)
    body = fill(api, order_id, {"price": 100, "filled_qty": 10, "commission": 0}).json()
    assert body["position_cash"] == 0 and body["fill"]["commission"] == 0


def test_partial_fills_advance_the_order_and_average_the_price(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)

    first = fill(api, order_id, {"price": 100, "filled_qty": 4, "commission": 0}).json()
    assert first["status"] == "partially_filled"
    assert (first["filled_qty"], first["remaining_qty"], first["avg_fill_price"]) == (4, 6, 100)
    assert (first["position_qty"], first["position_cash"]) == (4, 9600)

    second = fill(api, order_id, {"price": 110, "filled_qty": 6, "commission": 0}).json()
    assert second["status"] == "filled"
    assert (second["filled_qty"], second["remaining_qty"]) == (10, 0)
    assert second["avg_fill_price"] == 106  # (4*100 + 6*110) / 10
    assert (second["position_qty"], second["position_cash"]) == (10, 9600 - 660)

    types = [e.type for e in Event.objects.filter(position_id=position.pk, order_id=order_id)]
    assert types == [
        "order_submitted",
        "order_partially_filled",
        "anchor_updated",
        "order_filled",
        "anchor_updated",
    ]


def test_the_average_fill_price_keeps_six_decimals(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 3)
    fill(api, order_id, {"price": 10.01, "filled_qty": 1, "commission": 0})
    body = fill(api, order_id, {"price": 10.02, "filled_qty": 2, "commission": 0}).json()
    assert body["avg_fill_price"] == 10.016667  # 30.05 / 3 rounded to 6 decimals


def test_each_fill_moves_the_anchor_and_says_so(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)
    fill(api, order_id, {"price": 100, "filled_qty": 5})
    fill(api, order_id, {"price": 95.5, "filled_qty": 5})
    anchors = Event.objects.filter(position_id=position.pk, type="anchor_updated").order_by("id")
    assert [(e.outputs["old"], e.outputs["new"]) for e in anchors] == [(None, 100), (100, 95.5)]
    assert all(e.order_id == order_id for e in anchors)
    position.refresh_from_db()
    assert position.anchor_price == Decimal("95.5")


def test_a_fill_replaces_an_anchor_brought_over(api, make_position):
    position = make_position(qty=10, cash=0, anchor_price="80")
    order_id = place(api, position, "SELL", 1)
    fill(api, order_id, {"price": 90, "filled_qty": 1})
    event = Event.objects.get(position_id=position.pk, type="anchor_updated")
    assert (event.outputs["old"], event.outputs["new"]) == (80, 90)


def test_a_sell_fill_adds_proceeds_less_commission(api, make_position):
    position = make_position(qty=10, cash=0)
    order_id = place(api, position, "SELL", 4)
    body = fill(api, order_id, {"price": 50, "filled_qty": 4, "commission": 1}).json()
    assert body["status"] == "filled"
    assert (body["position_qty"], body["position_cash"]) == (6, 4 * 50 - 1)
    events = Event.objects.filter(position_id=position.pk, order_id=order_id).order_by("id")
    filled = events.get(type="order_filled")
    assert filled.outputs["position_qty"] == 6 and filled.outputs["position_cash"] == 199
    assert "SELL 4 ZIM at 50" in filled.message


def test_selling_every_share_leaves_zero_shares(api, make_position):
    position = make_position(qty="2.5", cash=0)
    order_id = place(api, position, "SELL", 2.5)
    body = fill(api, order_id, {"price": 40, "filled_qty": 2.5, "commission": 0}).json()
    assert body["position_qty"] == 0 and body["position_cash"] == 100
    position.refresh_from_db()
    assert position.qty == 0


def test_the_smallest_quantity_fills(api, make_position):
    position = make_position(qty=0, cash=10)
    order_id = place(api, position, "BUY", 0.00000001)
    body = fill(api, order_id, {"price": 1, "filled_qty": 0.00000001, "commission": 0}).json()
    assert body["status"] == "filled" and body["position_qty"] == 0.00000001


# --- refused fills: 409 with a code, nothing changed, one fill_rejected event ------------------


def assert_refused(api, position, order_id, body, code, **headers):
    before = snapshot(position.id, order_id)
    after_id = last_event_id(position.id)
    records = IdempotencyRecord.objects.count()
    response = fill(api, order_id, body, **headers)
    assert_error(response, 409, code)
    assert snapshot(position.id, order_id) == before
    assert IdempotencyRecord.objects.count() == records
    events = new_events(position.id, after_id)
    assert [e.type for e in events] == ["fill_rejected"]
    assert events[0].order_id == order_id
    assert events[0].outputs == {"code": code}
    return response


def test_a_filled_order_takes_no_fill(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 1)
    fill(api, order_id, {"price": 10, "filled_qty": 1})
    assert_refused(api, position, order_id, {"price": 10, "filled_qty": 1}, "order_not_open")


def test_a_cancelled_order_takes_no_fill(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 1)
    assert api.post(f"/v1/orders/{order_id}/cancel", format="json").status_code == 200
    assert_refused(api, position, order_id, {"price": 10, "filled_qty": 1}, "order_not_open")


def test_a_partially_filled_then_cancelled_order_takes_no_fill(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 2)
    fill(api, order_id, {"price": 10, "filled_qty": 1})
    api.post(f"/v1/orders/{order_id}/cancel", format="json")
    assert_refused(api, position, order_id, {"price": 10, "filled_qty": 1}, "order_not_open")


def test_a_fill_larger_than_the_order_is_refused(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 5)
    assert_refused(api, position, order_id, {"price": 10, "filled_qty": 6}, "fill_exceeds_order")


def test_a_fill_larger_than_what_remains_is_refused(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 5)
    fill(api, order_id, {"price": 10, "filled_qty": 4})
    body = assert_refused(
        api, position, order_id, {"price": 10, "filled_qty": 1.00000001}, "fill_exceeds_order"
    ).json()
    assert "1" in body["message"]


def test_selling_more_than_held_is_refused(api, make_position):
    position = make_position(qty=2, cash=0)
    order_id = unchecked_order(position, "SELL", 5)
    assert_refused(api, position, order_id, {"price": 10, "filled_qty": 3}, "insufficient_qty")


def test_buying_beyond_the_cash_is_refused(api, make_position):
    position = make_position(qty=0, cash=100)
    order_id = place(api, position, "BUY", 5)
    assert_refused(api, position, order_id, {"price": 100, "filled_qty": 5}, "insufficient_cash")


def test_a_commission_that_tips_cash_below_zero_is_refused(api, make_position):
    position = make_position(qty=0, cash=1000)
    order_id = place(api, position, "BUY", 10)
    assert_refused(
        api, position, order_id, {"price": 100, "filled_qty": 10, "commission": 0.000001},
        "insufficient_cash",
    )
    # exactly the cash is fine
    assert fill(api, order_id, {"price": 100, "filled_qty": 10, "commission": 0}).json()[
        "position_cash"] == 0


def test_a_sell_whose_commission_exceeds_proceeds_and_cash_is_refused(api, make_position):
    position = make_position(qty=1, cash=0)
    order_id = place(api, position, "SELL", 1)
    assert_refused(
        api, position, order_id, {"price": 1, "filled_qty": 1, "commission": 5},
        "insufficient_cash",
    )


def test_a_refused_fill_with_an_idempotency_key_also_changes_nothing(api, make_position):
    position = make_position(qty=0, cash=100)
    order_id = place(api, position, "BUY", 5)
    assert_refused(
        api, position, order_id, {"price": 100, "filled_qty": 5}, "insufficient_cash",
        HTTP_IDEMPOTENCY_KEY="fill-1",
    )
    assert not IdempotencyRecord.objects.filter(key="fill-1").exists()


def test_a_refused_fill_can_be_retried_with_its_key_once_it_can_succeed(api, make_position):
    position = make_position(qty=0, cash=1000)
    sell = unchecked_order(position, "SELL", 2)
    buy = place(api, position, "BUY", 2)
    body = {"price": 10, "filled_qty": 2, "commission": 0}
    assert_refused(api, position, sell, body, "insufficient_qty", HTTP_IDEMPOTENCY_KEY="s1")
    assert fill(api, buy, body).status_code == 200
    retried = fill(api, sell, body, HTTP_IDEMPOTENCY_KEY="s1")
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert retried.json()["position_qty"] == 0 and retried.json()["position_cash"] == 1000


# --- fill idempotency, 404 ----------------------------------------------------------------------


def test_a_fill_with_an_idempotency_key_replays_and_applies_once(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)
    body = {"price": 100, "filled_qty": 4, "commission": 1}
    first = fill(api, order_id, body, HTTP_IDEMPOTENCY_KEY="fill-a")
    again = fill(api, order_id, body, HTTP_IDEMPOTENCY_KEY="fill-a")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Fill.objects.filter(order_id=order_id).count() == 1
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(4), Decimal(10000 - 400 - 1))
    other = fill(api, order_id, {**body, "filled_qty": 5}, HTTP_IDEMPOTENCY_KEY="fill-a")
    assert_error(other, 409, "idempotency_signature_mismatch")
    assert Fill.objects.filter(order_id=order_id).count() == 1


def test_a_fill_without_a_key_is_applied_each_time(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)
    for _ in range(2):
        assert fill(api, order_id, {"price": 100, "filled_qty": 1}).status_code == 200
    assert Fill.objects.filter(order_id=order_id).count() == 2


def test_a_fill_of_an_unknown_order_answers_404(api):
    assert_error(fill(api, "ord_missing", {"price": 1, "filled_qty": 1}), 404, "order_not_found")
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 0, "filled_qty": 1}, "price"),
        ({"price": -1, "filled_qty": 1}, "price"),
        ({"price": 1, "filled_qty": 0}, "filled_qty"),
        ({"price": 1, "filled_qty": 1, "commission": -0.01}, "commission"),
        ({"price": 1.0000001, "filled_qty": 1}, "price"),
        ({"price": 1, "filled_qty": 0.000000001}, "filled_qty"),
        ({"filled_qty": 1}, "price"),
        ({"price": 1}, "filled_qty"),
    ],
)
def test_an_invalid_fill_answers_400_naming_the_field(api, make_position, body, field):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 1)
    before = snapshot(position.id, order_id)
    after_id = last_event_id(position.id)
    response = fill(api, order_id, body)
    assert field in assert_error(response, 400, "validation_error")["fields"]
    assert snapshot(position.id, order_id) == before
    assert new_events(position.id, after_id) == []


def test_a_fill_that_would_overflow_the_balances_is_refused_not_a_server_error(
    api, make_position
):
    position = make_position(qty=2, cash=10000)
    order_id = place(api, position, "SELL", 2)
    # 2 x (10^16 - 10) plus the cash exceeds what a balance holds (16 integer digits); the
    # price has 15 significant digits, so SQLite (local mode) takes it too
    assert_refused(
        api, position, order_id, {"price": 9999999999999990, "filled_qty": 2, "commission": 0},
        "balance_out_of_range",
    )


@pytest.mark.parametrize(("side", "held", "body", "code"), [
    # 10^15 x 10^15 = 10^30: far past 28 significant digits, let alone a balance column
    ("BUY", 0, {"price": 1000000000000000, "filled_qty": 1000000000000000}, "insufficient_cash"),
    ("BUY", 0, {"price": 1000000000000000, "filled_qty": 1000000000000000, "commission": 0},
     "insufficient_cash"),
    ("SELL", 1000000000000, {"price": 1000000000000000, "filled_qty": 1000000000000},
     "balance_out_of_range"),
])
def test_fills_of_huge_valid_numbers_are_refused_not_a_server_error(api, make_position, side,
                                                                     held, body, code):
    position = make_position(qty=held, cash=1000)
    order_id = place(api, position, side, body["filled_qty"])
    assert_refused(api, position, order_id, body, code)


def test_a_huge_position_at_a_huge_price_still_reads(api, make_position):
    position = make_position(qty=1000000000000, cash=0)
    assert api.post("/v1/prices", {"ticker": "ZIM", "price": 100000000000,
                                   "ts": "2026-01-02T00:00:00Z"}, format="json").status_code == 201
    shown = api.get(f"/v1/positions/{position.id}")
    assert shown.status_code == 200, shown.content
    assert shown.json()["value"] == 10 ** 23 and shown.json()["weight"] == 1
    assert api.get("/v1/positions").status_code == 200


# --- cancel, order detail -------------------------------------------------------------------


def test_cancel_answers_the_order_then_409_order_not_open(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 2)
    response = api.post(f"/v1/orders/{order_id}/cancel", format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == order_id and body["status"] == "cancelled"
    assert body["filled_qty"] == 0 and body["remaining_qty"] == 2
    assert Event.objects.filter(position_id=position.pk, type="order_cancelled",
                                order_id=order_id).count() == 1
    again = api.post(f"/v1/orders/{order_id}/cancel", format="json")
    assert_error(again, 409, "order_not_open")
    assert Event.objects.filter(position_id=position.pk, type="order_cancelled").count() == 1


def test_cancel_keeps_what_was_filled(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 2)
    fill(api, order_id, {"price": 10, "filled_qty": 1, "commission": 0})
    body = api.post(f"/v1/orders/{order_id}/cancel", format="json").json()
    assert (body["status"], body["filled_qty"], body["avg_fill_price"]) == ("cancelled", 1, 10)
    position.refresh_from_db()
    assert (position.qty, position.cash) == (Decimal(1), Decimal(9990))


def test_a_filled_order_cannot_be_cancelled(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 1)
    fill(api, order_id, {"price": 10, "filled_qty": 1})
    assert_error(api.post(f"/v1/orders/{order_id}/cancel", format="json"), 409, "order_not_open")
    assert Order.objects.get(pk=order_id).status == "filled"


def test_cancel_of_an_unknown_order_answers_404(api):
    assert_error(api.post("/v1/orders/ord_missing/cancel", format="json"), 404, "order_not_found")


def test_cancel_with_an_idempotency_key_replays(api, make_position):
    position = make_position()
    order_id = place(api, position, "BUY", 1)
    first = api.post(f"/v1/orders/{order_id}/cancel", format="json", HTTP_IDEMPOTENCY_KEY="c")
    again = api.post(f"/v1/orders/{order_id}/cancel", format="json", HTTP_IDEMPOTENCY_KEY="c")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()


def test_get_an_order_with_its_fills(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = place(api, position, "BUY", 10)
    fill(api, order_id, {"price": 100, "filled_qty": 4, "commission": 1})
    fill(api, order_id, {"price": 101, "filled_qty": 1})
    response = api.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == order_id and body["position_id"] == position.id
    assert body["side"] == "BUY" and body["qty"] == 10 and body["status"] == "partially_filled"
    assert body["filled_qty"] == 5 and body["remaining_qty"] == 5
    assert body["avg_fill_price"] == 100.2
    assert body["commission_paid"] == 1.0101
    assert [(f["filled_qty"], f["price"], f["commission"]) for f in body["fills"]] == [
        (4, 100, 1),
        (1, 101, 0.0101),
    ]
    assert all(f["id"].startswith("fil_") and f["created_at"] for f in body["fills"])


def test_an_order_without_fills_shows_an_empty_list(api, make_position):
    position = make_position()
    order_id = place(api, position, "BUY", 1)
    body = api.get(f"/v1/orders/{order_id}").json()
    assert body["fills"] == [] and body["avg_fill_price"] is None


def test_get_an_unknown_order_answers_404(api):
    assert_error(api.get("/v1/orders/ord_missing"), 404, "order_not_found")
