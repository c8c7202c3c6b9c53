"""Time in one place: now, and the trading day in the configured exchange time zone."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from volbal import market


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def trading_tz() -> ZoneInfo:
    return _zone(settings.VOLBAL_TRADING_TZ)


def now() -> dt.datetime:
    return timezone.now()


def trading_day(moment: dt.datetime | None = None) -> dt.date:
    """The calendar date of ``moment`` (default now) in the trading time zone."""
    return (moment or now()).astimezone(trading_tz()).date()


def session_day(moment: dt.datetime | None = None) -> dt.date:
    """The trading day the daily order cap counts: the exchange session of ``moment`` (default
    now; see volbal.market), or without a calendar the calendar date in the trading time zone."""
    if market.calendar() is None:
        return trading_day(moment)
    return market.session_of(moment or now())


def start_of_trading_day(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in the trading time zone, as an aware datetime."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=trading_tz())
