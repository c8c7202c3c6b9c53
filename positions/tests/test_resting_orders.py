"""Resting orders live (docs/strategy.md#resting-orders, docs/brokers.md#resting-orders): the
API's order_type, the paper broker's limit fills, the rungs a cycle keeps resting and what
replaces them, and the resting orders shown for a person (the manual broker rests nothing)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import assert_error
from events.models import Event
from orders.models import Order
from positions.dividends import dividend_announce
from positions.services import prices_record
from positions.tests.test_admin import change_url
from positions.workflows.corporate_actions import split_announce
from positions.workflows.cycle import trade_cycle
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
PLAIN = {"commission_rate": "0", "min_notional": "0", "guard_low": "0", "guard_high": "1",
         "fractional": False}


@pytest.fixture(autouse=True)
def always_in_session(settings):
    settings.VOLBAL_CALENDAR = ""


def price(p):
    """A price observed now: after every order placed so far (the paper broker fills an order
    at a price whose market time is after it)."""
    prices_record(rows=[{"ticker": "ZIM", "price": D(str(p)), "ts": clock.now()}])


def resting(position):
    return {(o.rung, o.limit_price, o.qty) for o in Order.objects.filter(
        position=position, rung__isnull=False, status="submitted")}


def limit_position(make_position, broker="paper", **kw):
    return make_position(qty="50", cash="5000", anchor_price="100", broker=broker,
                         order_type="limit", auto_submit=True, **PLAIN, **kw)


def test_order_type_is_set_and_shown_by_the_api_and_refused_when_unknown(api):
    body = {"ticker": "ZIM", "qty": 0, "cash": 1000}
    r = api.post("/v1/positions", body, format="json")
    assert r.status_code == 201 and r.json()["order_type"] == "market"
    r = api.patch(f"/v1/positions/{r.json()['id']}", {"order_type": "limit"}, format="json")
    assert r.status_code == 200 and r.json()["order_type"] == "limit"
    r = api.post("/v1/positions", {**body, "order_type": "stop"}, format="json")
    assert "order_type" in str(assert_error(r, 400, "validation_error"))


def test_a_cycle_rests_both_rungs_and_the_api_and_the_admin_show_them(make_position, api,
                                                                     admin_client):
    pos = limit_position(make_position)
    price(100)
    row = trade_cycle().row
    assert row.errors == 0 and row.routed == 2
    assert resting(pos) == {("BUY", D("97.00"), D(5)), ("SELL", D("103.00"), D(4))}
    placed = Event.objects.filter(position_id=pos.pk, type="order_submitted").order_by("id")
    assert [(e.inputs["rung"], D(str(e.inputs["limit_price"]))) for e in placed] == [
        ("BUY", D(97)), ("SELL", D(103))]
    body = api.get(f"/v1/positions/{pos.id}/resting-orders").json()
    assert [(o["rung"], o["order_type"], o["limit_price"], o["qty"], o["broker"])
            for o in body["orders"]] == [("BUY", "limit", 97, 5, "paper"),
                                          ("SELL", "limit", 103, 4, "paper")]
    assert [(r["side"], r["limit_price"]) for r in body["ladder"]] == [("BUY", 97),
                                                                      ("SELL", 103)]
    assert body["message"].startswith("2 resting at the paper broker")
    page = admin_client.get(change_url(pos)).content.decode()  # the admin shows the same
    assert body["message"] in page.replace("&#x27;", "'")
    assert all(o["order_id"] in page for o in body["orders"])
    # a price between the rungs changes nothing: no new order, nothing cancelled
    price(101)
    trade_cycle()
    assert Order.objects.filter(position=pos).count() == 2


def test_a_later_price_through_a_rung_fills_at_the_limit_or_the_better_gap(make_position):
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    price("95.5")  # gaps through the buy rung at 97: filled at 95.5
    trade_cycle()
    buy = Order.objects.get(position=pos, rung="BUY", limit_price=D("97.00"))
    assert (buy.status, buy.avg_fill_price) == ("filled", D("95.5"))
    sell = Order.objects.get(position=pos, rung="SELL", limit_price=D("103.00"))
    assert sell.status == "cancelled"
    cancel = Event.objects.get(order_id=sell.id, type="order_cancelled")
    assert cancel.inputs["reason"].startswith("the ladder's sell rung is now")
    pos.refresh_from_db()
    assert (pos.qty, pos.anchor_price) == (D(55), D("95.5"))
    # both placed anew around the new anchor, no market order meanwhile
    assert {r for r, _, _ in resting(pos)} == {"BUY", "SELL"}
    assert not Order.objects.filter(position=pos, order_type="market").exists()


def test_a_configuration_change_or_a_dividend_replaces_the_rungs(make_position, user, api):
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    before = resting(pos)
    api.patch(f"/v1/positions/{pos.id}", {"trigger_pct": 0.05}, format="json")
    assert resting(pos) == set()  # cancelled with the change: a stale rung never fills
    cancel = Event.objects.filter(position_id=pos.pk, type="order_cancelled").last()
    assert cancel.inputs["reason"] == "the ladder moved: the configuration changed"
    price(100)
    trade_cycle()
    assert resting(pos) == {("BUY", D("95.00"), D(9)), ("SELL", D("105.00"), D(7))} != before
    today = clock.trading_day()
    dividend_announce(owner=user, position_id=pos.id, ex_date=today, pay_date=today,
                      dps=D("1"))
    price(100)
    trade_cycle()
    reasons = list(Event.objects.filter(position_id=pos.pk, type="order_cancelled")
                   .values_list("inputs__reason", flat=True))
    assert any(r.startswith("the ladder moved: dividend") for r in reasons)
    assert len(resting(pos)) == 2


def test_a_cash_movement_or_a_transfer_replaces_the_rungs(make_position, api):
    """A deposit, a withdrawal or a transfer moves the ladder (the weight sees the new cash):
    the resting rungs are cancelled with the movement, and the next cycle rests the new ones."""
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    before = resting(pos)
    r = api.post(f"/v1/positions/{pos.id}/cash", {"amount": 5000}, format="json",
                 HTTP_IDEMPOTENCY_KEY="dep-1")
    assert r.status_code == 201, r.content
    assert resting(pos) == set()
    cancel = Event.objects.filter(position_id=pos.pk, type="order_cancelled").last()
    assert cancel.inputs["reason"] == "the ladder moved: cash moved in or out"
    price(100)
    trade_cycle()
    after = resting(pos)
    assert len(after) == 2 and after != before  # sized on 10,000 of cash now
    pfl = api.post("/v1/portfolios", {"name": "p", "cash": 1000}, format="json").json()["id"]
    r = api.patch(f"/v1/positions/{pos.id}", {"portfolio": pfl, "target_weight": 0.5},
                  format="json")
    assert r.status_code == 200, r.content
    assert resting(pos) == after  # joining moves no cash: the rungs stay
    r = api.post(f"/v1/portfolios/{pfl}/transfers", {"from": "portfolio", "to": pos.id,
                                                      "amount": 500},
                 format="json", HTTP_IDEMPOTENCY_KEY="tr-1")
    assert r.status_code == 201, r.content
    assert resting(pos) == set()


def test_the_manual_broker_rests_nothing_and_shows_what_to_place(make_position, api):
    pos = limit_position(make_position, broker="manual")
    price(100)
    trade_cycle()
    price(90)  # through the buy rung: the person's resting order trades it, not a market order
    trade_cycle()
    assert not Order.objects.filter(position=pos).exists()
    body = api.get(f"/v1/positions/{pos.id}/resting-orders").json()
    assert body["orders"] == []
    assert [(r["side"], r["qty"], r["limit_price"]) for r in body["ladder"]] == [
        ("BUY", 5, 97), ("SELL", 4, 103)]
    assert body["message"] == ("The manual broker rests nothing: place these limit orders by "
                               "hand: BUY 5 at 97; SELL 4 at 103.")
    assert Event.objects.filter(position_id=pos.pk, type="evaluation").count() == 2


def test_a_split_replaces_the_rungs_at_the_split_prices(make_position, user):
    pos = limit_position(make_position)
    price(100)
    trade_cycle()
    split_announce(owner=user, position_id=pos.id, ratio="2", effective_date=clock.trading_day())
    price(50)
    row = trade_cycle().row
    assert row.errors == 0, row.message
    reasons = set(Event.objects.filter(position_id=pos.pk, type="order_cancelled")
                  .values_list("inputs__reason", flat=True))
    assert len(reasons) == 1 and reasons.pop().startswith("the ladder moved: split")
    assert {(r, p) for r, p, _q in resting(pos)} == {("BUY", D("48.50")), ("SELL", D("51.50"))}
