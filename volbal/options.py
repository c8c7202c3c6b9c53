"""Management commands' date options, read one way: an ISO date, and a range whose end is not
before its start (``backtest --ticker``, ``sweep``/``walkforward --ticker``, ``fetch_prices
--history``, ``fetch_corporate_actions``)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError


def day_option(raw: str | None, option: str) -> dt.date | None:
    """``raw`` (the value of ``option``) as a date, None when absent; a CommandError naming
    the option when it is not an ISO date."""
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw[:10] if len(raw) > 10 and raw[10] == "T" else raw)
    except ValueError:
        raise CommandError(f"{option} {raw!r} is not an ISO date (YYYY-MM-DD)") from None


def day_range(start: str | None, end: str | None, *, default_end: dt.date | None = None,
              names: tuple[str, str] = ("--start", "--end")
              ) -> tuple[dt.date | None, dt.date | None]:
    """``(start, end)`` read by :func:`day_option` (``end`` defaulting to ``default_end``),
    refused when the end is before the start."""
    first, last = day_option(start, names[0]), day_option(end, names[1])
    last = last if last is not None else default_end
    if first is not None and last is not None and last < first:
        raise CommandError(f"{names[1]} {last} is before {names[0]} {first}")
    return first, last
