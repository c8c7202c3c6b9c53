"""The market-data port: what a feed answers, in plain frozen dataclasses, and how it fails.

A feed (docs/marketdata.md#the-port) answers three questions, each for many symbols or a range
at once so that a caller asks once per batch, never once per position:

- ``latest_trades(symbols)``: each symbol's last trade (price and the trade's own time);
  a symbol the feed does not know is absent from the answer, not an error.
- ``daily_bars(symbol, start, end)``: the raw (unadjusted) daily bars of sessions ``start`` to
  ``end`` inclusive, oldest first, every page read.
- ``corporate_actions(symbols, start, end)``: the forward and reverse splits taking effect, and
  the cash dividends going ex, from ``start`` to ``end`` inclusive.

Adapters speak only these types and raise only :class:`FeedError` and its subclasses; nothing
here touches the database. Choosing the adapter from the environment is
:func:`positions.marketdata.feeds.feed_from_settings` (a module of its own: the adapters import
this one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Trade:
    """A symbol's trade: its price and the (timezone-aware) time it happened at."""

    symbol: str
    price: Decimal
    ts: dt.datetime

    def __post_init__(self):
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError(f"a trade's time must carry its offset, not {self.ts.isoformat()}")


@dataclass(frozen=True)
class Bar:
    """One session's raw (unadjusted) daily bar. ``open``, ``high``, ``low`` and ``volume`` are
    None where the source has only closes (a Date/Close file)."""

    symbol: str
    day: dt.date
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal
    volume: int | None = None


@dataclass(frozen=True)
class Split:
    """``new_rate`` shares for every ``old_rate`` held, from ``effective_date`` (the ex-date, the
    first session at the new price): 4:1 is a 4-for-1 forward split, 1:3 a 1-for-3 reverse split.
    ``key`` identifies the action at its source, so recording it twice can be refused."""

    symbol: str
    effective_date: dt.date
    new_rate: int
    old_rate: int
    key: str

    def __post_init__(self):
        if not (self.new_rate > 0 and self.old_rate > 0) or self.new_rate == self.old_rate:
            raise ValueError(f"a split's rates must be two different positive whole numbers, "
                             f"not {self.new_rate}:{self.old_rate}")

    @property
    def ratio(self) -> Fraction:
        """New shares per old share, exactly (1/3 for a 1-for-3 reverse split)."""
        return Fraction(self.new_rate, self.old_rate)

    @property
    def reverse(self) -> bool:
        return self.new_rate < self.old_rate


@dataclass(frozen=True)
class CashDividend:
    """``rate`` in cash per share to whoever holds the symbol before ``ex_date``, paid on
    ``payable_date`` (None when the source does not say). ``key`` as for :class:`Split`."""

    symbol: str
    ex_date: dt.date
    payable_date: dt.date | None
    rate: Decimal
    key: str


@runtime_checkable
class MarketData(Protocol):
    """What every adapter provides (docs/marketdata.md#the-port)."""

    name: str  # recorded as the price's ``source``

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]: ...

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> list[Bar]: ...

    def corporate_actions(self, symbols: Iterable[str], start: dt.date, end: dt.date
                          ) -> tuple[list[Split], list[CashDividend]]: ...


# --------------------------------------------------------------------------------------------
# Errors: a machine code and a sentence, as everywhere in the service (docs/api.md#error-codes)
# --------------------------------------------------------------------------------------------


class FeedError(Exception):
    """The feed did not answer usefully. ``code`` is stable, ``message`` a sentence."""

    code = "feed_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class FeedNotConfigured(FeedError):
    """The settings name no usable feed (unknown name, missing credentials or directory)."""

    code = "feed_not_configured"


class FeedAuthRefused(FeedError):
    """The feed refused the credentials (401, 403)."""

    code = "feed_auth_refused"


class FeedRateLimited(FeedError):
    """Too many requests (429) and the limit did not reset within the wait allowed."""

    code = "feed_rate_limited"


class FeedUnavailable(FeedError):
    """The feed could not be reached, timed out, or failed (5xx): try again later."""

    code = "feed_unavailable"


class FeedRequestRefused(FeedError):
    """The feed refused the request itself (400, 404, 422: e.g. a symbol it rejects)."""

    code = "feed_request_refused"


class FeedBadResponse(FeedError):
    """The feed answered something that is not what its documentation promises (or a file
    that cannot be read as one of the formats, naming the file and line)."""

    code = "feed_bad_response"
