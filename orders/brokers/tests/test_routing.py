"""The broker port (orders/brokers/): routing, the paper broker's fills, idempotent
reconciliation by the broker's fill id, rejections and errors as events, and no lock held while
a broker is called. Expected numbers by hand from docs/strategy.md#fills."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from conftest import assert_error
from events.models import Event
from orders.brokers import service as brokers
from orders.brokers.port import BrokerFill, BrokerRejected, BrokerUnavailable, Report
from orders.models import Fill, Order, OrderStatus
from orders.services import order_submit
from positions.models import Broker, Position
from positions.services import prices_record
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal


def price(ticker, p, later=0, ts=None):
    """A price observed now (``later`` seconds on), or at ``ts``: the paper broker fills an
    order at the first price whose market time is after the order was placed."""
    ts = ts or clock.now() + dt.timedelta(seconds=later)
    prices_record(rows=[{"ticker": ticker, "price": D(str(p)), "ts": ts}])


def submit(position, side, qty):
    with transaction.atomic():
        locked = Position.objects.select_for_update().get(pk=position.pk)
        return order_submit(position=locked, side=side, qty=D(str(qty)), source="evaluation")


def types(position):
    return list(Event.objects.filter(position_id=position.pk).order_by("id")
                .values_list("type", flat=True))


def test_paper_order_is_routed_then_fills_at_the_next_recorded_price(make_position):
    pos = make_position(qty="0", cash="10000", broker="paper", slippage_bps="10",
                        commission_rate="0.001")
    price("ZIM", 40)  # recorded before the order: not its fill price
    order = submit(pos, "BUY", 100)
    assert order.broker == "paper"
    run = brokers.orders_route()
    order.refresh_from_db()
    assert run.routed == 1 and order.broker_order_id == f"paper-{order.id}"
    assert order.routed_at is not None and types(pos)[-1] == "order_routed"
    # No price since the order: nothing fills.
    assert brokers.brokers_poll().fills == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED
    price("ZIM", 50, later=1)
    price("ZIM", 60, later=2)
    assert brokers.brokers_poll().fills == 1
    order.refresh_from_db()
    pos.refresh_from_db()
    # 50 worsened by 10 bps for a buy: 50.05; commission 0.001 * 100 * 50.05 = 5.005
    assert (order.status, order.filled_qty, order.avg_fill_price) == ("filled", 100, D("50.05"))
    assert pos.qty == 100 and pos.cash == D("10000") - D("5005") - D("5.005")
    assert pos.anchor_price == D("50.05")
    fill = order.fills.get()
    assert (fill.broker, fill.broker_fill_id) == ("paper", f"paper-{order.id}:1")
    assert types(pos)[-2:] == ["order_filled", "anchor_updated"]
    # Polled again: nothing is open, nothing changes.
    assert brokers.brokers_poll().fills == 0


def test_a_repeated_report_never_fills_twice(make_position):
    pos = make_position(qty="10", cash="1000", broker="paper")
    order = submit(pos, "SELL", 4)
    brokers.orders_route()
    fill = BrokerFill("X-1", D(2), D(20), D("0.01"))
    report = Report(order.id, "open", (fill,))
    brokers.report_apply(broker="paper", report=report)
    brokers.report_apply(broker="paper", report=report)
    pos.refresh_from_db()
    order.refresh_from_db()
    assert order.filled_qty == 2 and order.fills.count() == 1
    assert (pos.qty, pos.cash) == (8, D("1039.99"))  # 1000 + 2 * 20 - 0.01
    # The same id with other numbers is an anomaly on record; the stored fill stands.
    brokers.report_apply(broker="paper", report=Report(order.id, "open", (
        BrokerFill("X-1", D(2), D(21), None),)))
    pos.refresh_from_db()
    assert (pos.qty, pos.cash) == (8, D("1039.99"))
    mismatch = Event.objects.get(position_id=pos.pk, type="broker_fill_mismatch")
    assert mismatch.outputs["price"] == "20.000000" or D(str(mismatch.outputs["price"])) == 20
    # The database itself refuses a second fill with that broker fill id.
    with pytest.raises(IntegrityError), transaction.atomic():
        Fill.objects.create(order=order, qty=D(1), price=D(20), commission=D(0),
                            broker="paper", broker_fill_id="X-1")


def test_paper_fills_by_market_time_not_by_when_a_price_was_recorded(make_position):
    """A backfill of older prices imported after the order does not fill it, nor a price at
    the order's very instant; the first price observed after the order does, however many
    older ones were recorded after it."""
    pos = make_position(qty="0", cash="10000", broker="paper", commission_rate="0")
    order = submit(pos, "BUY", 10)
    brokers.orders_route()
    placed = order.created_at
    price("ZIM", "0.01", ts=placed - dt.timedelta(days=30))  # a backfill, recorded now
    price("ZIM", "0.02", ts=placed - dt.timedelta(minutes=1))
    price("ZIM", "0.03", ts=placed)  # not after the order
    assert brokers.brokers_poll().fills == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED and not order.fills.exists()
    price("ZIM", 101, later=2)
    price("ZIM", 100, later=1)  # recorded later, observed earlier: the first after the order
    assert brokers.brokers_poll().fills == 1
    order.refresh_from_db()
    assert (order.status, order.avg_fill_price) == ("filled", D(100))


def test_a_typed_fill_of_an_order_a_broker_holds_is_refused(api, make_position):
    pos = make_position(qty="0", cash="10000", broker="paper", commission_rate="0")
    order = submit(pos, "BUY", 10)
    res = api.post(f"/v1/orders/{order.id}/fill", {"price": 0.01, "filled_qty": 10},
                   format="json")
    body = assert_error(res, 409, "order_held_by_broker")
    assert "paper" in body["message"] and "manual" in body["message"]
    assert body["message"].startswith(f"Order {order.id} is held by the paper broker: its fills "
                                      "come from that broker")
    assert body["message"].endswith("Only orders of manual positions take typed-in fills.")
    order.refresh_from_db()
    pos.refresh_from_db()
    assert (order.status, order.filled_qty, pos.qty, pos.cash) == ("submitted", 0, 0, 10000)
    rejected = Event.objects.get(position_id=pos.pk, type="fill_rejected")
    assert rejected.outputs["code"] == "order_held_by_broker" and rejected.order_id == order.id
    # its broker's own fill still goes through
    brokers.orders_route()
    price("ZIM", 100, later=1)
    assert brokers.brokers_poll().fills == 1


def test_paper_trims_a_buy_the_cash_no_longer_covers(make_position):
    pos = make_position(qty="0", cash="1000", broker="paper", commission_rate="0",
                        fractional=False)
    order = submit(pos, "BUY", 10)  # sized at about 100 a share
    brokers.orders_route()
    price("ZIM", 120)
    brokers.brokers_poll()
    order.refresh_from_db()
    pos.refresh_from_db()
    # 1000 / 120 = 8.33: 8 whole shares fill, the other 2 are cancelled.
    assert (order.status, order.filled_qty) == ("cancelled", 8)
    assert (pos.qty, pos.cash) == (8, D(40))
    cancel = Event.objects.get(position_id=pos.pk, type="order_cancelled")
    assert "trimmed to 8 of 10 shares" in cancel.message and "paper" in cancel.message


def test_paper_cancels_an_order_nothing_covers(make_position):
    pos = make_position(qty="0", cash="100", broker="paper", commission_rate="0",
                        fractional=False)
    order = submit(pos, "BUY", 1)
    brokers.orders_route()
    price("ZIM", 101)
    brokers.brokers_poll()
    order.refresh_from_db()
    pos.refresh_from_db()
    assert (order.status, order.filled_qty, pos.cash) == ("cancelled", 0, 100)
    assert not order.fills.exists()


def test_manual_orders_are_not_routed(make_position):
    pos = make_position(qty="0", cash="1000")
    order = submit(pos, "BUY", 1)
    price("ZIM", 10)
    assert brokers.orders_route().routed == 0 and brokers.brokers_poll().fills == 0
    order.refresh_from_db()
    assert order.routed_at is None and order.status == "submitted"
    assert "order_routed" not in types(pos)


def test_every_broker_a_position_can_name_has_one_adapter():
    assert sorted(brokers.ADAPTERS) == sorted(Broker.values)
    assert all(isinstance(brokers.broker_for(name), brokers.ADAPTERS[name])
               for name in Broker.values)


class _Stub:
    name = "paper"
    routes = True
    price_driven = False

    def __init__(self, place=None, poll=None):
        self._place, self._poll = place, poll

    def place(self, ticket):
        return self._place(ticket)

    def cancel(self, ticket):
        return None

    def poll(self, tickets):
        return self._poll(tickets)


def _raise(exc):
    def f(*a):
        raise exc
    return f


def test_a_rejection_cancels_the_order_and_says_why(make_position, monkeypatch):
    pos = make_position(qty="0", cash="1000", broker="paper")
    order = submit(pos, "BUY", 1)
    stub = _Stub(place=_raise(BrokerRejected("insufficient_buying_power", "no buying power")))
    monkeypatch.setattr(brokers, "broker_for", lambda name: stub)
    assert brokers.orders_route().rejected == 1
    order.refresh_from_db()
    assert order.status == "cancelled" and order.routed_at is None
    assert types(pos)[-2:] == ["broker_rejected", "order_cancelled"]


def test_an_unreachable_broker_is_an_event_and_the_order_is_tried_again(make_position,
                                                                          monkeypatch):
    pos = make_position(qty="0", cash="1000", broker="paper")
    order = submit(pos, "BUY", 1)
    stub = _Stub(place=_raise(BrokerUnavailable("timed out")),
                 poll=_raise(BrokerUnavailable("timed out")))
    monkeypatch.setattr(brokers, "broker_for", lambda name: stub)
    assert brokers.orders_route().errors == 1
    order.refresh_from_db()
    assert order.status == "submitted" and order.routed_at is None
    err = Event.objects.get(position_id=pos.pk, type="broker_error")
    assert "timed out" in err.message
    stub._place = lambda t: "B-1"
    assert brokers.orders_route().routed == 1
    assert brokers.brokers_poll().errors == 1
    assert Event.objects.filter(position_id=pos.pk, type="broker_error").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_no_row_is_locked_while_the_broker_is_called(make_position, monkeypatch):
    """Another connection can lock the position and the order (NOWAIT) from inside the
    broker's place and poll: the service holds no lock and no transaction across the call."""
    pos = make_position(qty="0", cash="1000", broker="paper")
    order = submit(pos, "BUY", 1)
    seen = []

    def probe(*_):
        def other():
            try:
                with transaction.atomic():
                    Position.objects.select_for_update(nowait=True).get(pk=pos.pk)
                    Order.objects.select_for_update(nowait=True).get(pk=order.pk)
                seen.append("free")
            except Exception as exc:
                seen.append(repr(exc))
            finally:
                connection.close()

        t = threading.Thread(target=other)
        t.start()
        t.join(30)

    def place(ticket):
        probe()
        return "B-1"

    def poll(tickets):
        probe()
        return [Report(t.order_id, "open") for t in tickets]

    monkeypatch.setattr(brokers, "broker_for", lambda name: _Stub(place=place, poll=poll))
    brokers.orders_route()
    brokers.brokers_poll()
    assert seen == ["free", "free"]


