"""The exchange calendar (XNYS by default): sessions for the daily cap, whether the market is
open, day orders expiring at the session's close. Dates checked against the NYSE's 2024
calendar: 4 July a holiday, 3 July an early close (13:00 New York, 17:00 UTC)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings

from conftest import assert_error
from events.models import Event
from orders.models import Order
from orders.services import order_submit, orders_expire
from positions.models import Position
from volbal import clock, market

pytestmark = pytest.mark.django_db


def utc(*a):
    return dt.datetime(*a, tzinfo=dt.UTC)


@pytest.mark.parametrize("moment,session", [
    (utc(2024, 7, 3, 16, 59), dt.date(2024, 7, 3)),  # before the early close
    (utc(2024, 7, 3, 17, 1), dt.date(2024, 7, 5)),  # after it: the 4th is a holiday
    (utc(2024, 7, 4, 15), dt.date(2024, 7, 5)),
    (utc(2024, 7, 6, 12), dt.date(2024, 7, 8)),  # Saturday -> Monday
    (utc(2024, 7, 8, 3), dt.date(2024, 7, 8)),  # Monday before the open
    (utc(2024, 7, 8, 20), dt.date(2024, 7, 8)),  # Monday's close, 16:00 EDT
    (utc(2003, 1, 2, 15), dt.date(2003, 1, 2)),  # history, for replayed samples
])
def test_the_session_of_a_moment(moment, session):
    assert market.session_of(moment) == session
    assert clock.session_day(moment) == session


@pytest.mark.parametrize("moment,open_", [
    (utc(2024, 7, 5, 15), True), (utc(2024, 7, 5, 13, 29), False),
    (utc(2024, 7, 5, 20), False), (utc(2024, 7, 4, 15), False), (utc(2024, 7, 6, 15), False),
])
def test_whether_the_market_is_open(moment, open_):
    assert market.is_open(moment) is open_


@override_settings(VOLBAL_CALENDAR="XLON")
def test_the_calendar_is_configurable():
    assert market.session_close(dt.date(2024, 7, 4)) == utc(2024, 7, 4, 15, 30)  # London
    assert market.is_open(utc(2024, 7, 4, 10))


@override_settings(VOLBAL_CALENDAR="")
def test_without_a_calendar_every_moment_trades():
    assert market.is_open(utc(2024, 7, 6, 3))
    assert clock.session_day(utc(2024, 7, 6, 12)) == dt.date(2024, 7, 6)


def _submit(position, side="BUY", qty="1", tif="gtc"):
    with transaction.atomic():
        locked = Position.objects.select_for_update().get(pk=position.pk)
        return order_submit(position=locked, side=side, qty=Decimal(qty), time_in_force=tif)


def test_the_daily_cap_counts_the_exchange_session(api, make_position, monkeypatch):
    pos = make_position(qty=0, cash=10000, max_orders_per_day=1)
    monkeypatch.setattr(clock, "now", lambda: utc(2024, 7, 5, 20, 30))  # Friday, after close
    first = _submit(pos)
    assert first.trading_day == dt.date(2024, 7, 8)  # Monday's session
    monkeypatch.setattr(clock, "now", lambda: utc(2024, 7, 6, 12))  # Saturday: same session
    r = api.post(f"/v1/positions/{pos.id}/orders", {"side": "BUY", "qty": 1}, format="json",
                 HTTP_IDEMPOTENCY_KEY="k2")
    assert_error(r, 409, "daily_order_cap_exceeded")
    monkeypatch.setattr(clock, "now", lambda: utc(2024, 7, 8, 20, 1))  # after Monday's close
    assert _submit(pos).trading_day == dt.date(2024, 7, 9)


def test_day_orders_expire_at_the_session_close(api, make_position, monkeypatch):
    pos = make_position(qty=0, cash=10000)
    monkeypatch.setattr(clock, "now", lambda: utc(2024, 7, 3, 15))  # the early-close day
    r = api.post(f"/v1/positions/{pos.id}/orders", {"side": "BUY", "qty": 1,
                                                    "time_in_force": "day"},
                 format="json", HTTP_IDEMPOTENCY_KEY="d1")
    assert r.status_code == 201, r.content
    day = Order.objects.get(pk=r.json()["order_id"])
    assert day.time_in_force == "day"
    gtc = _submit(pos)
    assert orders_expire(now=utc(2024, 7, 3, 16, 59)) == []
    assert orders_expire(now=utc(2024, 7, 3, 17)) == [day.id]
    day.refresh_from_db()
    gtc.refresh_from_db()
    assert day.status == "cancelled" and gtc.status == "submitted"
    ev = Event.objects.get(order_id=day.pk, type="order_expired")
    assert "2024-07-03" in ev.message and "17:00" in ev.message
    assert orders_expire(now=utc(2024, 7, 10)) == []  # once only
    r = api.post(f"/v1/positions/{pos.id}/orders", {"side": "BUY", "qty": 1,
                                                    "time_in_force": "week"},
                 format="json", HTTP_IDEMPOTENCY_KEY="d2")
    assert_error(r, 400, "validation_error")


def test_session_closes_list_the_sessions_with_their_closes():
    closes = market.session_closes(dt.date(2024, 7, 2), dt.date(2024, 7, 8))
    # the 4th a holiday, the weekend none, the 3rd closing early
    assert closes == [(dt.date(2024, 7, 2), utc(2024, 7, 2, 20)),
                      (dt.date(2024, 7, 3), utc(2024, 7, 3, 17)),
                      (dt.date(2024, 7, 5), utc(2024, 7, 5, 20)),
                      (dt.date(2024, 7, 8), utc(2024, 7, 8, 20))]
    assert market.session_closes(dt.date(1900, 1, 1), dt.date(1990, 1, 2)) == [
        (dt.date(1990, 1, 2), utc(1990, 1, 2, 21))]  # none before the calendar's start
    with override_settings(VOLBAL_CALENDAR="", VOLBAL_TRADING_TZ="America/New_York"):
        days = market.session_closes(dt.date(2024, 7, 3), dt.date(2024, 7, 4))
    assert [d for d, _ in days] == [dt.date(2024, 7, 3), dt.date(2024, 7, 4)]
    assert days[0][1] == utc(2024, 7, 4, 4)  # the next midnight in New York
