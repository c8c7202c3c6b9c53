"""Users see their alerts: ``GET /v1/alerts`` over their positions (owner-isolated, filtered,
paged), ``?alert=`` on a position's events, the schema, and the admin's "Alerts only" filter.
The alerts come from the real paths: a stale price, an unreachable broker, a failing dividend
step and a ledger difference."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from conftest import assert_error
from events.models import ALERT_TYPES, Event
from orders.brokers import service as brokers
from orders.brokers.port import BrokerUnavailable
from orders.services import order_submit
from positions.models import Dividend, Position
from positions.services import prices_record
from positions.workflows.alerts import price_stale_check
from positions.workflows.corporate_actions import dividends_process
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
UTC = dt.UTC
OPEN = dt.datetime(2024, 7, 5, 13, 30, tzinfo=UTC)  # Friday's XNYS session


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.VOLBAL_CALENDAR = "XNYS"
    settings.VOLBAL_PRICE_STALE_AFTER = 15


class _Down:
    name, routes, price_driven = "paper", True, False

    def place(self, ticket):
        raise BrokerUnavailable("connection refused")

    def poll(self, tickets):
        raise BrokerUnavailable("connection refused")


@pytest.fixture
def world(make_position, other_user, monkeypatch):
    """Alice's ZIM position with a stale price, a broker error and a failing dividend step;
    her ABC position with a ledger difference; Bob's ZIM position, stale too."""
    zim = make_position(ticker="ZIM", qty="100000000", cash="1000", broker="paper")
    abc = make_position(ticker="ABC", qty="10", cash="1000")
    bobs = make_position(owner=other_user, ticker="ZIM", qty="10", cash="1000")
    Position.objects.update(created_at=dt.datetime(2024, 7, 1, tzinfo=UTC))
    monkeypatch.setattr(clock, "now", lambda: OPEN - dt.timedelta(hours=1))
    prices_record(rows=[{"ticker": "ZIM", "price": D(10), "ts": OPEN - dt.timedelta(hours=1)},
                        {"ticker": "ABC", "price": D(10), "ts": OPEN - dt.timedelta(hours=1)}])
    monkeypatch.setattr(clock, "now", lambda: OPEN + dt.timedelta(minutes=20))
    prices_record(rows=[{"ticker": "ABC", "price": D(10), "ts": OPEN + dt.timedelta(minutes=19)}])
    price_stale_check()  # ZIM: Alice's and Bob's

    with transaction.atomic():
        locked = Position.objects.select_for_update().get(pk=zim.pk)
        order_submit(position=locked, side="BUY", qty=D(1), source="evaluation")
    monkeypatch.setattr(brokers, "broker_for", lambda name: _Down())
    brokers.orders_route()  # broker_error

    # a dividend no run can apply (its entitlement overflows the columns)
    Dividend.objects.create(position=zim, ex_date=dt.date(2024, 7, 5),
                            pay_date=dt.date(2024, 7, 20), dps=D("1000000000"),
                            withholding_rate=D(0))
    dividends_process(today=dt.date(2024, 7, 5))  # dividend_step_failed

    Position.objects.filter(pk=abc.pk).update(cash=D("999"))
    with pytest.raises(SystemExit):
        call_command("verify_ledger", "--record-alerts", stdout=io.StringIO(),
                     stderr=io.StringIO())  # ledger_difference
    return zim, abc, bobs


def test_alerts_list_every_alert_of_the_callers_positions_and_nothing_else(api, world):
    zim, abc, bobs = world
    body = api.get("/v1/alerts").json()
    got = [(a["position_id"], a["type"]) for a in body["alerts"]]
    assert got == [(zim.id, "price_stale"), (zim.id, "broker_error"),
                   (zim.id, "dividend_step_failed"), (abc.id, "ledger_difference")]
    assert body["next"] is None
    by_type = {a["type"]: a for a in body["alerts"]}
    assert by_type["broker_error"]["message"] == (
        f"Order {by_type['broker_error']['order_id']} could not be placed with the paper broker "
        "(connection refused); it is tried again on the next cycle.")
    assert "the ex-date step failed and is tried again on every run" in \
        by_type["dividend_step_failed"]["message"]
    assert by_type["ledger_difference"]["outputs"]["differences"] == [
        {"field": "cash", "stored": 999, "expected": 1000}]
    assert by_type["price_stale"]["message"].startswith("Alert: no new price for ZIM for 20 ")
    # Bob has his own
    assert Event.objects.filter(position_id=bobs.pk, type="price_stale").count() == 1


