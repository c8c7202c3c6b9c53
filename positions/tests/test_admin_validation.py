"""The admin validates exactly as the API (one definition of each field's bounds, normalisation
and description), and writes prices and dividends through the same services."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.urls import reverse

from events.models import Event
from positions.models import STRATEGY_FIELDS, Dividend, Position, Price
from positions.serializers import PositionCreateSerializer
from positions.tests.test_admin import change_url, strategy_form

pytestmark = pytest.mark.django_db


# (field, value as typed in the admin, the same value in JSON)
CASES = [
    ("max_orders_per_day", "2000000000", 2000000000),
    ("max_orders_per_day", "100001", 100001),
    ("max_orders_per_day", "100000", 100000),
    ("max_orders_per_day", "0", 0),
    ("trigger_pct", "0.5", D("0.5")),
    ("trigger_pct", "1", 1),
    ("commission_rate", "0.049", D("0.049")),
    ("commission_rate", "0.05", D("0.05")),
    ("fixed_fraction", "1", 1),
    ("guard_high", "1.5", D("1.5")),
    ("min_notional", "-1", -1),
    ("qty_step", "0", 0),
    ("withholding_tax_rate", "0.99", D("0.99")),
    ("withholding_tax_rate", "1", 1),
    ("rebalance_ratio", "0", 0),
    ("sizing", "original", "original"),
    ("sizing", "martingale", "martingale"),
]


@pytest.mark.parametrize("field, typed, sent", CASES)
def test_the_admin_accepts_and_refuses_exactly_what_the_api_does(api, admin_client,
                                                                 make_position, field, typed,
                                                                 sent):
    by_api = make_position(qty=0, cash=10000)
    by_admin = make_position(qty=0, cash=10000)
    answer = api.patch(f"/v1/positions/{by_api.pk}", {field: sent}, format="json")
    assert answer.status_code in (200, 400), answer.content
    response = admin_client.post(change_url(by_admin), strategy_form(by_admin, **{field: typed}))
    admin_accepted = response.status_code == 302
    assert admin_accepted == (answer.status_code == 200)
    by_api.refresh_from_db()
    by_admin.refresh_from_db()
    assert getattr(by_admin, field) == getattr(by_api, field)
    if not admin_accepted:
        errors = response.context["adminform"].form.errors
        assert field in errors
        if field != "sizing":  # a choice the form's own select refuses, in Django's words
            assert errors[field][0] == answer.json()["fields"][field]  # the API's sentence


def test_max_orders_per_day_beyond_the_apis_cap_is_refused_on_add(admin_client, user):
    data = strategy_form(Position(), max_orders_per_day="2000000000")
    data.update(owner=str(user.pk), ticker="ZIM", qty="10", cash="5000", anchor_price="")
    response = admin_client.post(reverse("admin:positions_position_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["max_orders_per_day"] == [
        "Ensure this value is less than or equal to 100000."]
    assert not Position.objects.exists() and not Event.objects.exists()


def test_every_strategy_field_has_the_schemas_description_in_the_admin(admin_client,
                                                                       make_position):
    position = make_position()
    form = admin_client.get(change_url(position)).context["adminform"].form
    described = PositionCreateSerializer().fields
    for name in STRATEGY_FIELDS:
        assert described[name].help_text, name
        assert form.fields[name].help_text == described[name].help_text, name
    schema = admin_client.get("/v1/schema/", HTTP_ACCEPT="application/json").json()
    properties = schema["components"]["schemas"]["PositionCreateRequest"]["properties"]
    for name in STRATEGY_FIELDS:
        assert described[name].help_text in properties[name]["description"], name


def add_price(admin_client, **fields):
    data = {"ticker": "ZIM", "price": "10", "ts_0": "2024-03-01", "ts_1": "21:00:00"}
    data.update(fields)
    return admin_client.post(reverse("admin:positions_price_add"), data)


def test_an_admin_price_goes_through_the_prices_service(admin_client, admin_user):
    response = add_price(admin_client, ticker=" zim ")
    assert response.status_code == 302, response.context["adminform"].form.errors
    price = Price.objects.get()
    assert (price.ticker, price.price) == ("ZIM", D("10"))
    assert (price.recorded_source, price.recorded_user_id, price.recorded_by) == (
        "admin", admin_user.pk, admin_user.username)


@pytest.mark.parametrize("fields, field", [({"ticker": "1zim"}, "ticker"),
                                           ({"ticker": "z im"}, "ticker"),
                                           ({"price": "0"}, "price"),
                                           ({"price": "0.0000001"}, "price")])
def test_an_admin_price_is_checked_as_the_api_checks_it(admin_client, fields, field):
    response = add_price(admin_client, **fields)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Price.objects.exists()


def test_a_price_through_the_api_names_its_recorder(api, user):
    response = api.post("/v1/prices", {"ticker": "zim", "price": 10,
                                       "ts": "2024-03-01T21:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    price = Price.objects.get()
    assert (price.recorded_source, price.recorded_user_id, price.recorded_by) == (
        "api", user.pk, "alice")


def test_a_dividend_is_announced_from_the_admin_through_the_service(admin_client, admin_user,
                                                                     make_position):
    position = make_position(qty=10, cash=0)
    data = {"position": position.pk, "ex_date": "2099-01-05", "pay_date": "2099-01-20",
            "dps": "0.5", "withholding_tax_rate": ""}
    response = admin_client.post(reverse("admin:positions_dividend_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    dividend = Dividend.objects.get()
    assert (dividend.dps, dividend.withholding_rate, dividend.status) == (
        D("0.5"), position.withholding_tax_rate, "announced")
    event = Event.objects.get(type="ex_div_announced")
    assert event.outputs["dividend_id"] == dividend.pk
    assert (event.actor_source, event.actor_name) == ("admin", admin_user.username)

    # the service's refusal shows on the form, and nothing more is stored
    again = admin_client.post(reverse("admin:positions_dividend_add"),
                              {**data, "pay_date": "2099-02-01"})
    assert again.status_code == 200
    assert ("already has a dividend with ex-date 2099-01-05"
            in str(again.context["adminform"].form.errors))  # 409 dividend_exists in the API
    assert Dividend.objects.count() == 1
    assert Event.objects.filter(type="ex_div_announced").count() == 1


@pytest.mark.parametrize("fields, field", [({"dps": "0"}, "dps"),
                                           ({"withholding_tax_rate": "1"}, "withholding_tax_rate"),
                                           ({"pay_date": "2099-01-01"}, "pay_date")])
def test_a_bad_dividend_is_refused_by_the_admin_as_by_the_api(admin_client, make_position,
                                                              fields, field):
    position = make_position(qty=10, cash=0)
    data = {"position": position.pk, "ex_date": "2099-01-05", "pay_date": "2099-01-20",
            "dps": "0.5", "withholding_tax_rate": "", **fields}
    response = admin_client.post(reverse("admin:positions_dividend_add"), data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Dividend.objects.exists()
