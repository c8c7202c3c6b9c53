"""Dividend entitlement in the exchange time zone (America/New_York, the default), not UTC.

docs/strategy.md#dividends: the entitlement is the shares held at the start of the ex-date, and "the
trading day is the calendar date in one configured exchange time zone". Around an ex-date the
local midnight (04:00 UTC in March after the DST change) and the UTC midnight disagree for four
hours: a fill at 23:59:59 New York time on the eve of the ex-date is already on the ex-date in
UTC. These tests place fills on each side of the local midnight and check who is entitled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from events.models import Event
from orders.services import order_fill, order_submit_for
from positions.models import Dividend
from positions.workflows.corporate_actions import dividends_process

NY = ZoneInfo("America/New_York")
EX = dt.date(2026, 3, 10)  # New York is on EDT (UTC-4) since 2026-03-08: midnight = 04:00 UTC
PAY = dt.date(2026, 3, 20)
EVE_LAST_SECOND = dt.datetime(2026, 3, 9, 23, 59, 59, tzinfo=NY)  # 2026-03-10 03:59:59 UTC
EX_FIRST_SECOND = dt.datetime(2026, 3, 10, 0, 0, 1, tzinfo=NY)  # 2026-03-10 04:00:01 UTC
OPENED = dt.datetime(2026, 3, 2, 10, 0, tzinfo=NY)


@pytest.fixture
def trading_in_new_york(settings):
    """The default zone of settings.py, stated so an environment override cannot hide it."""
    settings.VOLBAL_TRADING_TZ = "America/New_York"


@pytest.fixture
def at(monkeypatch):
    """``with at(moment):`` runs the block with Django's clock (row timestamps, the trading
    day, event times) stopped at ``moment``."""
    event_created = Event._meta.get_field("created_at")

    @contextlib.contextmanager
    def frozen(moment: dt.datetime):
        with monkeypatch.context() as m:
            m.setattr(timezone, "now", lambda: moment)
            # Event.created_at's default=timezone.now is bound at import and cached by Django
            m.setattr(event_created, "_get_default", lambda: moment)
            yield

    return frozen


def trade(user, pos, at, moment, side, qty, price):
    with at(moment):
        order, _ = order_submit_for(owner=user, position_id=pos.id, side=side, qty=D(qty),
                                    idempotency_key=f"{side}-{moment.isoformat()}")
        order_fill(owner=user, order_id=order.id, price=D(price), filled_qty=D(qty),
                   commission=D(0))


@pytest.mark.django_db
def test_fills_either_side_of_new_york_midnight_decide_the_entitlement(
        user, make_position, trading_in_new_york, at):
    with at(OPENED):
        pos = make_position(qty="100", cash="100000", anchor_price="50")
        Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D("2"),
                                withholding_rate=D("0"))
    trade(user, pos, at, EVE_LAST_SECOND, "BUY", "40", "50")  # before the ex-date: entitled
    trade(user, pos, at, EX_FIRST_SECOND, "SELL", "15", "49")  # on the ex-date: sold ex-div

    dividends_process(today=EX)

    div = Dividend.objects.get()
    pos.refresh_from_db()
    # held at 00:00 New York on the ex-date: 100 + 40 bought the evening before = 140
    # (the sale at 00:00:01 still carries the dividend to us); 140 x 2 = 280, no withholding
    assert div.entitlement_qty == D("140")
    assert (div.gross_amount, div.net_amount) == (D("280"), D("280"))
    assert pos.qty == D("125") and pos.dividend_receivable == D("280")
    # the anchor is the sale's price, taken on the ex-date: already ex-dividend, kept
    assert (div.anchor_before, div.anchor_after) == (D("49"), D("49"))


@pytest.mark.django_db
def test_a_trade_on_the_eve_in_new_york_leaves_a_cum_dividend_anchor_to_lower(
        user, make_position, trading_in_new_york, at):
    with at(OPENED):
        pos = make_position(qty="100", cash="100000", anchor_price="50")
        Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D("0.5"),
                                withholding_rate=D("0.25"))
    trade(user, pos, at, EVE_LAST_SECOND, "SELL", "10", "52")

    dividends_process(today=EX)

    div = Dividend.objects.get()
    pos.refresh_from_db()
    # 90 shares x 0.5 = 45 gross, 25 % withheld -> 33.75
    assert div.entitlement_qty == D("90") and div.net_amount == D("33.75")
    # the anchor 52 was priced the evening before the ex-date (cum dividend): lowered by 0.5
    assert (div.anchor_before, div.anchor_after) == (D("52"), D("51.5"))
    assert pos.anchor_price == D("51.5")
    assert Event.objects.filter(position_id=pos.pk,
                                type="anchor_adjusted_for_dividend").count() == 1