def test_alerts_filter_and_page_like_the_events(api, other_api, world):
    zim, abc, bobs = world
    only = api.get("/v1/alerts", {"type": ["broker_error", "ledger_difference"]}).json()
    assert [a["type"] for a in only["alerts"]] == ["broker_error", "ledger_difference"]
    assert {a["position_id"] for a in api.get("/v1/alerts", {"ticker": "abc"}).json()[
        "alerts"]} == {abc.id}
    assert len(api.get("/v1/alerts", {"position": zim.id}).json()["alerts"]) == 3
    assert api.get("/v1/alerts", {"position": bobs.id}).json()["alerts"] == []  # not hers
    first = api.get("/v1/alerts", {"limit": 3}).json()
    rest = api.get("/v1/alerts", {"limit": 3, "cursor": first["next"]}).json()
    assert len(first["alerts"]) == 3 and len(rest["alerts"]) == 1 and rest["next"] is None
    assert api.get("/v1/alerts", {"since": "2999-01-01T00:00:00Z"}).json()["alerts"] == []
    assert [a["position_id"] for a in other_api.get("/v1/alerts").json()["alerts"]] == [bobs.id]
    body = assert_error(api.get("/v1/alerts", {"type": "evaluation"}), 400, "invalid_query")
    assert list(body["fields"]) == ["type"]
    assert_error(api.get("/v1/alerts", {"position": ""}), 400, "invalid_query")


def test_a_positions_events_filter_on_alert(api, world):
    zim, _abc, _bobs = world
    url = f"/v1/positions/{zim.id}/events"
    alerts = [e["type"] for e in api.get(url, {"alert": "true"}).json()["events"]]
    assert alerts == ["price_stale", "broker_error", "dividend_step_failed"]
    others = [e["type"] for e in api.get(url, {"alert": "false"}).json()["events"]]
    assert others and not set(others) & ALERT_TYPES and "position_created" in others
    body = assert_error(api.get(url, {"alert": "yes"}), 400, "invalid_query")
    assert list(body["fields"]) == ["alert"]


def test_the_schema_documents_the_alerts():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out,
                 stderr=io.StringIO())
    schema = yaml.safe_load(out.getvalue())
    op = schema["paths"]["/v1/alerts"]["get"]
    assert op["tags"] == ["events"]
    params = {p["name"]: p for p in op["parameters"]}
    assert set(params["type"]["schema"]["items"]["enum"]) == set(ALERT_TYPES)
    assert {"position", "ticker", "since", "until", "limit", "cursor"} <= set(params)
    events = schema["paths"]["/v1/positions/{id}/events"]["get"]
    alert = next(p for p in events["parameters"] if p["name"] == "alert")
    assert set(alert["schema"]["enum"]) == {"true", "false"}


def test_the_admin_lists_alerts_only(admin_client, world):
    url = reverse("admin:events_event_changelist")
    html = admin_client.get(url, {"alert": "true"}).content.decode()
    assert "Alerts only" in html
    assert html.count("Alert: no new price for ZIM") == 2  # Alice's and Bob's
    assert "could not be placed with the paper broker" in html
    assert "5 results" in html  # Alice's four and Bob's one
    assert "Alert: the ledger check found 1 difference" in html
    others = admin_client.get(url, {"alert": "false"}).content.decode()
    assert f"{Event.objects.count() - 5} results" in others
    assert "Alert: no new price" not in others
