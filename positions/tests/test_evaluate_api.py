"""POST /v1/positions/{id}/evaluate: the decision, its numbers, its events and its order.

Every expected number is computed here by hand from the formulas of docs/strategy.md#evaluation, not
by calling the rules module the service uses."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from decimal import ROUND_DOWN, Decimal

import pytest
from django.test import override_settings

from events.models import Event
from orders.models import IdempotencyRecord, Order, OrderStatus
from positions.models import Position
from volbal import clock

pytestmark = pytest.mark.django_db


D = Decimal
Q8 = D("0.00000001")
Q6 = D("0.000001")
C = D("0.0001")  # default commission rate

PROPOSAL_KEYS = {"side", "qty", "price", "notional", "commission", "kind", "raw_qty", "trimmed",
                 "trimmed_by", "post_trade_weight", "reason"}
RESPONSE_KEYS = {"position_id", "price", "price_source", "price_ts", "anchor_price", "anchor_set",
                 "value", "weight", "proposals", "blocked", "reason", "message", "order_id"}


_keys = itertools.count()


def evaluate(client, position_id, body=None, **headers):
    """POST the evaluation; returns (status, body parsed with exact Decimals). A submitting
    evaluation needs an Idempotency-Key: one of its own unless the test gives one."""
    if isinstance(body, dict) and body.get("submit"):
        headers.setdefault("HTTP_IDEMPOTENCY_KEY", f"eval-{next(_keys)}")
    response = client.post(f"/v1/positions/{position_id}/evaluate", body if body is not None
                           else {}, format="json", **headers)
    return response.status_code, json.loads(response.content, parse_float=Decimal)


def types(position_id):
    return list(Event.objects.filter(position_id=position_id).values_list("type", flat=True))


def evaluation_events(position_id):
    return list(Event.objects.filter(position_id=position_id, type="evaluation"))


NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def exact(value):
    """A JSON value (API response or stored event payload) with every number as a Decimal (the
    audit log keeps a Decimal a float cannot hold exactly as a numeric string)."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return Decimal(repr(value))
    if isinstance(value, str) and NUMBER.match(value):
        return Decimal(value)
    return value


def q8(x: Decimal) -> Decimal:
    return x.quantize(Q8, ROUND_DOWN)


def q6(x: Decimal) -> Decimal:
    return x.quantize(Q6)


# --- the response and its numbers -------------------------------------------------------------


