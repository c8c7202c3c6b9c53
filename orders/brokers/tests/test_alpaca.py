"""The Alpaca broker (orders/brokers/alpaca.py) against recorded exchanges of Alpaca's trading
API: alpaca-py talks HTTP to a replay server on 127.0.0.1 (alpaca_replay.py beside this file)
that answers as recorded and checks every request the SDK sends (method, path, query, body, auth
headers). There is no network here: nothing reaches Alpaca."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction

from conftest import assert_error
from events.models import Event
from orders.brokers import alpaca
from orders.brokers import service as brokers
from orders.brokers.tests.alpaca_replay import KEY_ID, SECRET, Replay, load
from orders.models import Order
from orders.services import order_submit, orders_expire
from positions.models import Position
from positions.services import prices_record
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
AID = "61e69015-8549-4bfd-b9c3-01e75843f47d"  # Alpaca's id for the order in the recordings


@pytest.fixture
def replay(monkeypatch):
    server = Replay()
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    monkeypatch.setenv("ALPACA_BASE_URL", server.url)
    monkeypatch.setattr(alpaca, "RETRY_ATTEMPTS", 1)  # one SDK retry on 429/504, no wait
    monkeypatch.setattr(alpaca, "RETRY_WAIT_SECONDS", 0)
    yield server
    server.close()


@pytest.fixture
def position(make_position):
    return make_position(qty="0", cash="10000", broker="alpaca", commission_rate="0")


def submit(position, side="BUY", qty=10, **kw):
    with transaction.atomic():
        locked = Position.objects.select_for_update().get(pk=position.pk)
        return order_submit(position=locked, side=side, qty=D(str(qty)), source="evaluation",
                            **kw)


def recorded(replay, name, order):
    replay.expect(load(name, order_id=order.id, alpaca_id=AID))


def types(position):
    return list(Event.objects.filter(position_id=position.pk).order_by("id")
                .values_list("type", flat=True))


def last(position, type_):
    return Event.objects.filter(position_id=position.pk, type=type_).order_by("-id").first()


def refreshed(*objs):
    for o in objs:
        o.refresh_from_db()
    return objs


def test_routing_places_a_market_day_order_under_our_id(replay, position):
    order = submit(position)
    recorded(replay, "place_accepted", order)
    run = brokers.orders_route()
    replay.check()  # POST /v2/orders {symbol, qty 10, buy, market, day, client_order_id}
    refreshed(order)
    assert run.routed == 1 and order.broker_order_id == AID and order.routed_at is not None
    assert types(position)[-1] == "order_routed"
    assert last(position, "order_routed").outputs["broker_order_id"] == AID


def test_each_fill_activity_fills_once_partial_then_full(replay, position):
    order = submit(position)
    recorded(replay, "poll_partial_then_full", order)
    brokers.orders_route()
    assert brokers.brokers_poll().fills == 1
    refreshed(order, position)
    assert (order.status, order.filled_qty, order.avg_fill_price) == (
        "partially_filled", 4, D("50.1"))
    assert (position.qty, position.cash) == (4, D("10000") - D("200.4"))
    # Polled again: the same activity is listed again and nothing moves.
    assert brokers.brokers_poll().fills == 0
    refreshed(order, position)
    assert (order.filled_qty, position.qty, position.cash) == (4, 4, D("9799.6"))
    # Polled: the order filled; only the new activity is applied.
    assert brokers.brokers_poll().fills == 1
    replay.check()
    refreshed(order, position)
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert (position.qty, position.cash) == (10, D("9799.6") - D("301.2"))  # 6 * 50.2
    assert sorted(order.fills.values_list("broker", "broker_fill_id")) == [
        ("alpaca", "20240102150002001::a1b2c3d4-0000-4000-8000-000000000001"),
        ("alpaca", "20240102150002002::a1b2c3d4-0000-4000-8000-000000000002")]
    assert types(position).count("order_partially_filled") == 1
    assert types(position).count("order_filled") == 1
    # Filled: it is not polled any more (the recording has no further exchange).
    brokers.brokers_poll()
    replay.check()


def test_a_fill_reported_again_with_other_numbers_is_a_mismatch(replay, position):
    order = submit(position)
    recorded(replay, "poll_fill_replayed_with_other_numbers", order)
    brokers.orders_route()
    brokers.brokers_poll()
    brokers.brokers_poll()
    replay.check()
    refreshed(order, position)
    assert order.fills.count() == 1 and (position.qty, position.cash) == (4, D("9799.6"))
    mismatch = last(position, "broker_fill_mismatch")
    assert mismatch is not None and "50.3" in mismatch.message and "50.1" in mismatch.message


def test_an_order_ended_before_its_fill_is_listed_waits_for_the_fill(replay, position):
    order = submit(position)
    recorded(replay, "poll_canceled_before_its_fill_is_listed", order)
    brokers.orders_route()
    brokers.brokers_poll()  # canceled with 4 filled, no activity yet: not ended here
    refreshed(order)
    assert (order.status, order.filled_qty) == ("submitted", 0)
    brokers.brokers_poll()
    replay.check()
    refreshed(order, position)
    assert (order.status, order.filled_qty, position.qty) == ("cancelled", 4, 4)
    assert types(position)[-3:] == ["order_partially_filled", "anchor_updated",
                                    "order_cancelled"]
    assert "alpaca" in last(position, "order_cancelled").message


@pytest.mark.parametrize("name, code", [("place_refused_403", "alpaca_forbidden"),
                                        ("place_refused_422", "alpaca_invalid_order")])
def test_a_refused_order_is_broker_rejected_and_cancelled(replay, position, name, code):
    order = submit(position)
    recorded(replay, name, order)
    assert brokers.orders_route().rejected == 1
    replay.check()
    refreshed(order)
    assert order.status == "cancelled" and order.routed_at is None
    assert types(position)[-2:] == ["broker_rejected", "order_cancelled"]
    rejected = last(position, "broker_rejected")
    assert rejected.outputs["code"] == code
    assert ("insufficient buying power" if code == "alpaca_forbidden"
            else "qty must be integer") in rejected.message


def test_an_order_alpaca_rejects_after_accepting_it(replay, position):
    order = submit(position)
    recorded(replay, "poll_rejected", order)
    brokers.orders_route()
    assert brokers.brokers_poll().cancelled == 1
    replay.check()
    refreshed(order)
    assert order.status == "cancelled"
    assert types(position)[-2:] == ["broker_rejected", "order_cancelled"]
    assert last(position, "broker_rejected").outputs["code"] == "alpaca_rejected"


def test_a_duplicate_client_order_id_is_the_order_placed_before(replay, position):
    order = submit(position)
    recorded(replay, "place_duplicate_client_order_id", order)
    assert brokers.orders_route().routed == 1
    replay.check()
    refreshed(order)
    assert order.broker_order_id == AID and types(position)[-1] == "order_routed"


def test_a_504_the_sdk_retries_places_the_order_once(replay, position):
    order = submit(position)
    recorded(replay, "place_504_retried_by_the_sdk", order)
    assert brokers.orders_route().routed == 1
    replay.check()
    posts = [r for r in replay.requests if r["method"] == "POST"]
    assert len(posts) == 2 and {p["body"]["client_order_id"] for p in posts} == {order.id}
    refreshed(order)
    assert order.broker_order_id == AID


def test_rate_limited_is_a_broker_error_and_the_order_waits(replay, position):
    order = submit(position)
    recorded(replay, "place_429_rate_limited", order)
    assert brokers.orders_route().errors == 1
    replay.check()
    refreshed(order)
    assert order.status == "submitted" and order.routed_at is None
    error = last(position, "broker_error")
    assert error.outputs["code"] == "alpaca_rate_limited" and "429" in error.message


def test_a_server_error_is_a_broker_error_and_the_order_is_tried_again(replay, position):
    order = submit(position)
    recorded(replay, "place_500_then_accepted", order)
    assert brokers.orders_route().errors == 1
    refreshed(order)
    assert order.routed_at is None
    assert last(position, "broker_error").outputs["code"] == "alpaca_server_error"
    assert brokers.orders_route().routed == 1
    replay.check()
    refreshed(order)
    assert order.broker_order_id == AID


def test_a_poll_that_fails_is_a_broker_error_and_is_polled_again(replay, position):
    order = submit(position)
    recorded(replay, "poll_503", order)
    brokers.orders_route()
    assert brokers.brokers_poll().errors == 1
    refreshed(order)
    assert order.status == "submitted"
    error = last(position, "broker_error")
    assert error.outputs["code"] == "alpaca_server_error" and "503" in error.message
    assert brokers.brokers_poll().fills == 1
    replay.check()
    refreshed(order, position)
    assert (order.status, position.qty, position.cash) == ("filled", 10, D("9498.4"))


def test_a_network_error_is_a_broker_error(replay, position):
    order = submit(position)
    recorded(replay, "poll_dropped", order)
    brokers.orders_route()
    assert brokers.brokers_poll().errors == 1
    replay.check()
    refreshed(order)
    assert order.status == "submitted"
    assert last(position, "broker_error").outputs["code"] == "alpaca_unreachable"


def test_a_hung_endpoint_times_out_as_a_broker_error(replay, position, monkeypatch):
    """alpaca-py sets no timeout on its requests: the adapter's bounds the wait."""
    monkeypatch.setattr(alpaca, "TIMEOUT_SECONDS", 0.5)
    order = submit(position)
    recorded(replay, "poll_hung", order)
    brokers.orders_route()
    assert brokers.brokers_poll().errors == 1  # without a timeout it would wait and succeed
    error = last(position, "broker_error")
    assert error.outputs["code"] == "alpaca_unreachable" and "Timeout" in error.message


