"""The dividend steps (docs/strategy.md#dividends) where bench/mutation.py found changes no test
noticed: what the ex-date and pay-date events say, the dividend's own record of the step,
the anchor at or below the dividend, and the shares at the start of the ex-date when shares
were both bought and sold since."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from events.models import Event
from orders.models import Fill
from orders.services import order_fill, order_submit_for
from positions.models import Dividend, Position
from positions.workflows.corporate_actions import dividends_process, shares_at_start_of
from volbal import clock

pytestmark = pytest.mark.django_db

EX = dt.date(2026, 3, 10)
PAY = dt.date(2026, 3, 24)
OPENED = dt.datetime(2026, 1, 2, 15, tzinfo=dt.UTC)


def position(make_position, **kw) -> Position:
    pos = make_position(**kw)
    Position.objects.filter(pk=pos.pk).update(created_at=OPENED)
    pos.refresh_from_db()
    return pos


def dividend(pos, dps: str, rate: str) -> Dividend:
    return Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D(dps),
                                   withholding_rate=D(rate))


def events(pos, *types: str) -> list[Event]:
    return list(Event.objects.filter(position_id=pos.pk, type__in=types).order_by("id"))


def test_the_ex_date_step_records_the_amounts_and_says_so(make_position):
    pos = position(make_position, qty="120", cash="1000", anchor_price="40")
    div = dividend(pos, "0.25", "0.2")
    dividends_process(today=EX)
    # 120 x 0.25 = 30 gross; 20 % withheld -> 24 net, receivable; anchor 40 - 0.25 = 39.75
    div.refresh_from_db()
    pos.refresh_from_db()
    assert (div.status, div.entitlement_qty, div.gross_amount, div.net_amount) == (
        "effective", D("120"), D("30"), D("24"))
    assert (div.anchor_before, div.anchor_after) == (D("40"), D("39.75"))
    assert div.effective_at is not None and div.paid_at is None
    assert (pos.dividend_receivable, pos.cash, pos.anchor_price) == (D("24"), D("1000"),
                                                                     D("39.75"))
    (effective,) = events(pos, "ex_div_effective")
    assert effective.message == (
        "Ex-date 2026-03-10: 120 shares × 0.25 = 30 gross, 24 net after 0.2 withholding; "
        "receivable now 24.")
    assert effective.inputs == {"dividend_id": div.id, "shares": 120, "dps": D("0.25"),
                                "withholding_tax_rate": D("0.2")}
    assert effective.outputs == {"gross": 30, "net": 24, "receivable": 24,
                                 "anchor_adjusted": True}
    (adjusted,) = events(pos, "anchor_adjusted_for_dividend")
    assert adjusted.message == ("Anchor 40 -> 39.75 for the 0.25 dividend, so the ex-date "
                                "drop is not taken for a buy trigger.")
    assert adjusted.inputs == {"dividend_id": div.id, "dps": D("0.25")}
    assert adjusted.outputs == {"old": 40, "new": D("39.75")}


@pytest.mark.parametrize("anchor", ["0.5", "0.4"])
def test_an_anchor_not_above_the_dividend_is_unset(make_position, anchor):
    pos = position(make_position, qty="10", cash="0", anchor_price=anchor)
    div = dividend(pos, "0.5", "0")
    dividends_process(today=EX)
    pos.refresh_from_db()
    div.refresh_from_db()
    assert pos.anchor_price is None
    assert (div.anchor_before, div.anchor_after) == (D(anchor), None)
    (adjusted,) = events(pos, "anchor_adjusted_for_dividend")
    assert adjusted.message.startswith(f"Anchor {anchor} -> unset for the 0.5 dividend")
    assert adjusted.outputs == {"old": D(anchor), "new": None}


def test_an_anchor_just_above_the_dividend_is_lowered(make_position):
    pos = position(make_position, qty="10", cash="0", anchor_price="0.500001")
    dividend(pos, "0.5", "0")
    dividends_process(today=EX)
    pos.refresh_from_db()
    assert pos.anchor_price == D("0.000001")


def test_without_an_anchor_nothing_is_adjusted_or_said(make_position):
    pos = position(make_position, qty="10", cash="0")
    dividend(pos, "0.5", "0")
    dividends_process(today=EX)
    (effective,) = events(pos, "ex_div_effective")
    assert effective.message.endswith("receivable now 5.")
    assert effective.outputs["anchor_adjusted"] is False
    assert events(pos, "anchor_adjusted_for_dividend") == []


def test_the_pay_date_step_moves_the_net_to_cash_and_says_so(make_position):
    pos = position(make_position, qty="120", cash="1000", anchor_price="40")
    div = dividend(pos, "0.25", "0.2")
    dividends_process(today=EX)
    dividends_process(today=PAY)
    div.refresh_from_db()
    pos.refresh_from_db()
    assert div.status == "paid" and div.paid_at is not None
    assert (pos.cash, pos.dividend_receivable) == (D("1024"), D("0"))
    (paid,) = events(pos, "dividend_cash_received")
    assert paid.message == "Pay-date 2026-03-24: 24 dividend cash received; cash now 1024."
    assert paid.inputs == {"dividend_id": div.id, "net": 24}
    assert paid.outputs == {"cash": 1024, "receivable": 0}


def test_the_pay_date_step_leaves_another_dividends_receivable(make_position):
    pos = position(make_position, qty="100", cash="0")
    first = dividend(pos, "1", "0")
    second = Dividend.objects.create(position=pos, ex_date=PAY, pay_date=PAY + dt.timedelta(
        days=30), dps=D("0.5"), withholding_rate=D("0"))
    dividends_process(today=PAY)
    pos.refresh_from_db()
    # first: 100 paid; second: 50 receivable until its pay-date
    assert (pos.cash, pos.dividend_receivable) == (D("100"), D("50"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("paid", "effective")


def test_the_shares_at_the_start_of_the_ex_date_undo_the_buys_and_the_sells_since(
        user, make_position):
    pos = position(make_position, qty="100", cash="100000")
    start = clock.start_of_trading_day(EX)
    for key, side, qty, at in (("b1", "BUY", "7", start - dt.timedelta(hours=1)),
                               ("b2", "BUY", "5", start),
                               ("s1", "SELL", "30", start + dt.timedelta(hours=2)),
                               ("b3", "BUY", "2", start + dt.timedelta(days=1))):
        order, _ = order_submit_for(owner=user, position_id=pos.id, side=side, qty=D(qty),
                                    idempotency_key=key)
        _, _, fill = order_fill(owner=user, order_id=order.id, price=D("50"),
                                filled_qty=D(qty), commission=D(0))
        Fill.objects.filter(pk=fill.pk).update(created_at=at)
    pos.refresh_from_db()
    assert pos.qty == D("84")  # 100 + 7 + 5 - 30 + 2
    # at the start of the ex-date: 84 - (5 + 2) bought since + 30 sold since = 107
    assert shares_at_start_of(position=pos, day=EX) == D("107")
    # the next day: the 2 bought at its first instant undone; the day after: nothing since
    assert shares_at_start_of(position=pos, day=EX + dt.timedelta(days=1)) == D("82")
    assert shares_at_start_of(position=pos, day=EX + dt.timedelta(days=2)) == D("84")