def test_the_api_takes_and_shows_broker_and_slippage(api):
    r = api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1000, "broker": "paper",
                                   "slippage_bps": 5}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["broker"] == "paper" and D(str(r.json()["slippage_bps"])) == 5
    pid = r.json()["id"]
    r = api.patch(f"/v1/positions/{pid}", {"broker": "manual"}, format="json")
    assert r.status_code == 200 and r.json()["broker"] == "manual"
    changed = Event.objects.filter(position_id=pid, type="config_changed").get()
    assert changed.outputs["changed"]["broker"] == {"old": "paper", "new": "manual"}
    body = assert_error(api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1,
                                                   "broker": "ib"}, format="json"),
                        400, "validation_error")
    assert "broker" in body["fields"]
    body = assert_error(api.patch(f"/v1/positions/{pid}", {"slippage_bps": 10000},
                                  format="json"), 400, "validation_error")
    assert "slippage_bps" in body["fields"]
    assert Position.objects.get(pk=pid).slippage_bps == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_polls_fill_once(make_position):
    """Four pollers at once over the same paper order: one fill, the balances moved once."""
    from orders.tests.test_concurrency import run_parallel

    pos = make_position(qty="0", cash="1000", broker="paper", commission_rate="0")
    order = submit(pos, "BUY", 5)
    brokers.orders_route()
    price("ZIM", 100)
    runs = run_parallel(4, lambda i: brokers.brokers_poll())
    order.refresh_from_db()
    pos.refresh_from_db()
    assert order.fills.count() == 1 and order.status == "filled"
    assert (pos.qty, pos.cash) == (5, D(500))
    assert sum(r.fills for r in runs) >= 1
    assert Event.objects.filter(position_id=pos.pk, type="order_filled").count() == 1