def test_without_credentials_an_order_is_a_broker_error_not_a_crash(replay, position,
                                                                       monkeypatch):
    monkeypatch.delenv("ALPACA_API_KEY_ID")
    monkeypatch.delenv("ALPACA_API_SECRET_KEY")
    order = submit(position)
    assert brokers.orders_route().errors == 1
    assert replay.requests == []
    refreshed(order)
    assert order.status == "submitted" and order.routed_at is None
    error = last(position, "broker_error")
    assert error.outputs["code"] == "alpaca_credentials_missing"
    assert "ALPACA_API_KEY_ID" in error.message


def test_a_cancel_is_asked_of_alpaca_and_ends_when_alpaca_reports_it(replay, position, api):
    order = submit(position)
    recorded(replay, "cancel", order)
    brokers.orders_route()
    r = api.post(f"/v1/orders/{order.id}/cancel")
    assert r.status_code == 202, r.content  # asked, not yet ended: Alpaca holds the order
    assert r.json()["status"] == "submitted" and r.json()["cancel_requested_at"]
    assert types(position)[-1] == "order_cancel_requested"
    assert api.post(f"/v1/orders/{order.id}/cancel").status_code == 202  # asked once
    assert types(position).count("order_cancel_requested") == 1
    brokers.orders_route()  # the cycle sends it: DELETE /v2/orders/{id}, 204
    assert types(position)[-1] == "order_cancel_routed"
    brokers.orders_route()  # sent once
    assert brokers.brokers_poll().cancelled == 1  # Alpaca reports it canceled
    replay.check()
    refreshed(order)
    assert order.status == "cancelled" and "alpaca" in last(position, "order_cancelled").message
    assert api.post(f"/v1/orders/{order.id}/cancel").status_code == 409  # order_not_open


