"""Every event says who acted: the user (API or admin), the command, the worker; the database
refuses an event without one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from io import StringIO

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from events.actor import Actor, acting
from events.models import Event
from orders.models import Order
from positions.models import Position, Price

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 1, 21, tzinfo=dt.UTC)


def actor_of(event: Event) -> tuple:
    return (event.actor_source, event.actor_user_id, event.actor_name)


def submit(api, position, key: str, qty=1) -> str:
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": qty},
                        format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    return response.json()["order_id"]


def test_the_admins_cancel_and_the_owners_cancel_differ_in_the_event(
        api, user, admin_client, admin_user, make_position):
    position = make_position()
    by_owner = submit(api, position, "k1")
    by_admin = submit(api, position, "k2")

    assert api.post(f"/v1/orders/{by_owner}/cancel").status_code == 200
    response = admin_client.post(reverse("admin:orders_order_changelist"),
                                 {"action": "cancel_orders", "_selected_action": [by_admin]},
                                 follow=True)
    assert response.status_code == 200
    assert Order.objects.get(pk=by_admin).status == "cancelled"

    owner_cancel = Event.objects.get(order_id=by_owner, type="order_cancelled")
    admin_cancel = Event.objects.get(order_id=by_admin, type="order_cancelled")
    assert actor_of(owner_cancel) == ("api", user.pk, "alice")
    assert actor_of(admin_cancel) == ("admin", admin_user.pk, admin_user.username)

    # the API shows it: the owner reads both cancels and tells them apart
    events = api.get(f"/v1/positions/{position.id}/events",
                     {"type": "order_cancelled"}).json()["events"]
    assert [(e["order_id"], e["actor"]) for e in events] == [
        (by_owner, {"source": "api", "user_id": user.pk, "name": "alice"}),
        (by_admin, {"source": "admin", "user_id": admin_user.pk, "name": admin_user.username}),
    ]


def test_every_event_of_an_api_request_names_the_token_user(api, user, make_position):
    position = api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1000},
                        format="json").json()
    order_id = api.post(f"/v1/positions/{position['id']}/orders", {"side": "BUY", "qty": 2},
                        format="json", HTTP_IDEMPOTENCY_KEY="k").json()["order_id"]
    assert api.post(f"/v1/orders/{order_id}/fill", {"price": 10, "filled_qty": 2},
                    format="json").status_code == 200
    # a refused fill is recorded after its transaction rolled back: it names the caller too
    assert api.post(f"/v1/orders/{order_id}/fill", {"price": 10, "filled_qty": 1},
                    format="json").status_code == 409
    events = Event.objects.filter(position_id=position["id"])
    assert [e.type for e in events] == ["position_created", "order_submitted", "order_filled",
                                        "anchor_updated", "fill_rejected"]
    assert {actor_of(e) for e in events} == {("api", user.pk, "alice")}


def test_an_admin_form_and_action_name_the_operator(admin_client, admin_user, make_position):
    position = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    admin_client.post(reverse("admin:positions_position_changelist"),
                      {"action": "evaluate_and_submit", "_selected_action": [position.pk]})
    events = Event.objects.filter(position_id=position.pk).exclude(type="position_created")
    assert [e.type for e in events] == ["anchor_set", "order_submitted", "evaluation"]
    assert {actor_of(e) for e in events} == {("admin", admin_user.pk, admin_user.username)}


def test_a_command_names_itself_with_source_cron(make_position):
    position = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    call_command("evaluate_positions", "--submit", stdout=StringIO())
    events = Event.objects.filter(position_id=position.pk).exclude(type="position_created")
    assert {actor_of(e) for e in events} == {("cron", None, "command:evaluate_positions")}


def test_process_dividends_names_itself(user, make_position):
    from positions.dividends import dividend_announce

    position = make_position(qty=10, cash=0)
    Position.objects.filter(pk=position.pk).update(  # opened before the ex-date
        created_at=dt.datetime(2023, 12, 1, tzinfo=dt.UTC))
    dividend_announce(owner=user, position_id=position.pk, ex_date=dt.date(2026, 1, 5),
                      pay_date=dt.date(2026, 1, 6), dps=D("1"))
    call_command("process_dividends", "--date", "2026-01-06", stdout=StringIO())
    steps = Event.objects.filter(position_id=position.pk,
                                 type__in=("ex_div_effective", "dividend_cash_received"))
    assert steps.count() == 2
    assert {actor_of(e) for e in steps} == {("cron", None, "command:process_dividends")}


def test_a_worker_sets_its_actor_in_one_line(user, make_position):
    from orders.services import order_submit_for

    position = make_position()
    with acting(Actor.worker("trade_cycle")):
        order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY",
                                    qty=D("1"), idempotency_key=None)
    event = Event.objects.get(order_id=order.pk)
    assert actor_of(event) == ("worker", None, "worker:trade_cycle")


def test_work_outside_any_request_or_command_names_the_process(make_position):
    position = make_position()  # a service called directly, as a shell or script would
    event = Event.objects.get(position_id=position.pk)
    assert event.actor_source == "system" and event.actor_name.startswith("process:")
    assert event.actor_user_id is None


@pytest.mark.parametrize("columns", [
    {"actor_source": "api", "actor_user_id": None, "actor_name": "alice"},  # a user, no id
    {"actor_source": "cron", "actor_user_id": None, "actor_name": ""},  # nobody
    {"actor_source": "someone", "actor_user_id": None, "actor_name": "x"},  # unknown source
])
def test_the_database_refuses_an_event_without_an_actor(make_position, columns):
    position = make_position()
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(position_id=position.pk, type="evaluation", message="m", **columns)


def test_the_admin_shows_the_actor_on_the_timeline_and_the_event_list(
        api, user, admin_client, make_position):
    position = make_position()
    order_id = submit(api, position, "k1")
    api.post(f"/v1/orders/{order_id}/cancel")
    page = admin_client.get(reverse("admin:positions_position_change",
                                    args=[quote(position.pk)])).content.decode()
    assert f"api alice (user {user.pk})" in page
    listing = admin_client.get(reverse("admin:events_event_changelist")).content.decode()
    assert f"api alice (user {user.pk})" in listing
    filtered = admin_client.get(reverse("admin:events_event_changelist"),
                                {"actor_source__exact": "api"})
    assert filtered.status_code == 200
    assert filtered.context["cl"].result_count == 2  # submitted, cancelled


def test_the_schema_documents_the_actor(api):
    schema = api.get("/v1/schema/", HTTP_ACCEPT="application/json").json()
    event = schema["components"]["schemas"]["Event"]
    assert "actor" in event["required"]
    actor = schema["components"]["schemas"]["Actor"]
    assert set(actor["properties"]) == {"source", "user_id", "name"}
    source = actor["properties"]["source"]
    assert source["allOf"] == [{"$ref": "#/components/schemas/ActorSourceEnum"}]
    enum = schema["components"]["schemas"]["ActorSourceEnum"]["enum"]
    assert set(enum) == {"api", "admin", "cron", "worker", "system", "legacy"}
    assert "description" in actor["properties"]["name"]


def test_verify_ledger_names_who_last_changed_a_tampered_position(api, user, make_position):
    position = make_position(qty=0, cash=1000)
    order_id = submit(api, position, "k1", qty=2)
    api.post(f"/v1/orders/{order_id}/fill", {"price": 10, "filled_qty": 2}, format="json")
    Position.objects.filter(pk=position.pk).update(cash=D("1"))
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("verify_ledger", stdout=out, stderr=StringIO())
    # the fill changed the books (the anchor move recorded after it did not)
    assert (f"{position.pk} last recorded change: order_filled" in out.getvalue())
    assert f"by api alice (user {user.pk})" in out.getvalue()


def test_imported_prices_name_the_command(tmp_path):
    csv = tmp_path / "prices.csv"
    csv.write_text("ticker,price,ts\nzim,10,2024-03-01T21:00:00Z\n")
    call_command("import_prices", str(csv), stdout=StringIO(), stderr=StringIO())
    price = Price.objects.get()
    assert (price.ticker, price.recorded_source, price.recorded_user_id, price.recorded_by) == (
        "ZIM", "cron", None, "command:import_prices")