def test_routing_with_the_callers_positions_places_the_same_tickets(make_position,
                                                                     monkeypatch):
    """The trade cycle hands orders_route the positions its batch evaluated: their orders are
    placed with the caller's instance (no second read of it); an order of a position it did
    not hand over reads its own. The tickets placed are the ones routing without them
    places, and both orders are routed with their events."""
    a = make_position(qty="0", cash="10000", broker="paper")
    b = make_position(qty="0", cash="10000", broker="paper")
    orders = [submit(a, "BUY", 10), submit(b, "BUY", 20)]
    placed = []
    real_place = brokers.PaperBroker.place
    monkeypatch.setattr(brokers.PaperBroker, "place",
                        lambda self, ticket: placed.append(ticket) or real_place(self, ticket))
    given = Position.objects.get(pk=a.pk)
    run = brokers.orders_route(position_ids=[a.pk, b.pk], positions={a.pk: given})
    assert run.routed == 2 and [t.order_id for t in placed] == [o.id for o in orders]
    assert [(t.ticker, t.side, t.qty, t.account, t.cfg) for t in placed] == [
        ("ZIM", "BUY", D(10), a.state(), a.config()), ("ZIM", "BUY", D(20), b.state(),
                                                       b.config())]
    assert types(a)[-1] == types(b)[-1] == "order_routed"
    for order in orders:
        order.refresh_from_db()
        assert order.broker_order_id == f"paper-{order.id}" and order.routed_at is not None
