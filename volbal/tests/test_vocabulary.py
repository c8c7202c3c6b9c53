"""One name per concept: the position's and the dividend's withholding rate
are both ``withholding_tax_rate``; a fill's quantity is ``filled_qty`` in its body and in every
answer; an unknown field answers 400 naming the field the user probably meant."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command

from conftest import assert_error
from events.models import Event
from orders.models import Fill, Order
from positions.models import Dividend, Position
from volbal.api import did_you_mean

pytestmark = pytest.mark.django_db


def open_order(api, position, side="BUY", qty=10) -> str:
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": side, "qty": qty},
                        format="json", HTTP_IDEMPOTENCY_KEY=f"o-{side}-{qty}")
    assert response.status_code == 201, response.content
    return response.json()["order_id"]


def test_qty_on_a_fill_answers_400_did_you_mean_filled_qty(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = open_order(api, position)
    events = Event.objects.count()
    response = api.post(f"/v1/orders/{order_id}/fill", {"price": 10, "qty": 1}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["fields"]["qty"] == "Unknown field; did you mean filled_qty?"
    assert "did you mean filled_qty?" in body["message"]
    assert not Fill.objects.exists() and Event.objects.count() == events


def test_withholding_rate_on_a_dividend_answers_400_did_you_mean(api, make_position):
    position = make_position(qty=1, cash=0)
    response = api.post(f"/v1/positions/{position.id}/dividends",
                        {"ex_date": "2030-01-02", "pay_date": "2030-01-09", "dps": 1,
                         "withholding_rate": 0.1}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["fields"]["withholding_rate"] == \
        "Unknown field; did you mean withholding_tax_rate?"
    assert not Dividend.objects.exists()


@pytest.mark.parametrize(("sent", "meant"), [
    ("withholding_rate", "withholding_tax_rate"),
    ("Ticker", "ticker"),
    ("trigger-pct", "trigger_pct"),
    ("trigger_pc", "trigger_pct"),
    ("guard_hihg", "guard_high"),
    ("quantity", "qty"),
])
def test_a_misnamed_position_field_names_the_field_meant(api, sent, meant):
    response = api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1, sent: 0.1},
                        format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["fields"][sent] == f"Unknown field; did you mean {meant}?"


def test_a_field_like_nothing_known_is_only_unknown(api):
    response = api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1, "zebra": 1},
                        format="json")
    assert assert_error(response, 400, "validation_error")["fields"]["zebra"] == "Unknown field."


def test_did_you_mean_never_guesses_wildly():
    assert did_you_mean("qty", ["price", "filled_qty", "commission"]) == "filled_qty"
    assert did_you_mean("qty", ["ex_date", "pay_date", "dps"]) is None
    assert did_you_mean("q", ["qty", "filled_qty"]) is None


def test_the_dividend_and_the_position_say_withholding_tax_rate(api, make_position):
    position = make_position(qty=1, cash=0, withholding_tax_rate="0.15")
    shown = api.get(f"/v1/positions/{position.id}").json()
    assert shown["withholding_tax_rate"] == 0.15
    announced = api.post(f"/v1/positions/{position.id}/dividends",
                         {"ex_date": "2030-01-02", "pay_date": "2030-01-09", "dps": 1},
                         format="json").json()
    assert announced["withholding_tax_rate"] == 0.15 and "withholding_rate" not in announced
    other = api.post(f"/v1/positions/{position.id}/dividends",
                     {"ex_date": "2030-02-02", "pay_date": "2030-02-09", "dps": 1,
                      "withholding_tax_rate": 0.3}, format="json")
    assert other.status_code == 201 and other.json()["withholding_tax_rate"] == 0.3
    listed = api.get(f"/v1/positions/{position.id}/dividends").json()["dividends"]
    assert [d["withholding_tax_rate"] for d in listed] == [0.15, 0.3]
    event = Event.objects.filter(position_id=position.pk, type="ex_div_announced").last()
    assert event.inputs["withholding_tax_rate"] == Decimal("0.3")  # exact, as stored
    assert Dividend._meta.get_field("withholding_rate").verbose_name == "withholding tax rate"


def test_a_fill_is_filled_qty_in_every_answer(api, make_position):
    position = make_position(qty=0, cash=10000)
    order_id = open_order(api, position)
    filled = api.post(f"/v1/orders/{order_id}/fill", {"price": 10, "filled_qty": 4},
                      format="json").json()
    assert filled["fill"]["filled_qty"] == 4 and "qty" not in filled["fill"]
    detail = api.get(f"/v1/orders/{order_id}").json()
    assert [f["filled_qty"] for f in detail["fills"]] == [4]
    assert "qty" not in detail["fills"][0]
    assert Order.objects.get(pk=order_id).filled_qty == 4
    assert Fill._meta.get_field("qty").verbose_name == "filled qty"


def test_the_schema_has_one_name_per_concept():
    out = io.StringIO()
    call_command("spectacular", stdout=out, stderr=io.StringIO())
    schemas = yaml.safe_load(out.getvalue())["components"]["schemas"]
    names = {name for schema in schemas.values() for name in schema.get("properties", {})}
    assert "withholding_rate" not in names and "withholding_tax_rate" in names
    assert "qty" not in schemas["Fill"]["properties"]
    assert "filled_qty" in schemas["Fill"]["properties"]


def test_a_body_of_many_unknown_fields_names_twenty_and_counts_the_rest(api):
    """Each unknown field gets a guess at the one meant; a body of thousands of them named
    only twenty (it took 16 s for 100,000 keys, a worker held by one request)."""
    body = {"ticker": "ABC", "qty": 1, "Cash": 1, **{f"trigger_p{i:05}": 1 for i in range(4999)}}
    res = api.post("/v1/positions", body, format="json")
    fields = assert_error(res, 400, "validation_error")["fields"]
    assert len(fields) == 21
    assert fields["non_field_errors"] == "4980 more unknown fields are not listed." or \
        fields["non_field_errors"] == ["4980 more unknown fields are not listed."]
    assert "did you mean cash?" in str(fields["Cash"])
    assert not Position.objects.exists()
