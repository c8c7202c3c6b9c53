"""Malformed input of every kind on every write endpoint: always a 4xx JSON error with a code and a
sentence, never a 500, and nothing stored (positions, orders, fills, events, idempotency
records)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from events.models import Event
from orders.models import Fill, IdempotencyRecord, Order
from positions.models import Position

pytestmark = pytest.mark.django_db


class _BoundedDecimal(Decimal):
    """A JSON number as the parser makes it, with a tripwire: converting it to an int when it
    has more than 100 digits (``int(Decimal("1e999999999"))`` builds a billion-digit integer:
    minutes of CPU for a 16-byte request) fails the test. The work of a refusal is bounded by
    design, before any conversion, not by a stopwatch."""

    def __int__(self):
        assert not (self.is_finite() and self.adjusted() > 100), (
            f"{self!r} converted to int: the magnitude must be refused first")
        return super().__int__()



@pytest.fixture(autouse=True)
def _huge_numbers_are_refused_before_conversion(monkeypatch):
    from volbal import parsers

    monkeypatch.setattr(parsers, "Decimal", _BoundedDecimal)

# The write endpoints: a valid body and the numeric fields to spoil one at a time.
ENDPOINTS = {
    "create": ("POST", "/v1/positions", {"ticker": "ZIM", "qty": 1, "cash": 100},
               ["qty", "cash", "anchor_price", "trigger_pct"]),
    "submit": ("POST", "/v1/positions/{pid}/orders", {"side": "BUY", "qty": 1}, ["qty"]),
    "fill": ("POST", "/v1/orders/{oid}/fill", {"price": 10, "filled_qty": 1},
             ["price", "filled_qty", "commission"]),
    "patch": ("PATCH", "/v1/positions/{pid}", {"trigger_pct": 0.05},
              ["trigger_pct", "min_notional", "max_orders_per_day", "commission_rate"]),
}

# Literals no numeric field accepts (raw JSON text).
BAD_NUMBERS = {
    "string": '"abc"',
    "numeric-string": '"1.5"',
    "true": "true",
    "false": "false",
    "null": "null",
    "list": "[1]",
    "object": '{"value": 1}',
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "1e-400": "1e-400",
    "1e999999999": "1e999999999",
    "10**400": str(10**400),
    "-10**400": str(-(10**400)),
    "negative": "-1",
    "too-many-decimals": "1.0000000001",
}
NOT_JSON = {
    "not-json": b"hello",
    "truncated": b'{"ticker": "ZIM", "qty": 1',
    "trailing-garbage": b'{"qty": 1} x',
    "single-quotes": b"{'qty': 1}",
    "list": b"[1, 2]",
    "empty-list": b"[]",
    "string": b'"abc"',
    "number": b"5",
    "null": b"null",
    "true": b"true",
    "bom": '\ufeff{"qty": 1}'.encode(),
    "latin-1": '{"ticker": "Z\u00e9"}'.encode("latin-1"),
    "escaped-nul": b'{"ticker": "Z\\u0000M", "qty": 1, "cash": 1, "side": "BUY"}',
    "raw-nul": b'{"ticker": "Z\x00M", "qty": 1}',
    "nul-outside": b'{"qty": 1}\x00',
    "deep-nesting": b"[" * 100_000,
    "deep-nesting-closed": b'{"qty": ' + b"[" * 500 + b"]" * 500 + b"}",
    "huge-integer": b'{"qty": ' + b"9" * 5000 + b"}",
    "empty": b"",
    "duplicate-keys": b'{"qty": 1, "qty": -1, "side": "BUY", "price": 1, "filled_qty": -1}',
}


@pytest.fixture
def targets(make_position):
    position = make_position(qty=10, cash=10000, max_orders_per_day=100)
    from orders.services import order_submit

    order = order_submit(position=position, side="BUY", qty=Decimal(5), idempotency_key="existing")
    return {"pid": position.id, "oid": order.id}


def counts():
    return (Position.objects.count(), Order.objects.count(), Fill.objects.count(),
            Event.objects.count(), IdempotencyRecord.objects.count(),
            list(Position.objects.values_list("qty", "cash", "trigger_pct", "anchor_price")),
            list(Order.objects.values_list("status", "filled_qty")))


def send(api, endpoint, targets, raw: bytes, *, content_type="application/json", key=None):
    method, path, _, _ = ENDPOINTS[endpoint]
    if endpoint == "submit" and key is None:
        key = "malformed"
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.generic(method, path.format(**targets), raw, content_type=content_type, **headers)


def assert_refused(response, status: int | None = None, code: str | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if status is not None:
        assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["detail"] == code, body
    return body


def with_field(endpoint: str, field: str, literal: str) -> bytes:
    body = {**ENDPOINTS[endpoint][2], field: "__X__"}
    return json.dumps(body).replace('"__X__"', literal).encode()


# --- numbers ------------------------------------------------------------------------------------


def check_refused(api, targets, endpoint: str, raw: bytes, keys=(None, "a-key"), *,
                  status=400, codes=("malformed_json", "validation_error"), field=None):
    """Send ``raw`` once per key; each answer is a 4xx error and nothing is stored."""
    for key in keys:
        before = counts()
        response = send(api, endpoint, targets, raw, key=key)
        body = assert_refused(response, status)
        assert body["detail"] in codes, (key, body)
        if field is not None and body["detail"] == "validation_error":
            assert field in body["fields"], (key, body)
        assert counts() == before, key


@pytest.mark.parametrize("name", BAD_NUMBERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_numbers_are_a_400_naming_the_field(api, targets, endpoint, name):
    """In every numeric field of the endpoint, without and with an Idempotency-Key (the
    middleware parses and fingerprints the body before the view does)."""
    for field in ENDPOINTS[endpoint][3]:
        if (field, name) == ("anchor_price", "null"):
            continue  # allowed: no anchor yet
        raw = with_field(endpoint, field, BAD_NUMBERS[name])
        check_refused(api, targets, endpoint, raw, field=field)


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [("create", "anchor_price"), ("submit", "qty"), ("fill", "price"), ("fill", "filled_qty"),
     ("patch", "trigger_pct"), ("patch", "max_orders_per_day")],
)
def test_zero_is_refused_where_a_value_must_be_positive(api, targets, endpoint, field):
    before = counts()
    body = assert_refused(send(api, endpoint, targets, with_field(endpoint, field, "0")), 400,
                          "validation_error")
    assert field in body["fields"]
    assert counts() == before


@pytest.mark.parametrize(
    ("endpoint", "field", "literal"),
    [
        ("create", "qty", "1.000000001"),  # 9 decimals; quantities keep 8
        ("create", "cash", "1.0000001"),  # 7 decimals; money keeps 6
        ("submit", "qty", "0.000000001"),
        ("fill", "price", "10.0000001"),
        ("fill", "commission", "0.0000001"),
    ],
)
def test_too_many_decimal_places_are_refused_not_rounded(api, targets, endpoint, field, literal):
    before = counts()
    body = assert_refused(send(api, endpoint, targets, with_field(endpoint, field, literal)), 400,
                          "validation_error")
    assert field in body["fields"]
    assert counts() == before


# --- bodies that are not a JSON object ------------------------------------------------------


@pytest.mark.parametrize("name", NOT_JSON)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bodies_that_are_not_a_json_object_are_a_400(api, targets, endpoint, name):
    if endpoint == "patch" and name == "empty":
        return  # an empty PATCH changes nothing: 200
    # a PATCH naming the books (qty) is refused as such, before its values are read
    codes = ("malformed_json", "validation_error") + (("not_configurable",) if endpoint == "patch"
                                                      else ())
    check_refused(api, targets, endpoint, NOT_JSON[name], codes=codes)


def test_a_body_over_the_size_limit_is_a_4xx(api, targets, settings):
    raw = b'{"ticker": "ZIM", "qty": 1, "cash": 1, "pad": "' + b"x" * 3_000_000 + b'"}'
    for key in (None, "big"):
        before = counts()
        assert_refused(send(api, "create", targets, raw, key=key))
        assert counts() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_fields_are_a_400_naming_them(api, targets, endpoint):
    raw = json.dumps({**ENDPOINTS[endpoint][2], "surprise": 1, "Qty": 2}).encode()
    before = counts()
    body = assert_refused(send(api, endpoint, targets, raw), 400, "validation_error")
    assert {"surprise", "Qty"} <= set(body["fields"])
    assert counts() == before


@pytest.mark.parametrize(
    ("endpoint", "field", "literal"),
    [
        ("create", "ticker", "123"),
        ("create", "ticker", "true"),
        ("create", "ticker", "null"),
        ("create", "ticker", '["ZIM"]'),
        ("create", "ticker", json.dumps("Z" * 10_000)),
        ("create", "ticker", '"Z IM"'),
        ("create", "ticker", '"ZIM\\u0007"'),
        ("create", "ticker", '"\u00c4PPLE"'),
        ("create", "sizing", '"x"'),
        ("create", "sizing", "1"),
        ("create", "fractional", '"true"'),
        ("create", "fractional", "1"),
        ("submit", "side", '"hold"'),
        ("submit", "side", "null"),
        ("submit", "side", '{"a": 1}'),
        ("submit", "side", "[]"),
        ("patch", "sizing", "[]"),
        ("patch", "fractional", "null"),
    ],
)
def test_wrong_types_and_values_of_other_fields_are_a_400(api, targets, endpoint, field, literal):
    before = counts()
    body = assert_refused(send(api, endpoint, targets, with_field(endpoint, field, literal)), 400,
                          "validation_error")
    assert field in body["fields"]
    assert counts() == before


# --- content types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("text/plain", b'{"ticker": "ZIM", "qty": 1, "cash": 1}'),
        ("application/x-www-form-urlencoded", b"ticker=ZIM&qty=1&cash=1"),
        ("multipart/form-data; boundary=BoUnDaRy",
         b'--BoUnDaRy\r\nContent-Disposition: form-data; name="qty"\r\n\r\n1\r\n--BoUnDaRy--\r\n'),
        ("application/xml", b"<qty>1</qty>"),
        ("", b'{"ticker": "ZIM", "qty": 1, "cash": 1}'),
    ],
    ids=["text-plain", "urlencoded", "multipart", "xml", "none"],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_other_content_types_are_a_415(api, targets, endpoint, content_type, raw):
    for key in (None, "a-key"):
        before = counts()
        response = send(api, endpoint, targets, raw, content_type=content_type, key=key)
        assert_refused(response, 415, "unsupported_media_type")
        assert counts() == before


def test_json_with_a_charset_parameter_is_accepted(api, targets):
    response = send(api, "create", targets, b'{"ticker": "ZIM", "qty": 1, "cash": 1}',
                    content_type="application/json; charset=utf-8")
    assert response.status_code == 201


# --- the Idempotency-Key header -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "k" * 10_000, "a\x00b", "a\tb", "\x1b[31m", "\u00e9t\u00e9"],
    ids=["empty", "256", "10000", "nul", "tab", "escape", "non-ascii"],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_malformed_idempotency_key_is_a_400_on_every_write(api, targets, endpoint, key):
    before = counts()
    raw = json.dumps(ENDPOINTS[endpoint][2]).encode()
    assert_refused(send(api, endpoint, targets, raw, key=key), 400, "invalid_idempotency_key")
    assert counts() == before


# --- nothing leaks: the same key works once the body is right ---------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_after_malformed_attempts_the_key_still_works(api, targets, endpoint):
    for raw in (b"{", b"[]", with_field(endpoint, ENDPOINTS[endpoint][3][0], '"x"')):
        assert_refused(send(api, endpoint, targets, raw, key="same"))
    good = send(api, endpoint, targets, json.dumps(ENDPOINTS[endpoint][2]).encode(), key="same")
    assert good.status_code in (200, 201), good.content
    assert "Idempotent-Replayed" not in good
