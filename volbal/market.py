"""The exchange calendar: sessions, their opens and closes (exchange_calendars, pinned in
requirements.txt). ``VOLBAL_CALENDAR`` names it (an exchange_calendars code, ``XNYS`` by
default); empty means no calendar: every day is a trading day (the calendar date in
``VOLBAL_TRADING_TZ``) and the market is always open.

The trading day of a moment is its *session*: the first session whose close is at or after the
moment (an order placed on a Saturday, or after Friday's close, counts on Monday's session).
Lookups are cached per local date, so the hot path (the daily cap on every submission) does
no pandas work after the first call of the day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings

CALENDAR_START = "1990-01-01"  # history for backtested samples replayed through the service


@lru_cache(maxsize=4)
def _calendar(name: str):
    # exchange_calendars (and pandas): heavy optional libraries, loaded when a calendar is asked for
    import exchange_calendars

    with _quiet():
        return exchange_calendars.get_calendar(name, start=CALENDAR_START)


@contextlib.contextmanager
def _quiet():
    """Silence pandas 3's deprecation notices raised from inside exchange_calendars."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def warm() -> None:
    """Build the configured calendar now (a server worker does it before serving)."""
    cal = calendar()
    if cal is not None:
        _day(settings.VOLBAL_CALENDAR, dt.date.today())


def calendar():
    """The configured calendar, or None when ``VOLBAL_CALENDAR`` is empty."""
    name = settings.VOLBAL_CALENDAR
    return _calendar(name) if name else None


@lru_cache(maxsize=4096)
def _day(name: str, day: dt.date) -> tuple[bool, dt.datetime | None, dt.datetime | None,
                                           dt.date]:
    """(is a session, its open, its close, the next session after it) for a local date."""
    # pandas: a heavy library, loaded with the calendar (above)
    import pandas as pd

    cal = _calendar(name)
    ts = pd.Timestamp(day)
    with _quiet():
        if cal.is_session(ts):
            nxt = cal.next_session(ts).date()
            return (True, cal.session_open(ts).to_pydatetime(),
                    cal.session_close(ts).to_pydatetime(), nxt)
        return False, None, None, cal.date_to_session(ts, direction="next").date()


def _local_date(moment: dt.datetime, cal) -> dt.date:
    return moment.astimezone(ZoneInfo(str(cal.tz))).date()


def session_of(moment: dt.datetime) -> dt.date:
    """The session ``moment`` belongs to: the first whose close is at or after it."""
    cal = calendar()
    day = _local_date(moment, cal)
    is_session, _open, close, nxt = _day(settings.VOLBAL_CALENDAR, day)
    if is_session and moment <= close:
        return day
    return nxt


def is_open(moment: dt.datetime) -> bool:
    """Whether the exchange is in a session at ``moment`` (always, without a calendar)."""
    cal = calendar()
    if cal is None:
        return True
    is_session, open_, close, _ = _day(settings.VOLBAL_CALENDAR, _local_date(moment, cal))
    return is_session and open_ <= moment < close


def session_close(day: dt.date) -> dt.datetime | None:
    """The close of the session on ``day``, or of the next session if ``day`` is none; None
    without a calendar (the end of the day in the trading time zone then)."""
    cal = calendar()
    if cal is None:
        return None
    is_session, _open, close, nxt = _day(settings.VOLBAL_CALENDAR, day)
    return close if is_session else _day(settings.VOLBAL_CALENDAR, nxt)[2]


def open_of(moment: dt.datetime) -> dt.datetime | None:
    """The open of the session in progress at ``moment``; None outside a session or without a
    calendar (where the market is always open and no session has a start)."""
    cal = calendar()
    if cal is None:
        return None
    is_session, open_, close, _ = _day(settings.VOLBAL_CALENDAR, _local_date(moment, cal))
    return open_ if is_session and open_ <= moment < close else None


def latest_session(moment: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The last session whose open is at or before ``moment`` (the one in progress, or the last
    one closed), and its close; without a calendar, the calendar date of ``moment`` in the
    trading time zone and its end."""
    cal = calendar()
    if cal is None:
        tz = ZoneInfo(settings.VOLBAL_TRADING_TZ)
        day = moment.astimezone(tz).date()
        return day, dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tz)
    day = _local_date(moment, cal)
    while True:
        is_session, open_, close, _ = _day(settings.VOLBAL_CALENDAR, day)
        if is_session and open_ <= moment:
            return day, close
        day -= dt.timedelta(days=1)


def last_closed_session(moment: dt.datetime) -> dt.date:
    """The last session closed by ``moment``: :func:`latest_session` once its close has passed,
    else the session before it (without a calendar: the day before ``moment``'s date). A
    session in progress has no daily bar yet, only an intraday trade."""
    day, close = latest_session(moment)
    return day if close <= moment else session_offset(day, -1)


def session_offset(day: dt.date, count: int) -> dt.date:
    """The session ``count`` sessions after the session ``day`` (before it when negative);
    without a calendar, ``count`` calendar days."""
    step = dt.timedelta(days=1 if count > 0 else -1)
    while count:
        day += step
        if calendar() is None or _day(settings.VOLBAL_CALENDAR, day)[0]:
            count -= 1 if count > 0 else -1
    return day


def session_closes(first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.datetime]]:
    """The sessions from ``first`` to ``last`` (local dates, both included) with their closes,
    oldest first (one slice of the calendar's table, not a lookup a day); without a calendar
    (``VOLBAL_CALENDAR`` empty) every day, closing at its end (the next midnight) in the trading
    time zone. Outside the calendar's range (from :data:`CALENDAR_START`) there are none."""
    cal = calendar()
    if cal is None:
        zone = ZoneInfo(settings.VOLBAL_TRADING_TZ)
        days = range((last - first).days + 1)
        return [(first + dt.timedelta(days=i),
                 dt.datetime.combine(first + dt.timedelta(days=i + 1), dt.time.min, tzinfo=zone))
                for i in days]
    # pandas: a heavy library, loaded with the calendar (above)
    import pandas as pd

    first = max(first, dt.date.fromisoformat(CALENDAR_START))
    with _quiet():
        closes = cal.closes.loc[pd.Timestamp(first):pd.Timestamp(last)]
    return [(session.date(), close.to_pydatetime()) for session, close in closes.items()]
