"""An order's side in any case, and the body media types the Idempotency-Key records.

- ``"buy"`` is taken as ``BUY`` (a ticker ``"aapl"`` already was ``AAPL``); the answer and the
  stored order say ``BUY``.
- Exactly the bodies the parser takes are the ones the middleware records: ``application/*`` and
  ``*/*`` were parsed as JSON but not recorded, so a retried fill with the same key applied twice;
  now they are 415 like any other media type, and ``application/json`` in any case replays."""

from __future__ import annotations

import pytest

from conftest import assert_error
from orders.models import Fill, IdempotencyRecord, Order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("side", ["buy", "Buy", "bUY"])
def test_a_side_is_taken_in_any_case_and_answered_upper_case(api, make_position, side):
    position = make_position()
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": side, "qty": 2},
                        format="json", HTTP_IDEMPOTENCY_KEY="k-case")
    assert response.status_code == 201, response.content
    assert response.json()["side"] == "BUY"
    assert Order.objects.get(pk=response.json()["order_id"]).side == "BUY"


def test_an_unknown_side_is_still_a_400(api, make_position):
    position = make_position()
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": "hold", "qty": 2},
                        format="json", HTTP_IDEMPOTENCY_KEY="k-hold")
    assert "side" in assert_error(response, 400, "validation_error")["fields"]


def _order(api, position) -> str:
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 10},
                        format="json", HTTP_IDEMPOTENCY_KEY="place")
    assert response.status_code == 201, response.content
    return response.json()["order_id"]


def _fill(api, order_id, content_type):
    return api.generic("POST", f"/v1/orders/{order_id}/fill", b'{"price": 10, "filled_qty": 1}',
                       content_type=content_type, HTTP_IDEMPOTENCY_KEY="fill-once")


@pytest.mark.parametrize("content_type", ["application/*", "*/*", "*/*; q=1",
                                          "application/json; charset=latin-1"])
def test_a_retried_fill_with_a_wildcard_media_type_is_refused_not_applied_twice(
        api, make_position, content_type):
    order_id = _order(api, make_position())
    records = IdempotencyRecord.objects.count()
    for _ in range(2):
        assert_error(_fill(api, order_id, content_type), 415, "unsupported_media_type")
    assert Fill.objects.filter(order_id=order_id).count() == 0
    assert IdempotencyRecord.objects.count() == records


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON",
                                          "application/json; charset=UTF-8"])
def test_a_retried_json_fill_is_applied_once_and_replayed(api, make_position, content_type):
    order_id = _order(api, make_position())
    first, second = _fill(api, order_id, content_type), _fill(api, order_id, content_type)
    assert first.status_code == 200, first.content
    assert second.status_code == 200 and second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Fill.objects.filter(order_id=order_id).count() == 1
