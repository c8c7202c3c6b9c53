"""manage.py evaluate_positions: one line per position, cron-safe, concurrent-safe."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from events.models import Event
from orders.models import Order
from positions.models import Price

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, 21, tzinfo=UTC)


def run(*args) -> list[str]:
    out = StringIO()
    call_command("evaluate_positions", *args, stdout=out)
    return out.getvalue().splitlines()


def price(ticker: str, value, ts=T0) -> None:
    Price.objects.create(ticker=ticker, price=Decimal(str(value)), ts=ts)


def evaluations(position) -> int:
    return Event.objects.filter(position_id=position.id, type="evaluation").count()


@pytest.mark.django_db
def test_one_line_per_position_and_a_summary(make_position):
    zim = make_position(ticker="ZIM", qty=0, cash=10000)
    held = make_position(ticker="ZIM", qty=50, cash=5000, anchor_price=100)
    aapl = make_position(ticker="AAPL", qty=10, cash=1000)
    price("ZIM", 100)
    lines = run()
    assert len(lines) == 4
    assert lines[0] == (f"{zim.id} ZIM @ 100: guardrail_rebalance BUY 24.99937501 — Anchor set to "
                        "price 100.00; weight 0.0 % is below the 25 % guardrail: buy 24.99937501 "
                        "shares to rebalance")
    assert lines[1] == (f"{held.id} ZIM @ 100: no_trigger — Price 100.00 equals anchor 100.00 "
                        "(trigger 3 %): no trigger; weight 50.0 % is inside the 25 %–75 % band")
    assert lines[2] == (f"{aapl.id} AAPL no price: no_price — No price to evaluate AAPL at: none "
                        "was given and none is stored (POST /v1/prices).")
    assert lines[3] == "3 evaluated, 0 submitted, 0 skipped."
    assert not Order.objects.exists()  # without --submit nothing is placed
    assert [evaluations(p) for p in (zim, held, aapl)] == [1, 1, 1]
    assert Event.objects.get(position_id=zim.id, type="evaluation").inputs["source"] == "cron"


@pytest.mark.django_db
def test_the_ticker_filter(make_position):
    zim = make_position(ticker="ZIM")
    aapl = make_position(ticker="AAPL")
    price("ZIM", 100)
    price("AAPL", 100)
    lines = run("--ticker", "aapl")
    assert len(lines) == 2 and lines[0].startswith(f"{aapl.id} AAPL @ 100: ")
    assert evaluations(zim) == 0 and evaluations(aapl) == 1
    assert run("--ticker", "NONE") == ["0 evaluated, 0 submitted, 0 skipped."]


@pytest.mark.django_db
def test_submit_places_the_proposals(make_position):
    buyer = make_position(ticker="ZIM", qty=0, cash=10000)
    quiet = make_position(ticker="ZIM", qty=50, cash=5000, anchor_price=100)
    small = make_position(ticker="ZIM", qty=0, cash=300)
    price("ZIM", 100)
    lines = run("--submit")
    order = Order.objects.get()
    assert order.position_id == buyer.id
    assert (order.side, order.qty, order.source) == ("BUY", Decimal("24.99937501"), "evaluation")
    assert lines[0].startswith(f"{buyer.id} ZIM @ 100: guardrail_rebalance BUY 24.99937501, "
                               f"submitted {order.id} — ")
    assert lines[1].startswith(f"{quiet.id} ZIM @ 100: no_trigger — ")
    assert lines[2].startswith(f"{small.id} ZIM @ 100: below_min_notional BUY 0.74998125 — ")
    assert lines[3] == "3 evaluated, 1 submitted, 0 skipped."
    submitted = Event.objects.get(position_id=buyer.id, type="order_submitted")
    assert submitted.order_id == order.id


@pytest.mark.django_db
def test_a_second_run_at_the_same_price_skips_and_a_new_price_evaluates_again(make_position):
    pos = make_position(ticker="ZIM", qty=0, cash=10000)
    price("ZIM", 100)
    run("--submit")
    lines = run("--submit")
    assert lines == [f"{pos.id} ZIM: skipped, already evaluated at the latest price",
                     "0 evaluated, 0 submitted, 1 skipped."]
    assert Order.objects.count() == 1 and evaluations(pos) == 1

    price("ZIM", 90, T0 + dt.timedelta(days=1))
    lines = run("--submit")
    # the first order is still open
    assert lines[0].startswith(f"{pos.id} ZIM @ 90: open_order BUY ")
    assert lines[1] == "1 evaluated, 0 submitted, 0 skipped."
    assert Order.objects.count() == 1 and evaluations(pos) == 2


@pytest.mark.django_db
def test_a_look_without_submit_does_not_stop_the_submitting_run(api, make_position):
    """A dry run, or an evaluation through the API at the stored price, only looks: the
    submitting cron run at the same price must still place the order."""
    dry = make_position(ticker="ZIM", qty=0, cash=10000)
    looked = make_position(ticker="ZIM", qty=0, cash=10000)
    price("ZIM", 100)
    assert run()[-1] == "2 evaluated, 0 submitted, 0 skipped."
    assert run()[-1] == "2 evaluated, 0 submitted, 0 skipped."  # a look marks nothing
    response = api.post(f"/v1/positions/{looked.id}/evaluate", {}, format="json")
    assert response.status_code == 200 and response.json()["price_source"] == "stored"

    lines = run("--submit")
    assert lines[-1] == "2 evaluated, 2 submitted, 0 skipped."
    assert {o.position_id for o in Order.objects.all()} == {dry.id, looked.id}
    assert run("--submit")[-1] == "0 evaluated, 0 submitted, 2 skipped."


@pytest.mark.django_db
def test_a_position_refused_on_the_way_does_not_stop_the_run(make_position, monkeypatch):
    from positions.workflows import evaluation
    from volbal.errors import DomainError

    first = make_position(ticker="ZIM")
    second = make_position(ticker="ZIM")
    price("ZIM", 100)
    real = evaluation.position_evaluate

    def flaky(**kw):
        if kw["position_id"] == first.id:
            raise DomainError("daily_order_cap_exceeded", "The cap is reached.", status=409)
        return real(**kw)

    monkeypatch.setattr(evaluation, "position_evaluate", flaky)
    lines = run("--submit")
    assert lines[0] == f"{first.id} ZIM: refused: The cap is reached."
    assert lines[1].startswith(f"{second.id} ZIM @ 100: guardrail_rebalance BUY 24.99937501, "
                               "submitted ")


@pytest.mark.django_db
def test_a_position_that_fails_does_not_stop_the_others_and_the_run_fails(make_position,
                                                                          monkeypatch):
    from django.core.management import CommandError

    from positions.workflows import evaluation

    first = make_position(ticker="ZIM")
    second = make_position(ticker="ZIM")
    price("ZIM", 100)
    real = evaluation.position_evaluate

    def broken(**kw):
        if kw["position_id"] == first.id:
            raise ArithmeticError("boom")
        return real(**kw)

    monkeypatch.setattr(evaluation, "position_evaluate", broken)
    out = StringIO()
    with pytest.raises(CommandError, match="1 position"):
        call_command("evaluate_positions", "--submit", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{first.id} ZIM: failed: ArithmeticError: boom"
    assert lines[1].startswith(f"{second.id} ZIM @ 100: guardrail_rebalance BUY ")
    assert lines[2] == "1 evaluated, 1 submitted, 0 skipped, 1 failed."
    assert Order.objects.get().position_id == second.id


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_started_at_once_place_one_order_per_position(make_position):
    positions = [make_position(ticker="ZIM", qty=0, cash=10000 + i) for i in range(10)]
    price("ZIM", 100)
    barrier = threading.Barrier(2)
    outputs: list[list[str]] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait(timeout=10)
            outputs.append(run("--submit"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(outputs) == 2

    for pos in positions:
        assert Order.objects.filter(position_id=pos.id).count() == 1, pos.id
        assert evaluations(pos) == 1
        assert Event.objects.filter(position_id=pos.id, type="order_submitted").count() == 1
        assert Event.objects.filter(position_id=pos.id, type="anchor_set").count() == 1
    summaries = sorted(out[-1] for out in outputs)
    submitted = sum(int(s.split(", ")[1].split()[0]) for s in summaries)
    skipped = sum(int(s.split(", ")[2].split()[0]) for s in summaries)
    assert (submitted, skipped) == (10, 10)