def test_a_cancel_alpaca_cannot_send_is_sent_again(replay, position, api):
    order = submit(position)
    recorded(replay, "cancel_503", order)
    brokers.orders_route()
    assert api.post(f"/v1/orders/{order.id}/cancel").status_code == 202
    assert brokers.orders_route().errors == 1
    error = last(position, "broker_error")
    assert error.inputs["action"] == "cancel" and error.outputs["code"] == "alpaca_server_error"
    brokers.orders_route()
    brokers.brokers_poll()
    replay.check()
    refreshed(order)
    assert order.status == "cancelled"


def test_an_order_cancelled_after_a_failed_placement_never_reaches_alpaca(replay, position, api,
                                                                          monkeypatch):
    """A placement that failed just now may have reached Alpaca (a lost answer): the cancel is
    a request (202); the next cycle, finding the order still unrouted, ends it unsent."""
    order = submit(position)
    monkeypatch.delenv("ALPACA_API_KEY_ID")
    assert brokers.orders_route().errors == 1
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    assert api.post(f"/v1/orders/{order.id}/cancel").status_code == 202
    assert brokers.orders_route().routed == 0
    assert replay.requests == []
    refreshed(order)
    assert order.status == "cancelled" and order.routed_at is None
    assert "before it was sent" in last(position, "order_cancelled").message