def test_all_cash_first_evaluation_sets_the_anchor_and_buys_to_the_low_guardrail(
        api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, body = evaluate(api, pos.id, {"price": 100})
    assert status == 200
    assert set(body) == RESPONSE_KEYS

    # buy_to(0.25) = (0.25*10000 - 0) / (100 * (1 + 0.25*0.0001)) = 24.999375015624...
    raw = D("2500") / (D("100") * (1 + D("0.25") * C))
    qty = q8(raw)
    assert qty == D("24.99937501")
    notional = qty * 100
    commission = q6(C * notional)
    post_weight = q6(notional / (D("10000") - commission))
    assert body["position_id"] == pos.id
    assert body["price"] == 100 and body["price_source"] == "request"
    assert body["anchor_price"] == 100 and body["anchor_set"] is True
    assert body["value"] == 10000 and body["weight"] == 0
    assert body["reason"] == "guardrail_rebalance"
    assert body["blocked"] == [] and body["order_id"] is None
    [proposal] = body["proposals"]
    assert set(proposal) == PROPOSAL_KEYS
    assert proposal == {
        "side": "BUY",
        "qty": D("24.99937501"),
        "price": 100,
        "notional": D("2499.937501"),
        "commission": D("0.249994"),
        "kind": "guardrail_rebalance",
        "raw_qty": D("24.99937501"),
        "trimmed": False,
        "trimmed_by": None,
        "post_trade_weight": post_weight,
        "reason": proposal["reason"],
    }
    assert (notional, commission) == (D("2499.937501"), D("0.249994"))
    assert post_weight == D("0.250000")
    assert proposal["reason"] == body["message"]
    assert body["message"] == ("Anchor set to price 100.00; weight 0.0 % is below the 25 % "
                               "guardrail: buy 24.99937501 shares to rebalance")

    pos.refresh_from_db()
    assert pos.anchor_price == 100
    assert types(pos.id) == ["position_created", "anchor_set", "evaluation"]
    anchor_event = Event.objects.get(position_id=pos.id, type="anchor_set")
    assert exact(anchor_event.outputs) == {"old": None, "new": 100}


def test_a_buy_trigger_fires_at_exactly_anchor_times_one_minus_tau(api, make_position):
    pos = make_position(qty=50, cash=5000, anchor_price=100)
    # 97.000001 is a hair above the bound 100*(1-0.03): nothing fires.
    status, body = evaluate(api, pos.id, {"price": D("97.000001")})
    assert status == 200
    assert body["proposals"] == [] and body["blocked"] == []
    assert body["reason"] == "no_trigger"
    assert body["anchor_set"] is False and body["anchor_price"] == 100

    status, body = evaluate(api, pos.id, {"price": 97})
    assert status == 200
    # V = 50*97 + 5000 = 9850, w = 4850/9850; proportional size |100/97 - 1| * 1.6667 * V / 97
    value = D(50 * 97 + 5000)
    assert body["value"] == value
    assert body["weight"] == q6(D(4850) / value)
    raw = abs(D(100) / D(97) - 1) * D("1.6667") * value / D(97)
    qty = q8(raw)
    assert qty == D("5.23445477")
    [proposal] = body["proposals"]
    assert proposal["side"] == "BUY" and proposal["kind"] == "buy_trigger"
    assert proposal["qty"] == qty and proposal["raw_qty"] == qty
    assert proposal["notional"] == q6(qty * 97)
    assert proposal["commission"] == q6(C * qty * 97)
    assert proposal["post_trade_weight"] == q6((50 + qty) * 97 / (value - q6(C * qty * 97)))
    assert proposal["trimmed"] is False and proposal["trimmed_by"] is None
    assert body["reason"] == "buy_trigger"
    assert body["message"] == ("Price 97.00 is 3.0 % below anchor 100.00 (trigger 3 %): "
                               "buy 5.23445477 shares")


def test_a_sell_trigger_fires_at_exactly_anchor_times_one_plus_tau(api, make_position):
    pos = make_position(qty=50, cash=5000, anchor_price=100)
    status, body = evaluate(api, pos.id, {"price": 103})
    assert status == 200
    value = D(50 * 103 + 5000)
    qty = q8(abs(D(100) / D(103) - 1) * D("1.6667") * value / D(103))
    [proposal] = body["proposals"]
    assert (proposal["side"], proposal["qty"], proposal["kind"]) == ("SELL", qty, "sell_trigger")
    assert body["reason"] == "sell_trigger"


# --- the price: given, stored, or none --------------------------------------------------------


def test_without_a_price_the_latest_stored_price_is_used(api, make_position):
    pos = make_position(qty=50, cash=5000, anchor_price=100)
    response = api.post("/v1/prices", [
        {"ticker": "zim", "price": 90, "ts": "2024-03-01T15:00:00Z"},
        {"ticker": "ZIM", "price": 97, "ts": "2024-03-01T16:00:00Z"},
        {"ticker": "ZIM", "price": 80, "ts": "2024-02-28T16:00:00Z"},
        {"ticker": "OTHER", "price": 50, "ts": "2024-03-02T16:00:00Z"},
    ], format="json")
    assert response.status_code == 201

    status, body = evaluate(api, pos.id)
    assert status == 200
    assert body["price"] == 97 and body["price_source"] == "stored"
    assert body["price_ts"] == "2024-03-01T16:00:00Z"
    assert body["reason"] == "buy_trigger"
    assert body["proposals"][0]["qty"] == D("5.23445477")
    [event] = evaluation_events(pos.id)
    assert exact(event.inputs)["price"] == 97
    assert event.inputs["price_source"] == "stored"


def test_with_neither_a_price_nor_a_stored_one_nothing_is_proposed(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, body = evaluate(api, pos.id, {})
    assert status == 200
    assert set(body) == RESPONSE_KEYS
    assert body["proposals"] == [] and body["blocked"] == []
    assert body["reason"] == "no_price" and body["price"] is None
    assert body["price_source"] == "none" and body["order_id"] is None
    assert "POST /v1/prices" in body["message"]
    pos.refresh_from_db()
    assert pos.anchor_price is None  # no price, no anchor
    [event] = evaluation_events(pos.id)
    assert event.outputs["reason"] == "no_price"

    # submit without a price: still nothing, and no order
    status, body = evaluate(api, pos.id, {"submit": True})
    assert status == 200 and body["reason"] == "no_price" and body["order_id"] is None
    assert not Order.objects.filter(position_id=pos.id).exists()


# --- submit --------------------------------------------------------------------------------


def test_submit_places_the_proposal_as_an_order(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, body = evaluate(api, pos.id, {"price": 100, "submit": True})
    assert status == 200
    [proposal] = body["proposals"]
    order = Order.objects.get(position_id=pos.id)
    assert body["order_id"] == order.id
    assert (order.side, order.qty, order.source) == ("BUY", proposal["qty"], "evaluation")
    assert order.status == OrderStatus.SUBMITTED
    assert order.trading_day == clock.session_day()
    assert types(pos.id) == ["position_created", "anchor_set", "order_submitted", "evaluation"]
    submitted = Event.objects.get(position_id=pos.id, type="order_submitted")
    assert submitted.order_id == order.id
    [evaluation] = evaluation_events(pos.id)
    assert evaluation.order_id == order.id and evaluation.outputs["order_id"] == order.id

    # The order is visible to its owner through the API
    listed = api.get(f"/v1/positions/{pos.id}/orders").json()["orders"]
    assert [(o["order_id"], o["source"]) for o in listed] == [(order.id, "evaluation")]


def test_submit_with_an_idempotency_key_replays_the_same_evaluation(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, first = evaluate(api, pos.id, {"price": 100, "submit": True},
                             HTTP_IDEMPOTENCY_KEY="eval-1")
    assert status == 200 and first["order_id"] is not None
    events_before = Event.objects.count()
    orders_before = Order.objects.count()

    status, again = evaluate(api, pos.id, {"price": 100, "submit": True},
                             HTTP_IDEMPOTENCY_KEY="eval-1")
    assert status == 200
    assert again == first
    assert Event.objects.count() == events_before
    assert Order.objects.count() == orders_before == 1

    # The same key with another body is refused and records nothing either
    status, body = evaluate(api, pos.id, {"price": 99, "submit": True},
                            HTTP_IDEMPOTENCY_KEY="eval-1")
    assert status == 409 and body["detail"] == "idempotency_signature_mismatch"
    assert Event.objects.count() == events_before
    assert Order.objects.count() == 1


def test_the_order_an_evaluation_submits_keeps_the_requests_key(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, body = evaluate(api, pos.id, {"price": 100, "submit": True},
                            HTTP_IDEMPOTENCY_KEY="eval-keeps-1")
    assert status == 200 and body["order_id"] is not None
    assert Order.objects.get(pk=body["order_id"]).idempotency_key == "eval-keeps-1"
    shown = api.get(f"/v1/orders/{body['order_id']}").json()
    assert shown["idempotency_key"] == "eval-keeps-1"
    submitted = Event.objects.get(position_id=pos.id, type="order_submitted")
    assert submitted.inputs["idempotency_key"] == "eval-keeps-1"
    # once the record has expired (purged), the key still places no second order
    Order.objects.filter(pk=body["order_id"]).update(status=OrderStatus.CANCELLED)
    IdempotencyRecord.objects.all().delete()
    status, again = evaluate(api, pos.id, {"price": 100, "submit": True},
                             HTTP_IDEMPOTENCY_KEY="eval-keeps-1")
    assert status == 409 and again["detail"] == "idempotency_signature_mismatch", again
    assert Order.objects.count() == 1


def test_two_submits_with_two_keys_the_second_is_blocked_by_the_open_order(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, first = evaluate(api, pos.id, {"price": 100, "submit": True})
    assert status == 200 and first["order_id"] is not None

    status, second = evaluate(api, pos.id, {"price": 100, "submit": True})
    assert status == 200
    assert second["order_id"] is None and second["proposals"] == []
    [blocked] = second["blocked"]
    assert set(blocked) == PROPOSAL_KEYS | {"blocked_by"}
    assert blocked["blocked_by"] == "open_order" and second["reason"] == "open_order"
    assert (blocked["side"], blocked["qty"]) == ("BUY", D("24.99937501"))
    assert second["message"].endswith("; blocked: an order is still open")
    assert Order.objects.filter(position_id=pos.id).count() == 1


def test_submit_without_an_idempotency_key_answers_400_and_changes_nothing(api, make_position):
    pos = make_position(qty=0, cash=10000)
    before = (types(pos.id), Order.objects.count(), IdempotencyRecord.objects.count())
    response = api.post(f"/v1/positions/{pos.id}/evaluate", {"price": 100, "submit": True},
                        format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"] == "missing_idempotency_key" and "Idempotency-Key" in body["message"]
    assert (types(pos.id), Order.objects.count(), IdempotencyRecord.objects.count()) == before
    pos.refresh_from_db()
    assert pos.anchor_price is None  # not even the anchor was set
    # a look needs no key
    assert api.post(f"/v1/positions/{pos.id}/evaluate", {"price": 100},
                    format="json").status_code == 200


# --- blocked proposals -------------------------------------------------------------------------


def test_below_min_notional_is_blocked_and_recorded(api, make_position):
    pos = make_position(qty=0, cash=300)
    status, body = evaluate(api, pos.id, {"price": 100, "submit": True})
    assert status == 200
    # buy_to(0.25) = 75 / (100 * 1.000025) -> 0.74998125, notional 74.998125 < 100
    qty = q8(D(75) / (D(100) * (1 + D("0.25") * C)))
    assert body["proposals"] == [] and body["order_id"] is None
    [blocked] = body["blocked"]
    assert blocked["blocked_by"] == "below_min_notional"
    assert blocked["qty"] == qty == D("0.74998125")
    assert blocked["notional"] == D("74.998125")
    assert body["reason"] == "below_min_notional"
    assert body["message"].endswith("; blocked: notional 74.998125 is below the minimum 100.00")
    assert not Order.objects.filter(position_id=pos.id).exists()
    rejected = Event.objects.get(position_id=pos.id, type="order_rejected_min")
    assert exact(rejected.outputs)["qty"] == qty
    assert exact(rejected.inputs) == {"notional": D("74.998125"), "min_notional": 100}


def test_daily_cap_blocks_once_the_days_orders_reach_the_cap(api, make_position):
    pos = make_position(qty=0, cash=10000, max_orders_per_day=2)
    today = clock.session_day()
    for _ in range(2):
        Order.objects.create(position=pos, side="BUY", qty=1, status=OrderStatus.CANCELLED,
                             trading_day=today)
    status, body = evaluate(api, pos.id, {"price": 100, "submit": True})
    assert status == 200
    assert body["proposals"] == [] and body["order_id"] is None
    [blocked] = body["blocked"]
    assert blocked["blocked_by"] == "daily_cap_reached" == body["reason"]
    assert body["message"].endswith("; blocked: the daily cap of 2 orders is reached")
    assert Order.objects.filter(position_id=pos.id).count() == 2


# Without an exchange calendar (VOLBAL_CALENDAR empty) the trading day is the calendar date in
# the trading time zone; volbal/tests/test_market.py covers the sessions of a calendar.
@override_settings(VOLBAL_CALENDAR="")
@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Tokyo", "Pacific/Kiritimati",
                                "Pacific/Pago_Pago"])
def test_the_daily_cap_counts_orders_of_the_trading_day_in_the_trading_time_zone(
        api, make_position, tz):
    with override_settings(VOLBAL_TRADING_TZ=tz):
        today = clock.trading_day()
        assert today == clock.now().astimezone(clock.trading_tz()).date()
        yesterday = today - dt.timedelta(days=1)
        pos = make_position(qty=0, cash=10000, max_orders_per_day=1)
        Order.objects.create(position=pos, side="BUY", qty=1, status=OrderStatus.FILLED,
                             filled_qty=1, trading_day=yesterday)
        status, body = evaluate(api, pos.id, {"price": 100})
        assert status == 200 and body["reason"] == "guardrail_rebalance"  # yesterday's: no cap

        Order.objects.create(position=pos, side="BUY", qty=1, status=OrderStatus.FILLED,
                             filled_qty=1, trading_day=today)
        status, body = evaluate(api, pos.id, {"price": 100})
        assert status == 200 and body["reason"] == "daily_cap_reached"


@override_settings(VOLBAL_CALENDAR="")
def test_the_trading_day_is_the_exchange_date_not_the_utc_date(api, make_position, monkeypatch):
    # 02:00 UTC on 10 March 2025 is still 9 March in New York (22:00 EDT).
    moment = dt.datetime(2025, 3, 10, 2, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(clock, "now", lambda: moment)
    pos = make_position(qty=0, cash=10000, max_orders_per_day=1)
    Order.objects.create(position=pos, side="BUY", qty=1, status=OrderStatus.FILLED,
                         filled_qty=1, trading_day=dt.date(2025, 3, 9))
    with override_settings(VOLBAL_TRADING_TZ="America/New_York"):
        status, body = evaluate(api, pos.id, {"price": 100, "submit": True})
        assert status == 200 and body["reason"] == "daily_cap_reached"
        assert body["order_id"] is None
    with override_settings(VOLBAL_TRADING_TZ="UTC"):
        status, body = evaluate(api, pos.id, {"price": 100, "submit": True})
        assert status == 200 and body["reason"] == "guardrail_rebalance"
        order = Order.objects.get(pk=body["order_id"])
        assert order.trading_day == dt.date(2025, 3, 10)


# --- guardrail trim ------------------------------------------------------------------------------


def test_a_trigger_trimmed_by_the_guardrail_says_so(api, make_position):
    pos = make_position(qty=50, cash=5000, anchor_price=100, sizing="original")
    status, body = evaluate(api, pos.id, {"price": 97, "submit": True})
    assert status == 200
    value = D(9850)
    raw = D(100) / D(97) * D("1.6667") * value / D(97)  # original sizing: 174.5 shares
    cap = (D("0.75") * value - D(4850)) / (D(97) * (1 + D("0.75") * C))  # buy_to(0.75)
    [proposal] = body["proposals"]
    assert proposal["raw_qty"] == q8(raw)
    assert proposal["qty"] == q8(cap) == D("26.15783197")
    assert proposal["trimmed"] is True and proposal["trimmed_by"] == "guardrail_high"
    assert proposal["post_trade_weight"] <= D("0.75")
    assert body["message"].endswith("; trimmed by the 75 % guardrail")
    trim = Event.objects.get(position_id=pos.id, type="order_trimmed_guardrail")
    assert trim.order_id == body["order_id"] is not None
    assert exact(trim.outputs)["qty"] == proposal["qty"]
    assert exact(trim.inputs)["raw_qty"] == proposal["raw_qty"]


def test_a_trim_by_cash_is_not_a_guardrail_event(api, make_position):
    pos = make_position(qty=50, cash=5000, anchor_price=100, sizing="original", guard_high=1)
    status, body = evaluate(api, pos.id, {"price": 97})
    [proposal] = body["proposals"]
    assert proposal["trimmed_by"] == "cash"
    assert proposal["qty"] == q8(D(5000) / (D(97) * (1 + C)))
    assert not Event.objects.filter(position_id=pos.id, type="order_trimmed_guardrail").exists()


# --- the evaluation event ------------------------------------------------------------------------


@pytest.mark.parametrize("setup, body", [
    ({"qty": 0, "cash": 10000}, {"price": 100}),
    ({"qty": 0, "cash": 10000}, {"price": 100, "submit": True}),
    ({"qty": 50, "cash": 5000, "anchor_price": 100}, {"price": 99}),
    ({"qty": 0, "cash": 300}, {"price": 100}),
    ({"qty": 50, "cash": 5000, "anchor_price": 100, "sizing": "original"}, {"price": 97}),
    ({"qty": 0, "cash": 10000}, {}),
])
def test_every_evaluation_leaves_one_evaluation_event_matching_the_response(
        api, make_position, setup, body):
    pos = make_position(**setup)
    status, response = evaluate(api, pos.id, body)
    assert status == 200
    [event] = evaluation_events(pos.id)
    assert event.message == response["message"]
    outputs = exact(event.outputs)
    for key in ("proposals", "blocked", "reason", "order_id", "price", "anchor_price", "value",
                "weight", "message"):
        assert key in outputs, key
    for key, value in outputs.items():
        assert exact(response[key]) == value, key
    assert event.order_id == response["order_id"]


def test_events_of_an_evaluation_are_listed_by_the_events_endpoint(api, make_position):
    pos = make_position(qty=0, cash=10000)
    evaluate(api, pos.id, {"price": 100, "submit": True})
    events = api.get(f"/v1/positions/{pos.id}/events?type=evaluation").json()["events"]
    assert len(events) == 1 and events[0]["outputs"]["reason"] == "guardrail_rebalance"


# --- refusals --------------------------------------------------------------------------------


def test_another_owners_position_is_not_found(api, other_api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, body = evaluate(other_api, pos.id, {"price": 100, "submit": True})
    assert status == 404 and body["detail"] == "position_not_found"
    status, body = evaluate(api, "pos_missing", {"price": 100})
    assert status == 404 and body["detail"] == "position_not_found"
    assert types(pos.id) == ["position_created"]
    assert not Order.objects.exists()
    pos.refresh_from_db()
    assert pos.anchor_price is None


@pytest.mark.parametrize("body, field", [
    ({"price": 0}, "price"),
    ({"price": -1}, "price"),
    ({"price": "abc"}, "price"),
    ({"price": "100"}, "price"),
    ({"price": 1.0000001}, "price"),
    ({"price": 100, "submit": "yes"}, "submit"),
    ({"price": 100, "prise": 1}, "prise"),
])
def test_a_bad_body_is_a_400_naming_the_field_and_records_nothing(api, make_position, body,
                                                                   field):
    pos = make_position(qty=0, cash=10000)
    status, response = evaluate(api, pos.id, body)
    assert status == 400
    assert response["detail"] == "validation_error"
    assert field in response["fields"]
    assert types(pos.id) == ["position_created"]
    assert Position.objects.get(pk=pos.id).anchor_price is None


def test_a_body_that_is_not_an_object_is_a_400(api, make_position):
    pos = make_position(qty=0, cash=10000)
    status, response = evaluate(api, pos.id, [1, 2])
    assert status == 400
    response = api.post(f"/v1/positions/{pos.id}/evaluate", "price=100",
                        content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert types(pos.id) == ["position_created"]


# --- at once, on PostgreSQL ----------------------------------------------------------------------


def _at_once(calls):
    """Run the callables in threads released together; returns their results in order."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except BaseException as exc:  # reported by the caller
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_submits_at_once_with_their_own_keys_place_one_order(user, make_position):
    from conftest import client_for

    pos = make_position(qty=0, cash=10000)
    results = _at_once([lambda: evaluate(client_for(user), pos.id, {"price": 100, "submit": True})
                        for _ in range(4)])
    assert all(status == 200 for status, _ in results), results
    placed = [body["order_id"] for _, body in results if body["order_id"]]
    assert len(placed) == 1
    assert sorted(body["reason"] for _, body in results) == [
        "guardrail_rebalance", "open_order", "open_order", "open_order"]
    assert Order.objects.filter(position_id=pos.id).count() == 1
    assert len(evaluation_events(pos.id)) == 4
    assert types(pos.id).count("anchor_set") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_submits_at_once_with_the_same_key_place_one_order_and_answer_alike(user, make_position):
    from conftest import client_for

    pos = make_position(qty=0, cash=10000)
    results = _at_once([lambda: evaluate(client_for(user), pos.id, {"price": 100, "submit": True},
                                         HTTP_IDEMPOTENCY_KEY="same")
                        for _ in range(4)])
    assert all(status == 200 for status, _ in results), results
    bodies = [body for _, body in results]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["order_id"] is not None
    assert Order.objects.filter(position_id=pos.id).count() == 1
    assert len(evaluation_events(pos.id)) == 1


def test_a_proposal_too_large_for_an_order_is_refused_not_a_server_error(api, make_position):
    # 9e15 cash at 0.001: buy_to(0.25) is 2.25e18 shares, more than an order's 16 digits.
    pos = make_position(qty=0, cash="9000000000000000")
    status, body = evaluate(api, pos.id, {"price": D("0.001")})
    assert status == 200 and body["proposals"][0]["qty"] > D(10) ** 16  # a look is fine
    events_before = Event.objects.count()
    status, body = evaluate(api, pos.id, {"price": D("0.001"), "submit": True})
    assert status == 409 and body["detail"] == "qty_out_of_range"
    assert "nothing was submitted" in body["message"]
    assert not Order.objects.exists()
    assert Event.objects.count() == events_before


def test_the_dividend_receivable_counts_in_the_value_but_is_not_spendable(api, make_position):
    pos = make_position(qty=0, cash=1000)
    Position.objects.filter(pk=pos.id).update(dividend_receivable=9000)
    status, body = evaluate(api, pos.id, {"price": 100})
    assert status == 200
    assert body["value"] == 10000 and body["weight"] == 0  # V = S*P + C + R
    [proposal] = body["proposals"]
    # buy_to(0.25) = 2500 / (100 * 1.000025) = 24.999 shares wanted, but only the cash
    # 1000 can pay: 1000 / (100 * 1.0001) = 9.99900009 shares, commission included.
    assert proposal["raw_qty"] == q8(D(2500) / (D(100) * (1 + D("0.25") * C)))
    assert proposal["qty"] == q8(D(1000) / (D(100) * (1 + C))) == D("9.99900009")
    assert proposal["trimmed"] is True and proposal["trimmed_by"] == "cash"
    assert proposal["notional"] + proposal["commission"] <= 1000
    assert body["message"].endswith("; trimmed by available cash")


@pytest.mark.django_db
def test_a_size_beyond_any_order_is_409_and_records_nothing(api, make_position):
    pos = make_position(qty="0", cash="9000000000000000")
    before = Event.objects.count()
    res = api.post(f"/v1/positions/{pos.id}/evaluate", {"price": 0.000001}, format="json")
    assert res.status_code == 409 and res.json()["detail"] == "qty_out_of_range"
    assert Event.objects.count() == before
