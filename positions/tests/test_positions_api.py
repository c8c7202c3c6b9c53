"""POST/GET/PATCH /v1/positions: create, read, list (filters, cursor pages), configure."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import assert_error
from events.models import Event
from orders.models import Fill
from positions.models import EXECUTION_FIELDS, STRATEGY_FIELDS, Position, Price

pytestmark = pytest.mark.django_db

EVERY_FIELD = {
    "id", "ticker", "qty", "cash", "anchor_price", "dividend_receivable", *STRATEGY_FIELDS,
    *EXECUTION_FIELDS,
    "price", "price_ts", "price_source", "value", "weight", "created_at", "updated_at",
    "portfolio", "target_weight",
}
DEFAULTS = {
    "trigger_pct": 0.03,
    "rebalance_ratio": 1.6667,
    "sizing": "proportional",
    "fixed_fraction": 0.1,
    "guard_low": 0.25,
    "guard_high": 0.75,
    "min_notional": 100,
    "commission_rate": 0.0001,
    "max_orders_per_day": 5,
    "fractional": True,
    "qty_step": None,
    "withholding_tax_rate": 0.25,
}


def create(api, **body):
    return api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 10000, **body},
                    format="json")


def cursor_of(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# --- create -------------------------------------------------------------------------------------


def test_create_answers_201_with_every_field(api, user):
    response = create(api, ticker="zim", qty=10, cash=5000.5)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == EVERY_FIELD
    assert body["id"].startswith("pos_")
    assert body["ticker"] == "ZIM"
    assert (body["qty"], body["cash"]) == (10, 5000.5)
    assert body["anchor_price"] is None and body["dividend_receivable"] == 0
    assert {k: body[k] for k in DEFAULTS} == DEFAULTS
    assert (body["price"], body["value"], body["weight"]) == (None, None, None)
    assert (body["price_ts"], body["price_source"]) == (None, "none")
    position = Position.objects.get(pk=body["id"])
    assert position.owner == user
    assert (position.qty, position.cash) == (Decimal(10), Decimal("5000.5"))
    event = Event.objects.get(position_id=position.pk)
    assert event.type == "position_created"
    assert event.inputs["ticker"] == "ZIM" and event.outputs["trigger_pct"] == Decimal("0.03")


@pytest.mark.parametrize(("raw", "ticker"), [("aapl", "AAPL"), (" brk.b ", "BRK.B"),
                                             ("Rds-A", "RDS-A")])
def test_the_ticker_is_upper_cased(api, raw, ticker):
    assert create(api, ticker=raw).json()["ticker"] == ticker


def test_optional_anchor_and_strategy_fields_are_echoed(api):
    chosen = {
        "anchor_price": 12.34,
        "trigger_pct": 0.05,
        "rebalance_ratio": 2,
        "sizing": "fixed_fraction",
        "fixed_fraction": 0.2,
        "guard_low": 0.1,
        "guard_high": 0.9,
        "min_notional": 50,
        "commission_rate": 0.001,
        "max_orders_per_day": 7,
        "fractional": False,
        "qty_step": 5,
        "withholding_tax_rate": 0.15,
    }
    response = create(api, qty=100, **chosen)
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in chosen} == chosen
    position = Position.objects.get(pk=body["id"])
    assert position.anchor_price == Decimal("12.34") and position.sizing == "fixed_fraction"


def test_create_shows_value_and_weight_once_a_price_is_known(api):
    Price.objects.create(ticker="ZIM", price=Decimal("50"), ts=timezone.now())
    body = create(api, qty=100, cash=5000).json()
    assert (body["price"], body["value"], body["weight"]) == (50, 10000, 0.5)
    assert body["price_source"] == "stored" and body["price_ts"] is not None


def test_a_position_shows_its_last_fill_price_until_a_newer_price_is_stored(api):
    """Issue 12, item 4: after fills at 140 and 139.5 the position was priced at nothing."""
    pos = create(api, qty=0, cash=10000).json()["id"]
    Price.objects.create(ticker="ZIM", price=Decimal("120"),
                         ts=timezone.now() - dt.timedelta(days=1))
    for key, price in (("a", 140), ("b", 139.5)):
        order = api.post(f"/v1/positions/{pos}/orders", {"side": "BUY", "qty": 10},
                         format="json", HTTP_IDEMPOTENCY_KEY=key).json()["order_id"]
        api.post(f"/v1/orders/{order}/fill", {"price": price, "filled_qty": 10,
                                              "commission": 0}, format="json")
    last_fill = Fill.objects.order_by("-created_at").first()
    body = api.get(f"/v1/positions/{pos}").json()
    assert (body["price"], body["price_source"]) == (139.5, "fill")
    assert dt.datetime.fromisoformat(body["price_ts"]) == last_fill.created_at
    # 20 shares at 139.5 (2790) and 10000 - 2795 cash
    assert body["value"] == 9995 and round(body["weight"], 5) == 0.27914
    listed = api.get("/v1/positions").json()["positions"][0]
    assert {k: listed[k] for k in ("price", "price_ts", "price_source")} == {
        k: body[k] for k in ("price", "price_ts", "price_source")}
    evaluation = api.post(f"/v1/positions/{pos}/evaluate", {}, format="json").json()
    assert (evaluation["price"], evaluation["price_source"]) == (139.5, "fill")
    assert evaluation["price_ts"] == body["price_ts"]

    newer = timezone.now() + dt.timedelta(seconds=1)
    Price.objects.create(ticker="ZIM", price=Decimal("150"), ts=newer)
    body = api.get(f"/v1/positions/{pos}").json()
    assert (body["price"], body["price_source"]) == (150, "stored")
    assert dt.datetime.fromisoformat(body["price_ts"]) == newer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ticker": "1ABC"}, "ticker"),
        ({"ticker": ""}, "ticker"),
        ({"ticker": "TOO-LONG-TICKER-XX"}, "ticker"),
        ({"ticker": "A B"}, "ticker"),
        ({"qty": -1}, "qty"),
        ({"cash": -0.01}, "cash"),
        ({"anchor_price": 0}, "anchor_price"),
        ({"trigger_pct": 0}, "trigger_pct"),
        ({"guard_low": 0.8, "guard_high": 0.2}, "guard_low"),
        ({"sizing": "x"}, "sizing"),
        ({"commission_rate": 0.05}, "commission_rate"),
        ({"max_orders_per_day": 0}, "max_orders_per_day"),
        ({"owner": 1}, "owner"),
    ],
)
def test_invalid_creates_answer_400_naming_the_field(api, body, field):
    response = create(api, **body)
    assert field in assert_error(response, 400, "validation_error")["fields"]
    assert Position.objects.count() == 0 and Event.objects.count() == 0


@pytest.mark.parametrize("missing", ["ticker", "qty", "cash"])
def test_required_fields_are_required(api, missing):
    body = {"ticker": "ZIM", "qty": 0, "cash": 1}
    del body[missing]
    response = api.post("/v1/positions", body, format="json")
    assert missing in assert_error(response, 400, "validation_error")["fields"]


# --- get ----------------------------------------------------------------------------------------


def test_get_answers_the_position(api):
    created = create(api, qty=3, anchor_price=10).json()
    response = api.get(f"/v1/positions/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_get_an_unknown_position_answers_404(api):
    assert_error(api.get("/v1/positions/pos_nope"), 404, "position_not_found")


# --- list ---------------------------------------------------------------------------------------


def test_list_answers_my_positions_oldest_first(api, other_user, make_position):
    ids = [create(api, ticker=t).json()["id"] for t in ("ZIM", "AAPL", "MSFT")]
    make_position(owner=other_user)
    body = api.get("/v1/positions").json()
    assert [p["id"] for p in body["positions"]] == ids
    assert body["next"] is None
    assert set(body["positions"][0]) == EVERY_FIELD


def test_list_filters_by_ticker_case_insensitively(api):
    zim = create(api, ticker="ZIM").json()["id"]
    create(api, ticker="AAPL")
    zim2 = create(api, ticker="ZIM").json()["id"]
    assert [p["id"] for p in api.get("/v1/positions?ticker=zim").json()["positions"]] == [
        zim, zim2]
    assert api.get("/v1/positions?ticker=NONE").json()["positions"] == []


def test_list_filters_by_creation_time(api):
    ids = [create(api, ticker=t).json()["id"] for t in ("A", "B", "C")]
    base = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)
    for n, pid in enumerate(ids):
        Position.objects.filter(pk=pid).update(created_at=base + dt.timedelta(days=n))

    def listed(query):
        response = api.get("/v1/positions", query)
        assert response.status_code == 200, response.content
        return [p["ticker"] for p in response.json()["positions"]]

    assert listed({"created_after": "2025-01-11T00:00:00Z"}) == ["B", "C"]  # inclusive
    assert listed({"created_before": "2025-01-11T00:00:00Z"}) == ["A"]  # exclusive
    assert listed({"created_after": "2025-01-10T12:00:00+00:00",
                   "created_before": "2025-01-12T00:00:00Z"}) == ["B"]
    assert listed({"created_after": "2025-01-13T00:00:00Z"}) == []


def test_limit_one_walks_every_page(api):
    ids = [create(api, ticker=t).json()["id"] for t in ("A", "B", "C", "D")]
    # two positions created at the same instant must still each appear exactly once
    same = timezone.now()
    Position.objects.filter(pk__in=ids[1:3]).update(created_at=same)
    expected = list(Position.objects.order_by("created_at", "id").values_list("id", flat=True))
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = api.get("/v1/positions", query).json()
        pages += 1
        assert len(body["positions"]) <= 1
        seen += [p["id"] for p in body["positions"]]
        cursor = body["next"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == expected and sorted(seen) == sorted(ids)
    assert pages == 4  # no empty page at the end: the last page says next is null


def test_pages_combine_with_filters(api):
    for t in ("ZIM", "AAPL", "ZIM", "ZIM"):
        create(api, ticker=t)
    first = api.get("/v1/positions", {"ticker": "ZIM", "limit": 2}).json()
    second = api.get("/v1/positions", {"ticker": "ZIM", "limit": 2,
                                       "cursor": first["next"]}).json()
    assert len(first["positions"]) == 2 and len(second["positions"]) == 1
    assert second["next"] is None
    assert all(p["ticker"] == "ZIM" for p in first["positions"] + second["positions"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"cursor": "garbage!!"}, "cursor"),
        ({"cursor": "W10"}, "cursor"),  # []
        ({"cursor": cursor_of(["2025-01-01T00:00:00+00:00"])}, "cursor"),
        ({"cursor": cursor_of(["not a time", "pos_x"])}, "cursor"),
        ({"cursor": cursor_of([True, "pos_x"])}, "cursor"),
        ({"cursor": cursor_of({"a": 1})}, "cursor"),
        ({"cursor": cursor_of(["2025-01-01T00:00:00", "pos_x"])}, "cursor"),  # naive time
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2025-13-01T00:00:00Z"}, "created_before"),
    ],
)
def test_bad_list_queries_answer_400_invalid_query(api, query, field):
    create(api)
    body = assert_error(api.get("/v1/positions", query), 400, "invalid_query")
    assert field in body["fields"]


def test_limit_bounds_are_inclusive(api):
    create(api)
    assert api.get("/v1/positions", {"limit": 1}).status_code == 200
    assert api.get("/v1/positions", {"limit": 1000}).status_code == 200


# --- PATCH --------------------------------------------------------------------------------------


def test_patching_the_books_says_what_to_do_instead(api):
    pid = create(api).json()["id"]
    for field in ("qty", "cash", "dividend_receivable", "anchor_price"):
        res = api.patch(f"/v1/positions/{pid}", {field: 5}, format="json")
        body = assert_error(res, 400, "not_configurable")
        assert "not configuration" in body["message"] and "qty_step" not in body["message"]
        assert set(body["fields"]) == {field}
    body = assert_error(api.patch(f"/v1/positions/{pid}", {"qty": 5, "trigger_pct": 0.05},
                                  format="json"), 400, "not_configurable")
    assert "/v1/orders/{id}/fill" in body["fields"]["qty"]
    assert "cash movements" in assert_error(
        api.patch(f"/v1/positions/{pid}", {"cash": 1}, format="json"), 400,
        "not_configurable")["message"]
    assert Event.objects.filter(position_id=pid, type="config_changed").count() == 0
    assert api.get(f"/v1/positions/{pid}").json()["trigger_pct"] != 0.05


def test_patch_changes_strategy_fields_and_records_old_and_new(api):
    pid = create(api).json()["id"]
    response = api.patch(f"/v1/positions/{pid}",
                         {"trigger_pct": 0.05, "sizing": "original", "fractional": False},
                         format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["trigger_pct"], body["sizing"], body["fractional"]) == (0.05, "original", False)
    event = Event.objects.filter(position_id=pid).order_by("-id").first()
    assert event.type == "config_changed"
    assert event.outputs["changed"] == {
        "trigger_pct": {"old": Decimal("0.03"), "new": Decimal("0.05")},
        "sizing": {"old": "proportional", "new": "original"},
        "fractional": {"old": True, "new": False},
    }
    assert "trigger_pct 0.03 -> 0.05" in event.message
    position = Position.objects.get(pk=pid)
    assert (position.trigger_pct, position.sizing) == (Decimal("0.05"), "original")


def test_patch_can_clear_qty_step(api):
    pid = create(api, qty_step=1).json()["id"]
    body = api.patch(f"/v1/positions/{pid}", {"qty_step": None}, format="json").json()
    assert body["qty_step"] is None
    event = Event.objects.get(position_id=pid, type="config_changed")
    assert event.outputs["changed"] == {"qty_step": {"old": 1, "new": None}}


def test_patch_with_the_same_values_records_nothing(api):
    pid = create(api).json()["id"]
    response = api.patch(f"/v1/positions/{pid}", {"trigger_pct": 0.03}, format="json")
    assert response.status_code == 200
    assert not Event.objects.filter(position_id=pid, type="config_changed").exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"trigger_pct": 1.5}, {"trigger_pct"}),
        ({"trigger_pct": 0}, {"trigger_pct"}),
        ({"guard_low": 0.8}, {"guard_low", "guard_high"}),  # 0.8 >= the default high 0.75
        ({"guard_low": 0.5, "guard_high": 0.5}, {"guard_low", "guard_high"}),
        ({"guard_high": 1.01}, {"guard_high"}),
        ({"sizing": "x"}, {"sizing"}),
        ({"commission_rate": 0.05}, {"commission_rate"}),
        ({"commission_rate": -0.001}, {"commission_rate"}),
        ({"rebalance_ratio": 0}, {"rebalance_ratio"}),
        ({"fixed_fraction": 1.1}, {"fixed_fraction"}),
        ({"min_notional": -1}, {"min_notional"}),
        ({"max_orders_per_day": 0}, {"max_orders_per_day"}),
        ({"max_orders_per_day": 2.5}, {"max_orders_per_day"}),
        ({"withholding_tax_rate": 1}, {"withholding_tax_rate"}),
        ({"qty_step": 0}, {"qty_step"}),
        ({"fractional": "no"}, {"fractional"}),
        # the books (qty, cash) are not configuration: test_patching_the_books_says_what_to_do
        ({"ticker": "AAPL"}, {"ticker"}),
    ],
)
def test_invalid_patches_answer_400_naming_the_field_and_change_nothing(api, body, fields):
    pid = create(api).json()["id"]
    before = Position.objects.filter(pk=pid).values().get()
    events = Event.objects.count()
    response = api.patch(f"/v1/positions/{pid}", body, format="json")
    error = assert_error(response, 400, "validation_error")
    assert fields <= set(error["fields"]), error
    assert Position.objects.filter(pk=pid).values().get() == before
    assert Event.objects.count() == events


def test_patch_of_an_unknown_position_answers_404(api):
    assert_error(api.patch("/v1/positions/pos_nope", {"trigger_pct": 0.05}, format="json"),
                 404, "position_not_found")


def test_patch_with_an_idempotency_key_replays(api):
    pid = create(api).json()["id"]
    first = api.patch(f"/v1/positions/{pid}", {"trigger_pct": 0.04}, format="json",
                      HTTP_IDEMPOTENCY_KEY="p1")
    again = api.patch(f"/v1/positions/{pid}", {"trigger_pct": 0.04}, format="json",
                      HTTP_IDEMPOTENCY_KEY="p1")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Event.objects.filter(position_id=pid, type="config_changed").count() == 1


def test_every_digit_is_kept_or_the_value_is_refused(api):
    """PostgreSQL keeps 16 + 8 digits of a quantity exactly; SQLite (local mode) keeps 15
    significant digits, so there a longer value is a 400 naming the field, never a rounded
    balance or a position stored behind a 500."""
    from django.db import connection

    body = b'{"ticker": "ZIM", "qty": 123456789.12345678, "cash": 1234567890.123457}'
    response = api.post("/v1/positions", data=body, content_type="application/json")
    if connection.vendor == "sqlite":
        assert {"qty", "cash"} <= set(assert_error(response, 400, "validation_error")["fields"])
        assert not Position.objects.exists()
    else:
        assert response.status_code == 201
        stored = Position.objects.get()
        assert (stored.qty, stored.cash) == (Decimal("123456789.12345678"),
                                             Decimal("1234567890.123457"))
        assert b'"qty":123456789.12345678' in api.get(f"/v1/positions/{stored.id}").content
