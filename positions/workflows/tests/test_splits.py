"""Stock splits (docs/strategy.md#splits) with hand-computed numbers, and the price-jump guard."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from conftest import assert_error
from events.models import Event
from orders.models import Order
from positions.models import Dividend, Position, Price, Split
from positions.workflows.corporate_actions import splits_apply_due
from volbal import clock

_keys = itertools.count()


def evaluate(api, pid, body):
    res = api.post(f"/v1/positions/{pid}/evaluate", body, format="json",
                   HTTP_IDEMPOTENCY_KEY=f"split-eval-{next(_keys)}")
    assert res.status_code == 200, res.content
    return res.json()


def yesterday_price(ticker, price):
    """A stored price of the day before today (the last price before a split effective today)."""
    ts = clock.start_of_trading_day(clock.trading_day()) - dt.timedelta(hours=2)
    return Price.objects.create(ticker=ticker, price=D(price), ts=ts)


def split(api, pid, ratio, day=None):
    return api.post(f"/v1/positions/{pid}/splits",
                    {"ratio": ratio, "effective_date": (day or clock.trading_day()).isoformat()},
                    format="json")


def value(pos, price):
    return pos.qty * D(price) + pos.cash + pos.dividend_receivable


def ledger_ok() -> bool:
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    return "ledger ok" in out.getvalue()


def held_alpaca_buy(user, make_position, qty, key):
    """A whole-share Alpaca position (10 shares, anchor 100) and a buy of ``qty`` Alpaca holds
    (routed, with its order id there)."""
    from orders.services import order_submit_for

    pos = make_position(qty="10", cash="5000", anchor_price="100", fractional=False,
                        broker="alpaca")
    buy, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D(qty),
                              idempotency_key=key)
    Order.objects.filter(pk=buy.pk).update(routed_at=clock.now(), broker_order_id=f"alp-{key}")
    return pos, buy


@pytest.mark.django_db
def test_forward_split_fractional_value_unchanged_anchor_rebased_no_trigger(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50")
    yesterday_price("ZIM", "50")
    res = split(api, pos.id, 2)
    assert res.status_code == 201, res.content
    body = res.json()
    assert body["status"] == "applied" and body["qty_before"] == 100 and body["qty_after"] == 200
    assert body["anchor_before"] == 50 and body["anchor_after"] == 25
    assert body["cash_in_lieu"] == 0
    pos.refresh_from_db()
    assert (pos.qty, pos.cash, pos.anchor_price) == (D(200), D(5000), D(25))
    assert value(pos, "25") == D(10000) == 100 * D(50) + 5000
    ev = Event.objects.get(position_id=pos.pk, type="split_applied")
    assert ev.outputs["before"]["qty"] == 100 and ev.outputs["after"]["qty"] == 200
    assert ev.outputs["before"]["anchor_price"] == 50 and ev.outputs["after"]["anchor_price"] == 25
    # the post-split price: the split explains the halving, and nothing fires
    Price.objects.create(ticker="ZIM", price=D("25"), ts=clock.now())
    out = evaluate(api, pos.id, {"submit": True})
    assert out["proposals"] == [] and out["blocked"] == [] and out["order_id"] is None
    assert out["reason"] == "no_trigger", out
    assert Order.objects.count() == 0
    listed = api.get(f"/v1/positions/{pos.id}/splits").json()
    assert [s["id"] for s in listed["splits"]] == [body["id"]]


@pytest.mark.django_db
def test_reverse_split_whole_shares_pays_the_fraction_in_cash(api, make_position):
    # 105 shares, 1-for-10: 10.5 -> 10 shares, 0.5 share paid at 4 / 0.1 = 40: 20 cash
    pos = make_position(qty="105", cash="1000", anchor_price="4", fractional=False)
    yesterday_price("ZIM", "4")
    body = split(api, pos.id, 0.1).json()
    assert body["qty_after"] == 10 and body["cash_in_lieu"] == 20 and body["anchor_after"] == 40
    pos.refresh_from_db()
    assert (pos.qty, pos.cash, pos.anchor_price) == (D(10), D(1020), D(40))
    assert value(pos, "40") == D(1420) == 105 * D(4) + 1000
    out = evaluate(api, pos.id, {"price": 40, "submit": True})
    assert out["proposals"] == [] and out["blocked"] == [] and out["reason"] == "no_trigger"


@pytest.mark.django_db
def test_forward_split_whole_shares_and_reverse_fractional(api, make_position):
    # 7 shares, 3-for-2: 10.5 -> 10, the half share at 30 / 1.5 = 20: 10 cash; anchor 30 -> 20
    whole = make_position(qty="7", cash="100", anchor_price="30", fractional=False)
    yesterday_price("ZIM", "30")
    assert split(api, whole.id, 1.5).status_code == 201
    whole.refresh_from_db()
    assert (whole.qty, whole.cash, whole.anchor_price) == (D(10), D(110), D(20))
    assert value(whole, "20") == 7 * D(30) + 100
    # fractional, 1-for-10: 3 -> 0.3 shares, nothing to pay; anchor 30 -> 300
    frac = make_position(ticker="ZAP", qty="3", cash="100", anchor_price="30")
    yesterday_price("ZAP", "30")
    assert split(api, frac.id, 0.1).status_code == 201
    frac.refresh_from_db()
    assert (frac.qty, frac.cash, frac.anchor_price) == (D("0.3"), D(100), D(300))
    out = evaluate(api, frac.id, {"price": 300, "submit": True})
    assert out["reason"] == "no_trigger" and out["order_id"] is None


@pytest.mark.django_db
def test_open_orders_resized_and_later_dividends_keep_their_amount(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50")
    res = api.post(f"/v1/positions/{pos.id}/orders", {"side": "SELL", "qty": 10}, format="json",
                   HTTP_IDEMPOTENCY_KEY="split-order")
    assert res.status_code == 201, res.content
    later = clock.trading_day() + dt.timedelta(days=10)
    assert api.post(f"/v1/positions/{pos.id}/dividends",
                    {"ex_date": later.isoformat(), "pay_date": later.isoformat(), "dps": 0.5},
                    format="json").status_code == 201
    yesterday_price("ZIM", "50")
    assert split(api, pos.id, 2).status_code == 201
    order = Order.objects.get()
    assert order.qty == D(20) and order.status == "submitted"
    assert Dividend.objects.get().dps == D("0.5")  # as announced
    ev = Event.objects.get(position_id=pos.pk, type="split_applied")
    assert ev.outputs["orders"] == [{"order_id": order.id, "remaining_before": 10,
                                     "remaining_after": 20}]


@pytest.mark.django_db
def test_an_order_a_split_leaves_nothing_to_trade_ends_with_its_cancellation_event(
        api, make_position):
    # an attacker's find: 1-for-3 on whole shares, a buy of 1 -> 1/3 -> 0 was cancelled with no
    # order_cancelled event, and split_applied said "2 open order(s) re-sized"
    pos = make_position(qty="10", cash="1000", anchor_price="100", fractional=False)
    ids = {}
    for side, qty in (("SELL", 10), ("BUY", 1)):
        res = api.post(f"/v1/positions/{pos.id}/orders", {"side": side, "qty": qty},
                       format="json", HTTP_IDEMPOTENCY_KEY=f"split-end-{side}")
        assert res.status_code == 201, res.content
        ids[side] = res.json()["order_id"]
    yesterday_price("ZIM", "100")
    assert split(api, pos.id, "1:3").status_code == 201
    sell, buy = Order.objects.get(pk=ids["SELL"]), Order.objects.get(pk=ids["BUY"])
    assert (sell.qty, sell.status) == (D(3), "submitted")
    assert buy.status == "cancelled"
    log = list(Event.objects.filter(position_id=pos.pk).order_by("id"))
    applied = next(e for e in log if e.type == "split_applied")
    assert "1 open order(s) re-sized, 1 open order(s) cancelled" in applied.message
    ended = [e for e in log if e.type == "order_cancelled"]
    assert [e.order_id for e in ended] == [buy.id] and ended[0].id > applied.id
    assert "nothing to trade" in ended[0].message and "1:3" in ended[0].message
    assert api.get(f"/v1/orders/{buy.id}").json()["status"] == "cancelled"
    assert ledger_ok()


@pytest.mark.django_db
def test_a_split_asks_the_broker_to_cancel_an_order_it_holds_and_leaves_it_to_the_broker(
        user, make_position, monkeypatch):
    # a reviewer's find: a split ended (or re-sized) an order Alpaca holds on our side only;
    # nothing was sent to Alpaca, the order stayed live there and a fill would never be booked
    from orders.brokers import alpaca
    from orders.brokers import service as brokers
    from positions.workflows.corporate_actions import split_announce

    sent = []
    monkeypatch.setattr(alpaca.AlpacaBroker, "cancel", lambda self, t: sent.append(t.order_id))
    pos, buy = held_alpaca_buy(user, make_position, 1, "alp-split")
    yesterday_price("ZIM", "100")
    split_announce(owner=user, position_id=pos.id, ratio="1:3",
                   effective_date=clock.trading_day())  # 1 share -> 1/3 -> 0
    buy.refresh_from_db()
    assert buy.status == "submitted" and buy.qty == D(1)  # untouched: the broker holds it
    assert buy.cancel_requested_at is not None
    log = [e.type for e in Event.objects.filter(order_id=buy.id).order_by("id")]
    assert log == ["order_submitted", "order_cancel_requested"]
    applied = Event.objects.get(position_id=pos.pk, type="split_applied")
    assert applied.outputs["orders"] == [] and "re-sized" not in applied.message
    brokers.cancels_route()  # the next cycle sends the cancels requested
    assert sent == [buy.id]
    assert ledger_ok()


@pytest.mark.django_db
def test_the_cycle_books_what_a_broker_filled_before_a_split_before_applying_it(
        user, make_position, monkeypatch):
    # a reviewer's find: the cycle applied the day's split, then polled Alpaca, whose fill of
    # the evening before was booked raw into the split books: 30 shares at anchor 100, not 40
    # at 50 (and the jump from 100 to ~50 looked like a 50 % drop to the next evaluation)
    from fractions import Fraction

    from django.db import transaction

    from orders.brokers import alpaca
    from orders.brokers.port import BrokerFill, Report
    from positions.splits import split_record
    from positions.workflows.cycle import trade_cycle

    pos, buy = held_alpaca_buy(user, make_position, 10, "alp-pre-split")
    executed = clock.start_of_trading_day(clock.trading_day()) - dt.timedelta(hours=3)

    def poll(self, tickets):  # Alpaca's answer: filled last evening, at 100 an old share
        return [Report(t.order_id, "FILLED",
                       (BrokerFill("alp-f1", D(10), D(100), None, executed),))
                for t in tickets]

    monkeypatch.setattr(alpaca.AlpacaBroker, "poll", poll)
    yesterday_price("ZIM", "100")
    with transaction.atomic():  # recorded (the feed's corporate actions), due today
        split_record(Position.objects.select_for_update().get(pk=pos.pk), Fraction(2),
                     clock.trading_day())
    trade_cycle()
    pos.refresh_from_db()
    buy.refresh_from_db()
    assert buy.status == "filled" and Split.objects.get().status == "applied"
    assert (pos.qty, pos.anchor_price) == (D(40), D(50))  # 20 old shares, two new each
    types = list(Event.objects.filter(position_id=pos.pk).order_by("id")
                 .values_list("type", flat=True))
    assert types.index("order_filled") < types.index("split_applied")
    assert ledger_ok()


@pytest.mark.django_db
def test_future_split_waits_for_its_date_and_applies_once(api, make_position):
    pos = make_position(qty="100", cash="0", anchor_price="50")
    tomorrow = clock.trading_day() + dt.timedelta(days=1)
    body = split(api, pos.id, 2, tomorrow).json()
    assert body["status"] == "announced"
    assert splits_apply_due().applied == []
    assert splits_apply_due(today=tomorrow).applied == [body["id"]]
    assert splits_apply_due(today=tomorrow).applied == []
    pos.refresh_from_db()
    assert pos.qty == D(200) and pos.anchor_price == D(25)
    assert Event.objects.filter(position_id=pos.pk, type="split_applied").count() == 1


@pytest.mark.django_db
def test_split_refusals(api, other_api, make_position):
    pos = make_position(qty="100", cash="0")
    assert_error(split(other_api, pos.id, 2), 404, "position_not_found")
    assert_error(other_api.get(f"/v1/positions/{pos.id}/splits"), 404, "position_not_found")
    body = assert_error(split(api, pos.id, 1), 400, "validation_error")
    assert "ratio" in body["message"]
    assert_error(split(api, pos.id, 0), 400, "validation_error")
    assert_error(split(api, pos.id, "2"), 400, "validation_error")
    assert split(api, pos.id, 2).status_code == 201
    assert_error(split(api, pos.id, 3), 409, "split_exists")
    pos.refresh_from_db()
    assert pos.qty == D(200) and Split.objects.count() == 1


@pytest.mark.django_db
def test_apply_split_command_every_position_in_the_ticker_once(make_position, other_user):
    mine = make_position(qty="10", cash="0", anchor_price="8")
    theirs = make_position(owner=other_user, qty="3", cash="0", anchor_price="8",
                           fractional=False)
    elsewhere = make_position(ticker="OTHR", qty="10", cash="0")
    yesterday_price("ZIM", "8")
    today = clock.trading_day().isoformat()
    out = StringIO()
    call_command("apply_split", "zim", "0.5", "--date", today, stdout=out)
    assert "2 recorded" in out.getvalue() and "2 applied" in out.getvalue()
    call_command("apply_split", "ZIM", "0.5", "--date", today, stdout=out)
    for pos in (mine, theirs, elsewhere):
        pos.refresh_from_db()
    # 10 -> 5; 3 whole shares -> 1.5 -> 1, half a share at 8 / 0.5 = 16: 8 cash
    assert (mine.qty, mine.anchor_price) == (D(5), D(16))
    assert (theirs.qty, theirs.cash) == (D(1), D(8))
    assert elsewhere.qty == D(10)
    assert Event.objects.filter(type="split_applied").count() == 2
    applied = Event.objects.get(type="split_applied", position_id=theirs.pk)
    assert applied.actor_name == "command:apply_split"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_concurrent_runs_apply_each_split_once(make_position):
    positions = [make_position(qty="100", cash="0", anchor_price="10") for _ in range(5)]
    today = clock.trading_day()
    for pos in positions:
        Split.objects.create(position=pos, ratio=D(2), effective_date=today)
    barrier = threading.Barrier(4)
    errors, applied = [], []

    def run():
        try:
            barrier.wait()
            applied.extend(splits_apply_due().applied)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(applied) == 5
    for pos in Position.objects.filter(pk__in=[p.pk for p in positions]):
        assert pos.qty == D(200) and pos.anchor_price == D(5)
        assert Event.objects.filter(position_id=pos.pk, type="split_applied").count() == 1


# --- The price-jump guard --------------------------------------------------------------------


@pytest.mark.django_db
def test_jump_blocks_submission_until_confirmed(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50")
    yesterday_price("ZIM", "50")
    now = clock.now()
    Price.objects.create(ticker="ZIM", price=D("30"), ts=now)  # -40 %: more than 25 %
    out = evaluate(api, pos.id, {"submit": True})
    assert out["proposals"] == [] and out["order_id"] is None
    assert [b["blocked_by"] for b in out["blocked"]] == ["price_jump_unconfirmed"]
    assert out["blocked"][0]["side"] == "BUY"  # what it would do
    assert out["reason"] == "price_jump_unconfirmed"
    assert Order.objects.count() == 0
    alert = Event.objects.get(position_id=pos.pk, type="price_jump_unconfirmed")
    assert alert.inputs["previous_price"] == 50 and alert.outputs["move"] == D("-0.4")
    res = api.post("/v1/prices/confirm", {"ticker": "zim", "ts": now.isoformat()},
                   format="json")
    assert res.status_code == 200, res.content
    assert res.json()["confirmed_by"]
    out = evaluate(api, pos.id, {"submit": True})
    assert out["blocked"] == [] and out["order_id"] is not None
    assert Order.objects.get().side == "BUY"


@pytest.mark.django_db
def test_cron_submits_a_held_back_price_once_it_is_confirmed(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50")
    yesterday_price("ZIM", "50")
    now = clock.now()
    Price.objects.create(ticker="ZIM", price=D("30"), ts=now)
    call_command("evaluate_positions", "--submit", stdout=StringIO())
    assert Order.objects.count() == 0
    call_command("evaluate_positions", "--submit", stdout=StringIO())  # still held back
    assert Order.objects.count() == 0
    # one alert per episode (the reference, 50), however often the held price is evaluated
    assert Event.objects.filter(position_id=pos.pk, type="price_jump_unconfirmed").count() == 1
    assert api.post("/v1/prices/confirm", {"ticker": "ZIM", "ts": now.isoformat()},
                    format="json").status_code == 200
    call_command("evaluate_positions", "--submit", stdout=StringIO())
    assert Order.objects.get().side == "BUY"


@pytest.mark.django_db
def test_recording_the_split_releases_the_guard(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50")
    yesterday_price("ZIM", "50")
    Price.objects.create(ticker="ZIM", price=D("25"), ts=clock.now())
    out = evaluate(api, pos.id, {})
    assert out["blocked"][0]["blocked_by"] == "price_jump_unconfirmed"
    # a price given in the request is measured from the same reference (the anchor 50)
    assert evaluate(api, pos.id, {"price": 24})["blocked"][0]["blocked_by"] == \
        "price_jump_unconfirmed"
    assert split(api, pos.id, 2).status_code == 201
    out = evaluate(api, pos.id, {"submit": True})
    assert out["blocked"] == [] and out["reason"] == "no_trigger"


@pytest.mark.django_db
def test_jump_threshold_is_the_positions(api, make_position):
    pos = make_position(qty="100", cash="5000", anchor_price="50", max_price_jump="0.5")
    yesterday_price("ZIM", "50")
    out = evaluate(api, pos.id, {"price": 30, "submit": True})  # -40 %, within 50 %
    assert out["blocked"] == [] and out["order_id"] is not None
    res = api.patch(f"/v1/positions/{pos.id}", {"max_price_jump": 11}, format="json")
    assert_error(res, 400, "validation_error")
    res = api.patch(f"/v1/positions/{pos.id}", {"max_price_jump": 0}, format="json")
    assert_error(res, 400, "validation_error")


@pytest.mark.django_db
def test_confirm_unknown_price_is_404(api):
    res = api.post("/v1/prices/confirm", {"ticker": "ZIM", "ts": clock.now().isoformat()},
                   format="json")
    assert_error(res, 404, "price_not_found")


# --- verify_ledger replays splits ------------------------------------------------------------


def ledger_differences() -> list[str]:
    from positions.workflows.ledger import ledger_verify

    return [str(d) for d in ledger_verify().differences]


@pytest.mark.django_db
def test_verify_ledger_replays_splits_and_names_a_tampered_one(user, make_position):
    from orders.services import order_fill, order_submit_for
    from positions.dividends import dividend_announce
    from positions.workflows.corporate_actions import dividends_process, split_announce

    pos = make_position(qty="7", cash="1000", anchor_price="30", fractional=False)
    yesterday_price("ZIM", "30")
    buy, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("2"),
                              idempotency_key="b")
    order_fill(owner=user, order_id=buy.id, price=D("30"), filled_qty=D("2"))
    today = clock.trading_day()
    # 9 shares, 3-for-2: 13.5 -> 13, half a share at 30 / 1.5 = 20: 10 cash
    s = split_announce(owner=user, position_id=pos.id, ratio=D("1.5"), effective_date=today)
    assert (s.qty_after, s.cash_in_lieu) == (D(13), D(10))
    dividend_announce(owner=user, position_id=pos.id, ex_date=today + dt.timedelta(days=1),
                      pay_date=today + dt.timedelta(days=1), dps=D("1"),
                      withholding_rate=D(0))
    dividends_process(today=today + dt.timedelta(days=1))
    pos.refresh_from_db()
    # 1000 - 2 x 30 - 0.006 commission + 10 in lieu + 13 x 1 dividend
    assert pos.qty == D(13) and pos.cash == D("962.994")
    assert ledger_differences() == []
    Split.objects.filter(pk=s.pk).update(cash_in_lieu=D(12))
    Position.objects.filter(pk=pos.pk).update(cash=pos.cash + 2)
    assert ledger_differences() == [f"{pos.id} split {s.id} cash_in_lieu: stored 12.000000, "
                                    "expected 10.000000",
                                    f"{pos.id} cash: stored 964.994000, expected 962.994000"]


@pytest.mark.django_db
def test_a_split_the_books_cannot_hold_changes_nothing(api, make_position):
    pos = make_position(qty="1000000000000000", cash="0")  # 10^15 x 1000 > 10^16 - 1
    body = assert_error(split(api, pos.id, 1000), 409, "split_out_of_range")
    assert "position qty" in body["message"]
    pos.refresh_from_db()
    assert pos.qty == D(10) ** 15 and Split.objects.count() == 0
    assert not Event.objects.filter(position_id=pos.pk, type__startswith="split").exists()
