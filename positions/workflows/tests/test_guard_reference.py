"""The price-jump guard measures from the position's reference (docs/strategy.md#price-jump-guard
guard"): the last price it accepted, or its anchor. A second tick at the jumped level does not
release it, the first price of a ticker is checked, a confirmation binds the value, and one
alert is recorded per episode whoever evaluates. Hand-computed numbers."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from events.models import Event
from orders.models import Order
from positions.models import Position, Price
from positions.services import prices_record
from positions.workflows.cycle import trade_cycle
from positions.workflows.evaluation import position_evaluate, positions_evaluate_claimed
from volbal import clock

_keys = itertools.count()
JUMP = "price_jump_unconfirmed"


def evaluate(api, pid, body=None, submit=True):
    res = api.post(f"/v1/positions/{pid}/evaluate", {**(body or {}), "submit": submit},
                   format="json", HTTP_IDEMPOTENCY_KEY=f"guard-ref-{next(_keys)}")
    assert res.status_code == 200, res.content
    return res.json()


def post_price(api, ticker, price, ts):
    res = api.post("/v1/prices", {"ticker": ticker, "price": price, "ts": ts.isoformat()},
                   format="json")
    assert res.status_code in (200, 201), res.content


def confirm(api, ticker, ts):
    res = api.post("/v1/prices/confirm", {"ticker": ticker, "ts": ts.isoformat()}, format="json")
    assert res.status_code == 200, res.content
    return res.json()


def alerts(pos) -> int:
    return Event.objects.filter(position_id=pos.pk, type=JUMP).count()


NOW = clock.now().replace(microsecond=0)


def minutes_ago(n: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=n)


@pytest.mark.django_db
def test_a_second_tick_at_the_jumped_level_does_not_release_the_guard(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    post_price(api, "ZIM", 100, minutes_ago(30))
    assert evaluate(api, pos.id)["reason"] == "no_trigger"  # 100 accepted
    post_price(api, "ZIM", 50, minutes_ago(20))  # -50 %
    out = evaluate(api, pos.id)
    assert out["blocked"][0]["blocked_by"] == JUMP and out["order_id"] is None
    post_price(api, "ZIM", 50, minutes_ago(10))  # the same level again: still -50 % from 100
    out = evaluate(api, pos.id)
    assert out["proposals"] == [] and out["blocked"][0]["blocked_by"] == JUMP, out
    assert out["blocked"][0]["side"] == "BUY"
    assert Order.objects.count() == 0
    assert alerts(pos) == 1  # one episode: the reference 100
    alert = Event.objects.get(position_id=pos.pk, type=JUMP)
    assert alert.inputs["previous_price"] == 100 and alert.inputs["reference"] == "accepted"
    pos.refresh_from_db()
    assert pos.guard_ref_price == D(100)


@pytest.mark.django_db
def test_the_first_price_of_a_ticker_is_measured_from_the_anchor(api, make_position):
    pos = make_position(qty="100", cash="1000", anchor_price="150")
    post_price(api, "ZIM", 1500, minutes_ago(5))  # a typo: +900 % from the anchor
    out = evaluate(api, pos.id)
    assert out["proposals"] == [] and out["blocked"][0]["side"] == "SELL", out
    assert out["blocked"][0]["blocked_by"] == JUMP
    assert Order.objects.count() == 0
    alert = Event.objects.get(position_id=pos.pk, type=JUMP)
    assert alert.inputs["reference"] == "anchor" and alert.inputs["previous_price"] == 150
    assert alert.outputs["move"] == 9
    pos.refresh_from_db()
    assert pos.guard_ref_price is None  # a jumped price is never accepted


@pytest.mark.django_db
def test_the_correcting_price_is_accepted_without_a_second_alert(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    post_price(api, "ZIM", 100, minutes_ago(30))
    evaluate(api, pos.id)
    post_price(api, "ZIM", 1000, minutes_ago(20))  # a typo
    assert evaluate(api, pos.id)["blocked"][0]["blocked_by"] == JUMP
    fixed = minutes_ago(10)
    post_price(api, "ZIM", 101, fixed)  # the correction: +1 % from 100
    out = evaluate(api, pos.id)
    assert out["blocked"] == [] and out["reason"] == "no_trigger", out
    assert alerts(pos) == 1
    pos.refresh_from_db()
    assert (pos.guard_ref_price, pos.guard_ref_ts) == (D(101), fixed)


@pytest.mark.django_db
def test_gradual_moves_are_accepted_step_by_step(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100", trigger_pct="0.5")
    for i, p in enumerate((100, 80, 64, 52)):  # each within 25 % of the one before
        post_price(api, "ZIM", p, minutes_ago(40 - i))
        assert evaluate(api, pos.id, submit=False)["blocked"] == []
    assert alerts(pos) == 0


@pytest.mark.django_db
def test_two_ticks_in_one_import_do_not_pass_the_cycle(make_position, monkeypatch):
    session = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)  # Friday 11:00 in New York
    monkeypatch.setattr(clock, "now", lambda: session)
    pos = make_position(qty="100", cash="10000", anchor_price="100", broker="paper",
                        auto_submit=True)
    prices_record(rows=[{"ticker": "ZIM", "price": D(100), "ts": session - dt.timedelta(days=1)}])
    trade_cycle()  # 100 accepted
    prices_record(rows=[{"ticker": "ZIM", "price": D(50), "ts": session - dt.timedelta(minutes=2)},
                        {"ticker": "ZIM", "price": D(50), "ts": session - dt.timedelta(minutes=1)}])
    trade_cycle()
    trade_cycle()
    assert Order.objects.count() == 0
    assert alerts(pos) == 1
    # the same through the one-position path (the cycle's fallback)
    out = position_evaluate(owner=None, position_id=pos.id, submit=True, mark_latest=True)
    assert out.decision.blocked_by == JUMP and out.order is None


@pytest.mark.django_db
def test_a_confirmation_binds_the_value(api, make_position):
    pos = make_position(ticker="CNF", qty="100", cash="10000", anchor_price="100")
    at = minutes_ago(10)
    post_price(api, "CNF", 101, at)
    first = confirm(api, "CNF", at)
    post_price(api, "CNF", 10, at)  # re-posted at the same time: -90 %
    out = evaluate(api, pos.id)
    assert out["proposals"] == [] and out["blocked"][0]["blocked_by"] == JUMP, out
    assert Order.objects.count() == 0
    alert = Event.objects.get(position_id=pos.pk, type=JUMP)
    assert alert.inputs["previous_price"] == 101
    assert first["confirmed_price"] == 101
    pos.refresh_from_db()
    assert (pos.guard_ref_price, pos.guard_ref_ts) == (D(101), at)
    body = confirm(api, "CNF", at)  # the new value needs its own confirmation
    assert body["confirmed_price"] == 10
    out = evaluate(api, pos.id)
    assert out["blocked"] == [] and out["order_id"] is not None
    assert Order.objects.get().side == "BUY"


@pytest.mark.django_db
def test_prices_near_a_confirmed_price_pass(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    held = minutes_ago(20)
    post_price(api, "ZIM", 40, held)
    assert evaluate(api, pos.id)["blocked"][0]["blocked_by"] == JUMP
    confirm(api, "ZIM", held)
    post_price(api, "ZIM", 41, minutes_ago(10))  # newer than the confirmed one, near it
    out = evaluate(api, pos.id)
    assert out["blocked"] == [] and out["order_id"] is not None


@pytest.mark.django_db
def test_the_api_and_the_cycle_record_one_alert_for_one_held_price(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100", auto_submit=True)
    Price.objects.create(ticker="ZIM", price=D(100), ts=minutes_ago(60))
    Price.objects.create(ticker="ZIM", price=D(50), ts=minutes_ago(5))  # -50 %, held
    evaluate(api, pos.id)
    positions_evaluate_claimed([pos.id], submit_ids={pos.id}, source="cycle")
    position_evaluate(owner=None, position_id=pos.id, submit=True, mark_latest=True)
    assert Event.objects.filter(position_id=pos.pk, type="evaluation").count() == 3
    assert alerts(pos) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_a_held_price_record_one_alert(make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100", auto_submit=True)
    Price.objects.create(ticker="ZIM", price=D(100), ts=minutes_ago(60))
    Price.objects.create(ticker="ZIM", price=D(50), ts=minutes_ago(5))  # -50 %, held
    barrier = threading.Barrier(6)
    errors = []

    def run(i):
        try:
            barrier.wait()
            if i % 2:
                positions_evaluate_claimed([pos.id], submit_ids={pos.id}, source="cycle")
            else:
                position_evaluate(owner=None, position_id=pos.id, submit=True)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Event.objects.filter(position_id=pos.pk, type="evaluation").count() == 6
    assert alerts(pos) == 1 and Order.objects.count() == 0
    assert Position.objects.get(pk=pos.pk).guard_ref_price is None
