"""POST /v1/prices: one price or many, all or nothing; the latest serves a price-less evaluation."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.test import override_settings

from positions.models import Price
from positions.selectors import latest_price

pytestmark = pytest.mark.django_db


UTC = dt.UTC


def post(client, payload):
    response = client.post("/v1/prices", payload, format="json")
    return response.status_code, json.loads(response.content, parse_float=Decimal)


def stored():
    return [(p.ticker, p.price, p.ts) for p in Price.objects.order_by("ticker", "ts")]


def test_one_price_as_an_object(api):
    status, body = post(api, {"ticker": "ZIM", "price": 101.25, "ts": "2024-03-01T16:00:00Z"})
    assert status == 201
    assert body["recorded"] == 1
    assert body["prices"] == [
        {"ticker": "ZIM", "price": Decimal("101.25"), "ts": "2024-03-01T16:00:00Z"}
    ]
    assert stored() == [("ZIM", Decimal("101.25"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC))]


def test_a_list_of_prices(api):
    status, body = post(api, [
        {"ticker": "ZIM", "price": 100, "ts": "2024-03-01T16:00:00Z"},
        {"ticker": "ZIM", "price": 102.5, "ts": "2024-03-04T16:00:00-05:00"},
        {"ticker": "AAPL", "price": 180.123456, "ts": "2024-03-01T21:00:00Z"},
    ])
    assert status == 201 and body["recorded"] == 3
    assert stored() == [
        ("AAPL", Decimal("180.123456"), dt.datetime(2024, 3, 1, 21, tzinfo=UTC)),
        ("ZIM", Decimal("100"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC)),
        ("ZIM", Decimal("102.5"), dt.datetime(2024, 3, 4, 21, tzinfo=UTC)),
    ]
    assert latest_price(ticker="ZIM").price == Decimal("102.5")


def test_the_same_ticker_and_time_is_replaced_not_duplicated(api):
    ts = "2024-03-01T16:00:00Z"
    assert post(api, {"ticker": "ZIM", "price": 100, "ts": ts})[0] == 201
    status, body = post(api, {"ticker": "zim", "price": 99.5, "ts": "2024-03-01T11:00:00-05:00"})
    assert status == 201 and body["recorded"] == 1
    assert stored() == [("ZIM", Decimal("99.5"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC))]
    # twice in one list: the last one wins
    status, body = post(api, [{"ticker": "ZIM", "price": 1, "ts": ts},
                              {"ticker": "ZIM", "price": 2, "ts": ts}])
    assert status == 201 and body["recorded"] == 1
    assert stored() == [("ZIM", Decimal("2"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC))]


def test_the_ticker_is_upper_cased(api):
    status, body = post(api, {"ticker": " brk.b ", "price": 400, "ts": "2024-03-01T16:00:00Z"})
    assert status == 201
    assert body["prices"][0]["ticker"] == "BRK.B"
    assert Price.objects.get().ticker == "BRK.B"


def test_without_a_time_the_price_is_stamped_now(api):
    before = dt.datetime.now(UTC)
    status, body = post(api, {"ticker": "ZIM", "price": 100})
    assert status == 201
    price = Price.objects.get()
    assert before - dt.timedelta(seconds=1) <= price.ts <= dt.datetime.now(UTC)


def test_a_naive_time_is_utc(api):
    assert post(api, {"ticker": "ZIM", "price": 100, "ts": "2024-03-01T16:00:00"})[0] == 201
    assert Price.objects.get().ts == dt.datetime(2024, 3, 1, 16, tzinfo=UTC)


GOOD = {"ticker": "ZIM", "price": 100, "ts": "2024-03-01T16:00:00Z"}


@pytest.mark.parametrize("bad, field", [
    ({"ticker": "ZIM", "price": 0, "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"ticker": "ZIM", "price": -5, "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"ticker": "ZIM", "price": "abc", "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"ticker": "ZIM", "price": "101", "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"ticker": "ZIM", "price": 1.0000001, "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"ticker": "ZIM", "ts": "2024-03-02T16:00:00Z"}, "price"),
    ({"price": 100, "ts": "2024-03-02T16:00:00Z"}, "ticker"),
    ({"ticker": "ZIM", "price": 100, "ts": "yesterday"}, "ts"),
    ({"ticker": "ZIM", "price": 100, "ts": "2024-02-30T16:00:00Z"}, "ts"),
    ({"ticker": "1ZIM", "price": 100, "ts": "2024-03-02T16:00:00Z"}, "ticker"),
    ({"ticker": "ZI M", "price": 100, "ts": "2024-03-02T16:00:00Z"}, "ticker"),
    ({"ticker": "ZIM", "price": 100, "ts": "2024-03-02T16:00:00Z", "volume": 5}, "volume"),
])
def test_a_bad_row_is_a_400_and_nothing_of_the_request_is_stored(api, bad, field):
    for payload in (bad, [GOOD, bad], [bad, GOOD]):
        status, body = post(api, payload)
        assert status == 400, payload
        assert body["detail"] == "validation_error"
        assert field in json.dumps(body["fields"]), body
        assert Price.objects.count() == 0


@pytest.mark.parametrize("bad, field", [({"ticker": "ZIM", "price": -1}, "price"),
                                        ({"ticker": "1ZIM", "price": 1}, "ticker")])
def test_a_bad_row_is_named_by_its_index_in_the_list(api, bad, field):
    status, body = post(api, [GOOD, GOOD, bad])
    assert status == 400
    assert list(body["fields"]) == ["2"]
    assert list(body["fields"]["2"]) == [field]
    assert Price.objects.count() == 0


def test_an_empty_list_is_a_400(api):
    status, body = post(api, [])
    assert status == 400 and body["detail"] == "validation_error"
    assert Price.objects.count() == 0


def test_a_body_that_is_neither_an_object_nor_a_list_is_a_400(api):
    for payload in (5, "ZIM 100", [1, 2]):
        status, body = post(api, payload)
        assert status == 400, payload
    assert Price.objects.count() == 0


def test_ten_thousand_prices_are_accepted_and_more_are_a_413(api):
    start = dt.datetime(2000, 1, 1, tzinfo=UTC)
    rows = [{"ticker": "ZIM", "price": 100 + i % 7,
             "ts": (start + dt.timedelta(hours=i)).isoformat()} for i in range(10_001)]
    status, body = post(api, rows)
    assert status == 413 and body["detail"] == "too_many_prices"
    assert Price.objects.count() == 0

    status, body = post(api, rows[:10_000])
    assert status == 201 and body["recorded"] == 10_000
    assert Price.objects.count() == 10_000


def test_outside_local_mode_recording_prices_needs_the_permission(api, user):
    from django.contrib.auth.models import Permission

    with override_settings(LOCAL_MODE=False):
        status, body = post(api, GOOD)
        assert status == 403 and body["detail"] == "permission_denied"
        assert Price.objects.count() == 0
        user.user_permissions.add(Permission.objects.get(codename="add_price"))
        status, body = post(api, GOOD)
        assert status == 201
    assert Price.objects.count() == 1


def test_duplicates_in_one_list_answer_what_was_stored(api):
    status, body = post(api, [
        {"ticker": "ZIM", "price": 1, "ts": "2020-01-01T00:00:00Z"},
        {"ticker": "AAPL", "price": 5, "ts": "2020-01-01T00:00:00Z"},
        {"ticker": "zim", "price": 2, "ts": "2020-01-01T00:00:00Z"},  # the same ticker and time
    ])
    assert status == 201
    assert body["recorded"] == 2
    assert [(p["ticker"], p["price"]) for p in body["prices"]] == [("ZIM", 2), ("AAPL", 5)]
    assert stored() == [("AAPL", Decimal(5), dt.datetime(2020, 1, 1, tzinfo=UTC)),
                        ("ZIM", Decimal(2), dt.datetime(2020, 1, 1, tzinfo=UTC))]


@pytest.mark.parametrize("ts", ["9999-12-31T00:00:00Z", "2099-01-01T00:00:00Z"])
def test_a_price_far_in_the_future_is_refused_on_ts(api, ts):
    for payload in ({"ticker": "ZIM", "price": 1, "ts": ts}, [GOOD, {"ticker": "ZIM", "price": 1,
                                                                      "ts": ts}]):
        status, body = post(api, payload)
        assert status == 400 and body["detail"] == "validation_error"
        fields = body["fields"] if isinstance(payload, dict) else body["fields"]["1"]
        assert list(fields) == ["ts"] and "in the future" in json.dumps(fields)
        assert Price.objects.count() == 0
    assert latest_price(ticker="ZIM") is None


def test_the_future_allowance_is_a_setting(api, settings):
    soon = (dt.datetime.now(UTC) + dt.timedelta(seconds=120)).isoformat()
    status, _ = post(api, {"ticker": "ZIM", "price": 1, "ts": soon})
    assert status == 201  # within the default 5 minutes (clock skew)
    settings.VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS = 60
    later = (dt.datetime.now(UTC) + dt.timedelta(seconds=120, minutes=1)).isoformat()
    status, body = post(api, {"ticker": "ZIM", "price": 2, "ts": later})
    assert status == 400 and "at most 60 seconds ahead" in json.dumps(body["fields"]["ts"])
    assert Price.objects.count() == 1


def test_the_prices_service_refuses_a_future_time_for_every_caller():
    from positions.services import prices_record
    from volbal.errors import DomainError

    with pytest.raises(DomainError) as err:
        prices_record(rows=[{"ticker": "ZIM", "price": Decimal(1),
                             "ts": dt.datetime(2099, 1, 1, tzinfo=UTC)}])
    assert err.value.status == 400 and list(err.value.fields) == ["ts"]
    assert Price.objects.count() == 0
