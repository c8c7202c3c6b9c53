"""manage.py verify_ledger: silent agreement on honest books, loud on a tampered balance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from orders.services import order_fill, order_submit_for
from positions.dividends import dividend_announce, dividends_process
from positions.models import Position


def books(user, make_position):
    pos = make_position(qty="10", cash="5000", anchor_price="100")
    buy, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("5"),
                              idempotency_key="b")
    order_fill(owner=user, order_id=buy.id, price=D("100"), filled_qty=D("2"))
    order_fill(owner=user, order_id=buy.id, price=D("101.5"), filled_qty=D("3"),
               commission=D("0.5"))
    sell, _ = order_submit_for(owner=user, position_id=pos.id, side="SELL", qty=D("4"),
                               idempotency_key="s")
    order_fill(owner=user, order_id=sell.id, price=D("99"), filled_qty=D("4"))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2026, 1, 5),
                      pay_date=dt.date(2026, 1, 20), dps=D("1"))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2026, 2, 5),
                      pay_date=dt.date(2026, 2, 20), dps=D("1"))
    dividends_process(today=dt.date(2026, 2, 10))  # one paid, one receivable
    return pos


@pytest.mark.django_db
def test_honest_books_verify(user, make_position):
    pos = books(user, make_position)
    pos.refresh_from_db()
    # 10 + 5 - 4 shares now; on both ex-dates (before today's fills) 10 were held:
    # 10 x 1 x 0.75 = 7.50 per dividend
    assert pos.qty == D("11") and pos.dividend_receivable == D("7.5")
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "ledger ok: 1 positions, 2 orders, 3 fills, 2 dividends checked" in out.getvalue()


@pytest.mark.django_db
def test_a_tampered_balance_is_reported_and_exits_1(user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(cash=D("1"))
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert exit_info.value.code == 1
    assert f"DIFFERENCE {pos.id} cash: stored 1.000000" in out.getvalue()
