"""Dividends across splits (docs/strategy.md#dividends-across-splits) and exact split ratios
(docs/strategy.md#splits), through the commands, the API and the admin, with verify_ledger
agreeing on every history the services made."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from conftest import assert_error
from events.models import Event
from orders.models import Order
from orders.services import order_submit_for
from positions.dividends import dividend_announce
from positions.models import Dividend, Position, Price, Split
from volbal import clock

pytestmark = pytest.mark.django_db


def ledger() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=StringIO())
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def opened(make_position, days_ago=0, **kw):
    """A position opened ``days_ago`` trading days ago (so dates before today can be used)."""
    pos = make_position(ticker="ORDA", **kw)
    if days_ago:
        Position.objects.filter(pk=pos.pk).update(
            created_at=clock.now() - dt.timedelta(days=days_ago))
    return pos


def announce(user, pos, ex, pay=None):
    return dividend_announce(owner=user, position_id=pos.id, ex_date=ex, pay_date=pay or ex,
                             dps=D("1"), withholding_rate=D("0"))


def run(*args):
    call_command(*args, stdout=StringIO(), stderr=StringIO())


# --- 1. the entitlement does not depend on which command ran first --------------------------


@pytest.mark.parametrize("split_first", [True, False])
@pytest.mark.parametrize("ratio", ["2", "1:3"])
def test_a_split_and_a_dividend_on_the_same_day_give_the_same_books_in_either_order(
        user, make_position, split_first, ratio):
    # 100 whole shares, anchor 30, dps 1, and NO stored price before the split: the cash in
    # lieu of a fraction is paid at the anchor
    today = clock.trading_day()
    pos = opened(make_position, qty="100", cash="0", anchor_price="30", fractional=False)
    div = announce(user, pos, today, today + dt.timedelta(days=5))
    commands = [("apply_split", "ORDA", ratio, "--date", today.isoformat()),
                ("process_dividends", "--date", today.isoformat())]
    for command in commands if split_first else commands[::-1]:
        run(*command)
    div.refresh_from_db()
    pos.refresh_from_db()
    # strategy.md#dividends-across-splits: the split counts before the day's dividend step, so
    # the books are those of the split first: shares and anchor in the day's units, the
    # dividend on the day's shares, the anchor Pa / k less the dps, the fraction at Pa / k
    shares, lieu, anchor = {"2": (D(200), D(0), D(15) - 1),
                            "1:3": (D(33), D(30), D(90) - 1)}[ratio]  # 1:3: 1/3 share at 90
    assert (div.entitlement_qty, div.net_amount) == (shares, shares)
    assert (pos.qty, pos.cash, pos.dividend_receivable, pos.anchor_price) == (
        shares, lieu, shares, anchor)
    split = Split.objects.get(position=pos)
    assert (split.price_before, split.cash_in_lieu) == (D(30), lieu)  # Pa, in either order
    corrections = Event.objects.filter(position_id=pos.pk, type="dividend_entitlement_corrected")
    anchor_fixes = Event.objects.filter(position_id=pos.pk, type="anchor_adjusted_for_dividend",
                                        inputs__has_key="split_id")
    # run the other way round, the amount and the anchor are corrected by events of their
    # own, never silently
    assert corrections.count() == anchor_fixes.count() == (0 if split_first else 1)
    if not split_first:
        event = corrections.get()
        assert event.inputs["shares_before"] == D(100) and event.inputs["shares"] == shares
        assert event.outputs["difference"] == shares - 100
        fix = anchor_fixes.get()
        assert fix.outputs["new"] == anchor and fix.inputs["dividend_ids"] == [div.id]
    assert ledger()[0] == 0


def test_a_split_whose_corrected_anchor_leaves_nothing_is_refused_whole(api, user,
                                                                       make_position):
    # anchor 3, dividend 1 processed, then a 4:1 split of the day: 3 / 4 - 1 is below zero
    today = clock.trading_day()
    pos = opened(make_position, qty="100", cash="0", anchor_price="3")
    div = announce(user, pos, today, today + dt.timedelta(days=5))
    run("process_dividends", "--date", today.isoformat())
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": "4:1", "effective_date": today.isoformat()}, format="json")
    assert_error(res, 409, "split_out_of_range")
    pos.refresh_from_db()
    div.refresh_from_db()
    assert (pos.qty, pos.anchor_price, pos.dividend_receivable) == (D(100), D(2), D(100))
    assert div.entitlement_qty == D(100) and not Split.objects.exists()
    assert ledger()[0] == 0


def test_a_step_run_late_undoes_a_split_effective_after_its_ex_date(user, make_position):
    # ex-date T-3, a 2:1 split effective T-2 recorded (and applied) before the ex-date step ran
    today = clock.trading_day()
    pos = opened(make_position, days_ago=6, qty="100", cash="0")
    div = announce(user, pos, today - dt.timedelta(days=3), today)
    run("apply_split", "ORDA", "2:1", "--date", (today - dt.timedelta(days=2)).isoformat())
    run("process_dividends", "--date", today.isoformat())
    div.refresh_from_db()
    pos.refresh_from_db()
    assert (div.entitlement_qty, div.net_amount, div.status) == (D(100), D(100), "paid")
    assert (pos.qty, pos.cash) == (D(200), D(100))
    assert ledger()[0] == 0


def test_a_split_recorded_late_corrects_a_paid_dividend_it_counts_for(user, make_position):
    # the dividend of T-2 was paid; then a 1:2 reverse split effective T-3 is recorded: the
    # entitlement was 50 shares in T-2's units, so 50 of the 100 paid is taken back from cash
    today = clock.trading_day()
    pos = opened(make_position, days_ago=6, qty="100", cash="0")
    div = announce(user, pos, today - dt.timedelta(days=2), today - dt.timedelta(days=1))
    run("process_dividends", "--date", today.isoformat())
    pos.refresh_from_db()
    assert pos.cash == D(100)
    run("apply_split", "ORDA", "1:2", "--date", (today - dt.timedelta(days=3)).isoformat())
    div.refresh_from_db()
    pos.refresh_from_db()
    assert (div.entitlement_qty, div.net_amount) == (D(50), D(50))
    assert (pos.qty, pos.cash, pos.dividend_receivable) == (D(50), D(50), D(0))
    event = Event.objects.get(position_id=pos.pk, type="dividend_entitlement_corrected")
    assert event.outputs["to"] == "cash" and event.outputs["difference"] == D(-50)
    assert ledger()[0] == 0


# --- 2. exact ratios -------------------------------------------------------------------------


def test_a_one_for_three_split_of_300_whole_shares_is_exactly_100(api, make_position):
    pos = opened(make_position, qty="300", cash="0", anchor_price="10", fractional=False)
    Price.objects.create(ticker="ORDA", price=D("10"),
                         ts=clock.start_of_trading_day(clock.trading_day())
                         - dt.timedelta(hours=2))
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": "1:3", "effective_date": clock.trading_day().isoformat()},
                   format="json")
    assert res.status_code == 201, res.content
    body = res.json()
    assert (body["qty_after"], body["cash_in_lieu"], body["anchor_after"]) == (100, 0, 30)
    assert (body["ratio_exact"], body["ratio"]) == ("1:3", 0.33333333)
    pos.refresh_from_db()
    assert (pos.qty, pos.cash, pos.anchor_price) == (D(100), D(0), D(30))
    assert ledger()[0] == 0


@pytest.mark.parametrize(("ratio", "exact"), [(2, "2:1"), (0.5, "1:2"), (1.5, "3:2"),
                                              (0.1, "1:10"), ("3:2", "3:2"), ("6:4", "3:2")])
def test_exact_ratios_are_taken_as_numbers_or_new_old(api, make_position, ratio, exact):
    pos = opened(make_position, qty="10", cash="0")
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": ratio, "effective_date": "2099-01-02"}, format="json")
    assert res.status_code == 201, res.content
    assert res.json()["ratio_exact"] == exact
    split = Split.objects.get()
    assert f"{split.new_rate}:{split.old_rate}" == exact


@pytest.mark.parametrize("ratio", [0.33333333, "1:1", "0:3", "3:0", "a:b", "1/3", "0.5", True,
                                   "1:30000", 1001])
def test_a_ratio_that_is_not_exact_new_old_is_a_400_naming_it(api, make_position, ratio):
    pos = opened(make_position, qty="300", cash="0")
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": ratio, "effective_date": "2099-01-02"}, format="json")
    body = assert_error(res, 400, "validation_error")
    assert "ratio" in body["fields"]
    assert Split.objects.count() == 0


@pytest.mark.parametrize("raw", ["1e99999999", "1e-99999999", '"1e99999999"',
                                 '"1' + "0" * 5000 + ':1"', '"1:\\uff13"'])
def test_a_ratio_no_split_could_have_is_refused_at_once(api, make_position, raw):
    """Refused before any arithmetic: a 60-byte ratio with a huge exponent held a worker for
    minutes (the exact value was built first), a 5,001-digit rate was a 500; a full-width
    digit is not a digit of a ratio."""
    pos = opened(make_position, qty="300", cash="0")
    res = api.generic("POST", f"/v1/positions/{pos.id}/splits",
                      '{"ratio": ' + raw + ', "effective_date": "2099-01-02"}',
                      content_type="application/json")
    body = assert_error(res, 400, "validation_error")
    assert "ratio" in body["fields"] and len(res.content) < 1000
    assert Split.objects.count() == 0


def test_apply_split_takes_new_old_and_refuses_an_inexact_decimal(make_position):
    pos = opened(make_position, qty="300", cash="0", fractional=False)
    with pytest.raises(Exception, match="new:old"):
        call_command("apply_split", "ORDA", "0.33333333", "--date",
                     clock.trading_day().isoformat(), stdout=StringIO())
    run("apply_split", "ORDA", "1:3", "--date", clock.trading_day().isoformat())
    pos.refresh_from_db()
    assert (pos.qty, pos.cash) == (D(100), D(0))


def test_the_admin_split_form_takes_new_old(admin_client, make_position):
    pos = opened(make_position, qty="300", cash="0", fractional=False)
    res = admin_client.post(reverse("admin:positions_split_add"),
                            {"ticker": "orda", "ratio": "1:3",
                             "effective_date": clock.trading_day().isoformat()}, follow=True)
    assert "Recorded on 1 position(s), applied on 1." in res.content.decode()
    pos.refresh_from_db()
    assert pos.qty == D(100)
    assert "1:3" in admin_client.get(reverse("admin:positions_split_changelist")).content.decode()


# --- 15a. an open order a split would overflow -------------------------------------------------


def test_a_split_overflowing_an_open_order_is_a_409_and_changes_nothing(api, user,
                                                                       make_position):
    pos = opened(make_position, qty="0", cash="1000000000000")
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY",
                                qty=D("100000000000000"), idempotency_key="big")  # x 1000 > 10^16
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": "1000:1", "effective_date": clock.trading_day().isoformat()},
                   format="json")
    body = assert_error(res, 409, "split_out_of_range")
    assert order.id in body["message"] and "ratio" in body["fields"]
    order.refresh_from_db()
    assert order.qty == D("100000000000000") and order.status == "submitted"
    assert Split.objects.count() == 0
    assert not Dividend.objects.exists() and Order.objects.count() == 1


# --- split and dividend runs at the same time (PostgreSQL: real parallel connections) ---------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_split_and_dividend_runs_give_the_books_of_either_order(user, make_position):
    from django.db import connection

    from positions.workflows.corporate_actions import dividends_process, split_announce_ticker

    today = clock.trading_day()
    positions = [opened(make_position, qty="100", cash="0", anchor_price="30",
                        fractional=False) for _ in range(4)]
    for pos in positions:
        announce(user, pos, today)
    Price.objects.create(ticker="ORDA", price=D("30"),  # the last price before the split
                         ts=clock.start_of_trading_day(today) - dt.timedelta(hours=2))
    barrier = threading.Barrier(4)
    errors = []

    def run(work):
        try:
            barrier.wait()
            work()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    works = [lambda: split_announce_ticker(ticker="ORDA", ratio="1:3", effective_date=today),
             lambda: dividends_process(today=today)] * 2
    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for pos in positions:
        pos.refresh_from_db()
        div = Dividend.objects.get(position=pos)
        # 100 whole shares at 1:3: 33 and a third of a share at 30 x 3 = 90 -> 30 in lieu;
        # the dividend of the day on the 33 shares of the day: 33, paid
        assert (pos.qty, div.entitlement_qty, div.status) == (D(33), D(33), "paid")
        assert pos.cash == D(30) + D(33) and pos.dividend_receivable == 0
        # the anchor of either order: 30 x 3 less the dps, not (30 - 1) x 3
        assert pos.anchor_price == D(89)
    assert ledger()[0] == 0