def test_a_cancel_alpaca_refuses_because_the_order_filled_lets_the_fill_stand(replay, position,
                                                                              api):
    order = submit(position)
    recorded(replay, "cancel_not_cancelable", order)
    brokers.orders_route()
    assert api.post(f"/v1/orders/{order.id}/cancel").status_code == 202
    brokers.orders_route()  # DELETE: 422 order is not cancelable
    assert brokers.brokers_poll().fills == 1
    replay.check()
    refreshed(order, position)
    assert (order.status, position.qty) == ("filled", 10)


def test_other_brokers_cancel_at_once(make_position, api):
    pos = make_position(qty="0", cash="1000", broker="paper")
    order = submit(pos, qty=1)
    r = api.post(f"/v1/orders/{order.id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["cancel_requested_at"] is None


def test_a_day_order_alpaca_expired_is_order_expired_and_left_to_alpaca(replay, position):
    order = submit(position, time_in_force="day")
    unrouted = submit(position, qty=1, time_in_force="day")
    recorded(replay, "poll_expired", order)
    brokers.order_route(order=order)
    # Days later, the local expiry leaves the routed Alpaca order to Alpaca's report (it may
    # still list fills from before the close) and expires the one never routed.
    later = order.created_at + dt.timedelta(days=4)
    assert orders_expire(now=later) == [unrouted.id]
    refreshed(order)
    assert order.status == "submitted"
    brokers.brokers_poll()
    replay.check()
    refreshed(order)
    assert order.status == "cancelled"
    expired = last(position, "order_expired")
    assert expired.order_id == order.id and "alpaca" in expired.message


def test_credentials_are_never_shown(replay, position, client, user):
    order = submit(position)
    recorded(replay, "place_refused_403", order)
    brokers.orders_route()
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    pages = [client.get(f"/admin/positions/position/{position.pk}/change/"),
             client.get(f"/admin/orders/order/{order.pk}/change/"),
             client.get("/admin/events/event/")]
    assert all(p.status_code == 200 for p in pages)
    shown = b"".join(p.content for p in pages).decode()
    shown += "".join(str((e.message, e.inputs, e.outputs)) for e in Event.objects.all())
    assert SECRET not in shown and KEY_ID not in shown


def test_the_api_takes_broker_alpaca(api):
    r = api.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1000,
                                   "broker": "alpaca"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["broker"] == "alpaca"


def test_the_trade_cycle_routes_to_alpaca_and_applies_its_fill(replay, position, settings,
                                                                  capsys):
    """``manage.py trade`` end to end with an Alpaca position: evaluated, submitted, routed,
    polled; the next cycle applies the fill Alpaca reports."""
    settings.VOLBAL_CALENDAR = ""  # no calendar: in session whatever the hour of the run
    Position.objects.filter(pk=position.pk).update(auto_submit=True, guard_low=D("0.5"))
    prices_record(rows=[{"ticker": "ZIM", "price": D("100"), "ts": clock.now()}])
    replay.expect(load("trade_cycle", alpaca_id=AID))
    call_command("trade")
    order = Order.objects.get(position=position)
    assert (order.broker, order.broker_order_id, order.side) == ("alpaca", AID, "BUY")
    assert order.status == "submitted"
    assert order.time_in_force == "day"  # as placed with Alpaca (the recording's body)
    call_command("trade")
    replay.check()
    refreshed(order, position)
    assert (order.status, order.avg_fill_price) == ("filled", D("100.05"))
    assert position.qty == order.qty and position.cash == D("10000") - order.qty * D("100.05")
    assert {"order_submitted", "order_routed", "order_filled"} <= set(types(position))
    assert "1 fills" in capsys.readouterr().out


@pytest.mark.parametrize("broken", ["no credentials", "unreachable"])
def test_a_cycle_records_one_broker_error_per_order_and_prints_what_failed(
        replay, position, monkeypatch, settings, broken):
    """The cycle routes its claimed batch, then whatever is left: an order the broker could not
    take is tried once per cycle (README: a broker_error per cycle), and the summary's error
    count comes with one line per error."""
    import io

    settings.VOLBAL_CALENDAR = ""  # no calendar: in session whatever the hour of the run
    if broken == "no credentials":
        monkeypatch.delenv("ALPACA_API_KEY_ID")
        monkeypatch.delenv("ALPACA_API_SECRET_KEY")
        code = "alpaca_credentials_missing"
    else:
        replay.close()  # nothing listens there any more
        code = "alpaca_unreachable"
    Position.objects.filter(pk=position.pk).update(auto_submit=True, guard_low=D("0.5"))
    prices_record(rows=[{"ticker": "ZIM", "price": D("100"), "ts": clock.now()}])
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:  # a step failed: cron sees exit 1
        call_command("trade", "--quiet", stdout=out)
    assert exited.value.code == 1
    order = Order.objects.get(position=position)
    assert order.routed_at is None
    errors = list(Event.objects.filter(position_id=position.pk, type="broker_error"))
    assert [e.outputs["code"] for e in errors] == [code]
    text = out.getvalue()
    assert "1 errors" in text
    assert f"error: {position.id} order {order.id} {code}: Order {order.id} could not be " \
           "placed" in text
    with pytest.raises(SystemExit):  # the next cycle tries it again
        call_command("trade", "--quiet", stdout=io.StringIO())
    assert Event.objects.filter(position_id=position.pk, type="broker_error").count() == 2


def test_alpaca_orders_are_day_orders_and_gtc_is_refused(api, position, make_position):
    """Alpaca is sent market day orders: the order says so (not gtc), through the API too; a
    gtc asked of it is refused with nothing created. Other brokers keep gtc by default."""
    url = f"/v1/positions/{position.id}/orders"
    r = api.post(url, {"side": "BUY", "qty": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert r.status_code == 201, r.content
    assert Order.objects.get(pk=r.json()["order_id"]).time_in_force == "day"
    r = api.post(url, {"side": "BUY", "qty": 1, "time_in_force": "gtc"}, format="json",
                 HTTP_IDEMPOTENCY_KEY="k2")
    body = assert_error(r, 400, "validation_error")
    assert "day" in body["message"] and "time_in_force" in str(body)
    assert Order.objects.filter(position=position).count() == 1
    paper = make_position(qty="0", cash="10000", broker="paper")
    r = api.post(f"/v1/positions/{paper.id}/orders", {"side": "BUY", "qty": 1}, format="json",
                 HTTP_IDEMPOTENCY_KEY="k3")
    assert Order.objects.get(pk=r.json()["order_id"]).time_in_force == "gtc"


def test_an_alpaca_order_not_yet_routed_is_cancelled_at_once(replay, position, api):
    """Alpaca has never seen it: 200, ended, and no cycle sends it afterwards."""
    order = submit(position)
    r = api.post(f"/v1/orders/{order.id}/cancel")
    assert r.status_code == 200, r.content
    refreshed(order)
    assert order.status == "cancelled" and order.cancel_requested_at is None
    brokers.orders_route()
    brokers.brokers_poll()
    assert replay.requests == []
    refreshed(order)
    assert order.routed_at is None and "order_cancel_requested" not in types(position)


def test_a_cancel_while_a_cycle_places_the_order_is_a_request_sent_after(replay, position, api,
                                                                       monkeypatch):
    """The race: a cancel arrives while the cycle is placing the order (no lock is held during
    the call). Alpaca may already hold it, so the cancel is a request (202), sent to Alpaca
    once the placement is recorded; the order is never ended here while live there."""
    order = submit(position)
    answers, cancels = [], []

    def place(self, ticket):
        answers.append(api.post(f"/v1/orders/{ticket.order_id}/cancel"))  # meanwhile
        return AID

    monkeypatch.setattr(alpaca.AlpacaBroker, "place", place)
    monkeypatch.setattr(alpaca.AlpacaBroker, "cancel", lambda self, t: cancels.append(t))
    run = brokers.orders_route()
    assert [a.status_code for a in answers] == [202]
    refreshed(order)
    assert (order.status, order.broker_order_id) == ("submitted", AID)
    assert run.routed == 1 and [t.broker_order_id for t in cancels] == [AID]
    assert order.cancel_sent_at is not None
    assert types(position)[-3:] == ["order_cancel_requested", "order_routed",
                                    "order_cancel_routed"]


# -- resting orders (docs/strategy.md#resting-orders): limit day orders at the ladder's rungs --

IDS = {"buy_id": "7a0c1d52-97aa-4c1e-9f43-000000000097",
       "sell_id": "7a0c1d52-97aa-4c1e-9f43-000000000103",
       "buy2_id": "7a0c1d52-97aa-4c1e-9f43-000000009409",
       "sell2_id": "7a0c1d52-97aa-4c1e-9f43-000000009991"}


def test_the_cycle_rests_the_ladder_at_alpaca_and_replaces_it_after_a_fill(
        replay, make_position, settings, capsys):
    settings.VOLBAL_CALENDAR = ""  # no calendar: in session whatever the hour of the run
    position = make_position(qty="50", cash="5000", anchor_price="100", broker="alpaca",
                             order_type="limit", auto_submit=True, commission_rate="0",
                             min_notional="0", guard_low="0", guard_high="1", fractional=False)
    replay.expect(load("limit_rungs_cycle", **IDS))

    prices_record(rows=[{"ticker": "ZIM", "price": D("100"), "ts": clock.now()}])
    call_command("trade")
    rungs = {o.rung: o for o in Order.objects.filter(position=position)}
    assert {(s, o.order_type, o.limit_price, o.qty, o.time_in_force, o.broker_order_id)
            for s, o in rungs.items()} == {
        ("BUY", "limit", D("97.00"), D(5), "day", IDS["buy_id"]),
        ("SELL", "limit", D("103.00"), D(4), "day", IDS["sell_id"])}

    prices_record(rows=[{"ticker": "ZIM", "price": D("96.5"), "ts": clock.now()}])
    call_command("trade")  # the buy filled at its limit; the sell's cancel is sent
    buy, sell = refreshed(rungs["BUY"], rungs["SELL"])
    assert (buy.status, buy.avg_fill_price) == ("filled", D("97"))
    assert sell.status == "submitted" and sell.cancel_sent_at is not None
    asked = last(position, "order_cancel_requested")
    assert asked.order_id == sell.id
    assert asked.inputs["reason"] == "the ladder's sell rung is now 4 at 99.91"
    assert Order.objects.filter(position=position).count() == 2  # nothing placed meanwhile

    prices_record(rows=[{"ticker": "ZIM", "price": D("96.6"), "ts": clock.now()}])
    call_command("trade")  # canceled at Alpaca; the new ladder's rungs go
    replay.check()
    refreshed(sell, position)
    assert sell.status == "cancelled" and last(position, "order_cancelled").order_id == sell.id
    assert (position.qty, position.cash, position.anchor_price) == (D(55), D(4515), D(97))
    resting = Order.objects.filter(position=position, status="submitted").order_by("side")
    assert [(o.rung, o.limit_price, o.qty, o.broker_order_id) for o in resting] == [
        ("BUY", D("94.09"), D(5), IDS["buy2_id"]), ("SELL", D("99.91"), D(4), IDS["sell2_id"])]
    placed = Event.objects.filter(position_id=position.pk, type="order_submitted")
    assert [e.inputs["rung"] for e in placed.order_by("id")] == ["BUY", "SELL", "BUY", "SELL"]


def test_a_limit_day_order_alpaca_expired_is_order_expired(replay, position):
    order = submit(position, qty="2.5", limit_price=D("97.13"), rung="BUY")  # fractional
    recorded(replay, "limit_expired", order)
    brokers.orders_route()
    brokers.brokers_poll()
    replay.check()
    refreshed(order)
    assert (order.status, order.order_type, order.limit_price) == ("cancelled", "limit",
                                                                    D("97.13"))
    assert last(position, "order_expired").order_id == order.id
