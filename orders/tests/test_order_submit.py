"""POST /v1/positions/{id}/orders: every status and error code, and GET of the position's orders."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import assert_error
from events.models import Event
from orders.models import IdempotencyRecord, Order

pytestmark = pytest.mark.django_db


def orders_url(position_id: str) -> str:
    return f"/v1/positions/{position_id}/orders"


def submit(client, position_id, body, key="k1", **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(orders_url(position_id), body, format="json", **headers, **extra)


def submit_raw(client, position_id, raw: str, key="k1"):
    return client.generic(
        "POST",
        orders_url(position_id),
        raw.encode(),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def state(position_id: str) -> tuple[int, int, int]:
    return (
        Order.objects.filter(position_id=position_id).count(),
        Event.objects.filter(position_id=position_id).count(),
        IdempotencyRecord.objects.count(),
    )


# --- 201, 200 replay, 409 mismatch (the seed) ---------------------------------------------------


def test_first_submit_answers_201_with_the_order(api, make_position):
    position = make_position()
    response = submit(api, position.id, {"side": "BUY", "qty": 1.5})
    assert response.status_code == 201
    body = response.json()
    assert body["accepted"] is True
    assert body["position_id"] == position.id
    assert body["order_id"].startswith("ord_")
    assert body["side"] == "BUY" and body["qty"] == 1.5 and body["status"] == "submitted"
    assert "Idempotent-Replayed" not in response.headers
    order = Order.objects.get(pk=body["order_id"])
    assert (order.side, order.qty, order.idempotency_key) == ("BUY", Decimal("1.5"), "k1")
    event = Event.objects.filter(position_id=position.pk).order_by("-id").first()
    assert event.type == "order_submitted" and event.order_id == order.id


def test_replay_with_same_key_and_body_answers_200_with_the_same_order(api, make_position):
    position = make_position()
    first = submit(api, position.id, {"side": "BUY", "qty": 1.5})
    again = submit(api, position.id, {"side": "BUY", "qty": 1.5})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Order.objects.filter(position=position).count() == 1
    # the replay adds no event
    assert list(Event.objects.filter(position_id=position.pk).values_list("type", flat=True)) == [
        "position_created",
        "order_submitted",
    ]


def test_same_key_with_another_body_answers_409_signature_mismatch(api, make_position):
    position = make_position()
    first = submit(api, position.id, {"side": "BUY", "qty": 1.5})
    before = state(position.id)
    mismatch = submit(api, position.id, {"side": "SELL", "qty": 2.0})
    assert_error(mismatch, 409, "idempotency_signature_mismatch")
    assert state(position.id) == before
    # the key still replays its own order
    assert submit(api, position.id, {"side": "BUY", "qty": 1.5}).json() == first.json()


@pytest.mark.parametrize(
    "raw",
    [
        '{"qty": 1.5, "side": "BUY"}',  # key order
        '{\n  "side" :  "BUY",\n  "qty" : 1.5\n}\n',  # whitespace
        '{"side": "BUY", "qty": 1.50}',  # 1.5 == 1.50
        '{"side": "BUY", "qty": 15e-1}',  # and 15e-1
        '{"side": "BUY", "qty": 1.500000}',
    ],
)
def test_equivalent_bodies_replay_rather_than_mismatch(api, make_position, raw):
    position = make_position()
    first = submit_raw(api, position.id, '{"side":"BUY","qty":1.5}')
    again = submit_raw(api, position.id, raw)
    assert first.status_code == 201
    assert again.status_code == 200, again.content
    assert again.json()["order_id"] == first.json()["order_id"]
    assert Order.objects.filter(position=position).count() == 1


def test_an_integer_and_the_same_decimal_replay(api, make_position):
    position = make_position()
    first = submit_raw(api, position.id, '{"side":"BUY","qty":2}')
    again = submit_raw(api, position.id, '{"side":"BUY","qty":2.0}')
    assert (first.status_code, again.status_code) == (201, 200)


@pytest.mark.parametrize(
    "raw",
    [
        '{"side":"BUY","qty":1.6}',
        '{"side":"BUY","qty":"1.5"}',  # a string is not the number (and is a 400 anyway)
        '{"side":"BUY","qty":{"$n":"1.5"}}',  # nor an object that looks like the fingerprint's
        '{"side":"buy","qty":1.5}',
    ],
)
def test_a_different_body_never_replays(api, make_position, raw):
    position = make_position()
    submit_raw(api, position.id, '{"side":"BUY","qty":1.5}')
    response = submit_raw(api, position.id, raw)
    assert response.status_code in (400, 409), response.content
    assert "Idempotent-Replayed" not in response.headers
    assert Order.objects.filter(position=position).count() == 1


def test_the_same_key_on_two_positions_places_two_orders(api, make_position):
    first, second = make_position(), make_position(ticker="AAPL")
    a = submit(api, first.id, {"side": "BUY", "qty": 1})
    b = submit(api, second.id, {"side": "BUY", "qty": 1})
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["order_id"] != b.json()["order_id"]


def test_the_same_key_from_two_users_places_two_orders(api, other_api, make_position, other_user):
    mine, theirs = make_position(), make_position(owner=other_user)
    a = submit(api, mine.id, {"side": "BUY", "qty": 1}, key="shared")
    b = submit(other_api, theirs.id, {"side": "BUY", "qty": 1}, key="shared")
    assert (a.status_code, b.status_code) == (201, 201)


# --- 404, 400 missing key, 400 invalid key --------------------------------------------------


def test_unknown_position_answers_404_and_stores_no_record(api):
    response = submit(api, "pos_missing", {"side": "BUY", "qty": 1})
    assert_error(response, 404, "position_not_found")
    assert IdempotencyRecord.objects.count() == 0
    assert Order.objects.count() == 0


def test_no_key_answers_400_missing_idempotency_key(api, make_position):
    position = make_position()
    before = state(position.id)
    response = submit(api, position.id, {"side": "BUY", "qty": 1}, key=None)
    assert_error(response, 400, "missing_idempotency_key")
    assert state(position.id) == before


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k" * 256,
        "tab\there",
        "new\nline",
        "bell\x07",
        "nul\x00",
        "del\x7f",
        "caf\u00e9",
    ],
    ids=["empty", "256-chars", "tab", "newline", "bell", "nul", "del", "non-ascii"],
)
def test_invalid_keys_answer_400_invalid_idempotency_key(api, make_position, key):
    position = make_position()
    before = state(position.id)
    response = submit(api, position.id, {"side": "BUY", "qty": 1}, key=key)
    assert_error(response, 400, "invalid_idempotency_key")
    assert state(position.id) == before


@pytest.mark.parametrize("key", ["a", "k" * 255, "with spaces and ~!@#$%^&*()", "0"])
def test_valid_keys_of_1_to_255_printable_characters_are_accepted(api, make_position, key):
    position = make_position()
    first = submit(api, position.id, {"side": "BUY", "qty": 1}, key=key)
    again = submit(api, position.id, {"side": "BUY", "qty": 1}, key=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert Order.objects.get().idempotency_key == key


# --- the daily cap -------------------------------------------------------------------------


def test_the_daily_cap_answers_409_at_max_orders_per_day(api, make_position):
    position = make_position(max_orders_per_day=3)
    ids = []
    for n in range(3):
        response = submit(api, position.id, {"side": "BUY", "qty": 1}, key=f"cap-{n}")
        assert response.status_code == 201
        ids.append(response.json()["order_id"])
    before = state(position.id)
    refused = submit(api, position.id, {"side": "BUY", "qty": 1}, key="cap-3")
    body = assert_error(refused, 409, "daily_order_cap_exceeded")
    assert "3" in body["message"]
    assert state(position.id) == before
    # replays of orders placed before the cap still answer their order
    replay = submit(api, position.id, {"side": "BUY", "qty": 1}, key="cap-0")
    assert replay.status_code == 200 and replay.json()["order_id"] == ids[0]


def test_cancelled_and_filled_orders_still_count_toward_the_cap(api, make_position):
    position = make_position(max_orders_per_day=2)
    first = submit(api, position.id, {"side": "BUY", "qty": 1}, key="a").json()["order_id"]
    api.post(f"/v1/orders/{first}/cancel", format="json")
    second = submit(api, position.id, {"side": "BUY", "qty": 1}, key="b").json()["order_id"]
    api.post(f"/v1/orders/{second}/fill", {"price": 10, "filled_qty": 1}, format="json")
    assert_error(submit(api, position.id, {"side": "BUY", "qty": 1}, key="c"), 409,
                 "daily_order_cap_exceeded")


def test_a_refused_request_stores_no_record_so_its_key_can_be_retried(api, make_position):
    position = make_position(max_orders_per_day=1)
    placed = submit(api, position.id, {"side": "BUY", "qty": 1}, key="first")
    assert placed.status_code == 201
    refused = submit(api, position.id, {"side": "BUY", "qty": 2}, key="retry-me")
    assert_error(refused, 409, "daily_order_cap_exceeded")
    assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    # the operator raises the cap; the same key and body now succeed (no stale replay of the 409)
    assert api.patch(f"/v1/positions/{position.id}", {"max_orders_per_day": 2},
                     format="json").status_code == 200
    retried = submit(api, position.id, {"side": "BUY", "qty": 2}, key="retry-me")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers


def test_a_validation_error_stores_no_record_and_the_key_can_be_reused(api, make_position):
    position = make_position()
    bad = submit(api, position.id, {"side": "BUY", "qty": 0}, key="kk")
    assert_error(bad, 400, "validation_error")
    assert IdempotencyRecord.objects.count() == 0
    # a corrected body under the same key is a first request, not a mismatch
    good = submit(api, position.id, {"side": "BUY", "qty": 1}, key="kk")
    assert good.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"side": "HOLD", "qty": 1}, "side"),
        ({"side": "BUY", "qty": 0}, "qty"),
        ({"side": "BUY", "qty": -1}, "qty"),
        ({"side": "BUY"}, "qty"),
        ({"qty": 1}, "side"),
        ({"side": "BUY", "qty": 1, "price": 10}, "price"),
    ],
)
def test_invalid_order_bodies_answer_400_naming_the_field(api, make_position, body, field):
    position = make_position()
    before = state(position.id)
    response = submit(api, position.id, body)
    assert field in assert_error(response, 400, "validation_error")["fields"]
    assert state(position.id) == before


def test_an_order_key_reused_after_its_record_expired_still_answers_its_order(
    api, make_position
):
    position = make_position()
    first = submit(api, position.id, {"side": "BUY", "qty": 1}, key="old").json()
    IdempotencyRecord.objects.all().delete()  # expired and purged
    again = submit(api, position.id, {"side": "BUY", "qty": 1}, key="old")
    assert again.status_code == 200
    assert again.json()["order_id"] == first["order_id"]
    IdempotencyRecord.objects.all().delete()
    assert_error(submit(api, position.id, {"side": "SELL", "qty": 1}, key="old"), 409,
                 "idempotency_signature_mismatch")
    assert Order.objects.count() == 1


# --- GET /v1/positions/{id}/orders --------------------------------------------------------------


def test_list_orders_oldest_first_with_every_field(api, make_position):
    position = make_position(qty=2.5)
    ids = [
        submit(api, position.id, {"side": side, "qty": qty}, key=f"o{n}").json()["order_id"]
        for n, (side, qty) in enumerate([("BUY", 1), ("SELL", 2.5), ("BUY", 0.125)])
    ]
    response = api.get(orders_url(position.id))
    assert response.status_code == 200
    body = response.json()
    assert body["position_id"] == position.id
    assert body["next"] is None
    assert [o["order_id"] for o in body["orders"]] == ids
    first = body["orders"][0]
    assert first == {
        **first,
        "position_id": position.id,
        "side": "BUY",
        "qty": 1,
        "filled_qty": 0,
        "remaining_qty": 1,
        "avg_fill_price": None,
        "commission_paid": 0,
        "status": "submitted",
        "source": "api",
        "idempotency_key": "o0",
    }
    assert {"trading_day", "created_at", "updated_at"} <= set(first)
    assert body["orders"][1]["qty"] == 2.5 and body["orders"][2]["qty"] == 0.125


def test_list_orders_pages_with_limit_and_cursor(api, make_position):
    position = make_position()
    ids = [
        submit(api, position.id, {"side": "BUY", "qty": 1}, key=f"p{n}").json()["order_id"]
        for n in range(3)
    ]
    seen, url = [], orders_url(position.id) + "?limit=2"
    pages = 0
    while url:
        body = api.get(url).json()
        pages += 1
        seen += [o["order_id"] for o in body["orders"]]
        url = body["next"] and f"{orders_url(position.id)}?limit=2&cursor={body['next']}"
    assert seen == ids and pages == 2


def test_list_orders_of_an_unknown_position_answers_404(api):
    assert_error(api.get(orders_url("pos_nope")), 404, "position_not_found")


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=garbage!!"])
def test_list_orders_with_a_bad_query_answers_400(api, make_position, query):
    position = make_position()
    assert_error(api.get(f"{orders_url(position.id)}?{query}"), 400, "invalid_query")


# --- orders that can never fill are refused ---------------------------------------------------


def post_price(api, price, ts="2026-01-02T15:00:00Z", ticker="ZIM"):
    response = api.post("/v1/prices", {"ticker": ticker, "price": price, "ts": ts}, format="json")
    assert response.status_code == 201, response.content


def test_a_sell_beyond_the_shares_held_answers_409_and_creates_nothing(api, make_position):
    position = make_position(qty="15.44", cash=0, max_orders_per_day=1)
    before = state(position.id)
    body = assert_error(submit(api, position.id, {"side": "SELL", "qty": 1000}, key="s1"), 409,
                        "insufficient_qty")
    assert "15.44" in body["message"]
    assert state(position.id) == before  # no order, no event, no idempotency record
    # it counted toward nothing: the one order the day allows is still there to place
    assert submit(api, position.id, {"side": "SELL", "qty": 15.44}, key="s2").status_code == 201


def test_open_sells_commit_their_shares_until_cancelled(api, make_position):
    position = make_position(qty=3, cash=0)
    first = submit(api, position.id, {"side": "SELL", "qty": 2}, key="a")
    assert first.status_code == 201
    assert submit(api, position.id, {"side": "SELL", "qty": 1}, key="b").status_code == 201
    body = assert_error(submit(api, position.id, {"side": "SELL", "qty": 0.5}, key="c"), 409,
                        "insufficient_qty")
    assert "3 already committed" in body["message"]
    api.post(f"/v1/orders/{first.json()['order_id']}/cancel", format="json")
    assert submit(api, position.id, {"side": "SELL", "qty": 2}, key="c").status_code == 201


def test_a_buy_beyond_the_cash_at_the_stored_price_answers_409(api, make_position):
    position = make_position(qty=0, cash=6354, max_orders_per_day=1)
    post_price(api, 140)
    before = state(position.id)
    body = assert_error(submit(api, position.id, {"side": "BUY", "qty": 100000}, key="b1"), 409,
                        "insufficient_cash")
    assert "140" in body["message"] and "6354" in body["message"]
    assert state(position.id) == before
    # 45 x 140 = 6300 plus 0.63 commission fits; the refusal used none of the day's one order
    assert submit(api, position.id, {"side": "BUY", "qty": 45}, key="b2").status_code == 201


def test_open_buys_commit_their_cash(api, make_position):
    position = make_position(qty=0, cash=10000)
    post_price(api, 100)
    assert submit(api, position.id, {"side": "BUY", "qty": 60}, key="a").status_code == 201
    # 60 + 40 shares x 100 plus commission exceed 10000; 60 + 39 do not
    assert_error(submit(api, position.id, {"side": "BUY", "qty": 40}, key="b"), 409,
                 "insufficient_cash")
    assert submit(api, position.id, {"side": "BUY", "qty": 39}, key="b").status_code == 201


def test_a_buy_is_costed_at_the_last_fill_when_it_is_newer_than_the_stored_price(
        api, make_position):
    position = make_position(qty=0, cash=10000)
    post_price(api, 1, ts="2020-01-02T15:00:00Z")  # old and cheap
    order_id = submit(api, position.id, {"side": "BUY", "qty": 10}, key="a").json()["order_id"]
    api.post(f"/v1/orders/{order_id}/fill", {"price": 140, "filled_qty": 10}, format="json")
    # cash left 8599.86: 62 shares at 140 would cost 8680.87, more than that
    assert_error(submit(api, position.id, {"side": "BUY", "qty": 62}, key="b"), 409,
                 "insufficient_cash")
    assert submit(api, position.id, {"side": "BUY", "qty": 61}, key="b").status_code == 201


def test_with_no_price_known_a_buy_is_accepted_and_its_fill_judges_the_cash(api, make_position):
    """The seed's smoke: BUY 1.5 on a new position with no price anywhere answers 201."""
    position = make_position(qty=0, cash=10000)
    response = submit(api, position.id, {"side": "BUY", "qty": 1000000}, key="a")
    assert response.status_code == 201
    refused = api.post(f"/v1/orders/{response.json()['order_id']}/fill",
                       {"price": 1, "filled_qty": 1000000}, format="json")
    assert_error(refused, 409, "insufficient_cash")


def test_a_refused_submission_is_not_remembered_under_its_key(api, make_position):
    position = make_position(qty=1, cash=0)
    assert_error(submit(api, position.id, {"side": "SELL", "qty": 2}, key="k"), 409,
                 "insufficient_qty")
    assert not IdempotencyRecord.objects.filter(key="k").exists()
    # the key is free: another body under it is a first submission, not a mismatch
    response = submit(api, position.id, {"side": "SELL", "qty": 1}, key="k")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
