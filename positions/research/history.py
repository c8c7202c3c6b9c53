"""History for research from the feed (docs/marketdata.md#history-for-research): a ticker's raw
daily bars with its splits and cash dividends, cached, and turned into what a backtest of a
CSV with ``--splits`` and ``--dividends`` files runs on.

The cache is a directory (``VOLBAL_MARKETDATA_CACHE_DIR``, by default ``var/marketdata`` in the
project), one JSON file per feed, ticker and range: a second run of the same range asks the feed
nothing; ``refresh`` asks again and replaces the file. Files are written whole and renamed into
place, so a reader never sees half of one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from positions.marketdata.configured import configured_feed
from positions.marketdata.port import (
    Bar,
    CashDividend,
    FeedError,
    FeedNotConfigured,
    FeedRequestRefused,
    MarketData,
    Split,
)
from positions.research import requests
from positions.strategy.backtest import data
from volbal import clock, market

VERSION = 1  # of the cache file's layout


@dataclass(frozen=True)
class History:
    ticker: str
    start: dt.date
    end: dt.date
    source: str
    bars: tuple[Bar, ...]
    splits: tuple[Split, ...]
    dividends: tuple[CashDividend, ...]
    cached: bool = False  # read from the cache (no request)


def _feed() -> MarketData:
    feed = configured_feed()
    if feed is None:
        raise FeedNotConfigured("history by ticker needs a feed: set VOLBAL_PRICE_FEED "
                                "(alpaca or file)")
    return feed


def cache_path(feed: MarketData, ticker: str, start: dt.date, end: dt.date) -> Path:
    """The cache file of this feed (and its variant: Alpaca's data feed), ticker and range."""
    variant = str(getattr(getattr(feed, "feed", ""), "value", getattr(feed, "feed", "")) or "")
    where = re.sub(r"[^a-z0-9_-]", "_", f"{feed.name}-{variant}".lower().strip("-"))
    name = re.sub(r"[^A-Z0-9.-]", "_", ticker.upper())
    return (Path(settings.VOLBAL_MARKETDATA_CACHE_DIR) / where
            / f"{name}_{start.isoformat()}_{end.isoformat()}.json")


def history_get(*, ticker: str, start: dt.date, end: dt.date, refresh: bool = False,
                feed: MarketData | None = None) -> History:
    """``ticker``'s raw daily bars from ``start`` to ``end`` with its splits and dividends of
    the range, from the cache or (absent, or ``refresh``) the feed. Only closed sessions: an
    ``end`` at or after a session in progress (or in the future) is cut to the last closed
    session (:func:`volbal.market.last_closed_session`; the history's ``end`` says so), so a
    session's intraday trade is never fetched or cached as its close. Raises
    :class:`~positions.marketdata.port.FeedError` (``feed_request_refused`` when no closed
    session is left)."""
    closed = market.last_closed_session(clock.now())
    if end > closed:
        if start > closed:
            raise FeedRequestRefused(
                f"no closed session from {start} to {end}: the last closed session is {closed} "
                "(a session's bar is final after its close)")
        end = closed
    feed = feed or _feed()
    ticker = ticker.strip().upper()
    path = cache_path(feed, ticker, start, end)
    if not refresh:
        cached = _read(path)
        if cached is not None:
            return cached
    bars = feed.daily_bars(ticker, start, end)
    splits, dividends = feed.corporate_actions([ticker], start, end)
    history = History(ticker, start, end, feed.name, tuple(bars),
                      tuple(s for s in splits if s.symbol == ticker),
                      tuple(d for d in dividends if d.symbol == ticker))
    _write(path, history)
    return history


def _dec(value) -> str | None:
    return None if value is None else str(value)


def _write(path: Path, h: History) -> None:
    doc = {"version": VERSION, "ticker": h.ticker, "start": h.start.isoformat(),
           "end": h.end.isoformat(), "source": h.source,
           "bars": [[b.day.isoformat(), _dec(b.open), _dec(b.high), _dec(b.low), str(b.close),
                     b.volume] for b in h.bars],
           "splits": [[s.effective_date.isoformat(), s.new_rate, s.old_rate, s.key]
                      for s in h.splits],
           "dividends": [[d.ex_date.isoformat(),
                          d.payable_date.isoformat() if d.payable_date else None, str(d.rate),
                          d.key] for d in h.dividends]}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".history-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> History | None:
    """The cached history, or None when absent or not readable as one (fetched again)."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != VERSION:
            return None
        ticker = doc["ticker"]

        def day(text):
            return dt.date.fromisoformat(text)

        def dec(text):
            return None if text is None else Decimal(text)

        return History(
            ticker, day(doc["start"]), day(doc["end"]), doc["source"],
            tuple(Bar(ticker, day(d), dec(o), dec(h), dec(lo), Decimal(c), v)
                  for d, o, h, lo, c, v in doc["bars"]),
            tuple(Split(ticker, day(d), new, old, key) for d, new, old, key in doc["splits"]),
            tuple(CashDividend(ticker, day(ex), day(pay) if pay else None, Decimal(rate), key)
                  for ex, pay, rate, key in doc["dividends"]),
            cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def backtest_inputs(h: History):
    """``(series, dividends, splits)`` as ``backtest --csv --dividends --splits`` reads them:
    the daily closes (a Date,Close file), the dividends (ex_date, pay_date, dps) and the
    splits (date, ratio new/old)."""
    series = data.series_from_points([(b.day.isoformat(), float(b.close)) for b in h.bars],
                                     name=h.ticker)
    dividends = sorted((data.make_dividend(d.ex_date, d.payable_date, d.rate,
                                           f"{h.ticker} dividend {d.key}")
                        for d in h.dividends), key=lambda d: (d.ex_date, d.pay_date))
    splits = tuple(sorted((s.effective_date, s.ratio) for s in h.splits))
    return series, dividends, splits


def history_inputs(*, ticker: str, start: dt.date, end: dt.date, refresh: bool = False):
    """:func:`backtest_inputs` of :func:`history_get`, and the history itself."""
    h = history_get(ticker=ticker, start=start, end=end, refresh=refresh)
    return (*backtest_inputs(h), h)


# How the API answers a feed's failure to give a research request its history.
FEED_STATUS = {"feed_not_configured": 503, "alpaca_credentials_missing": 503,
               "feed_request_refused": 400, "feed_rate_limited": 503, "feed_unavailable": 503}


def with_end(params: dict) -> dict:
    """A research request by ticker with its ``end`` set (today when absent), so the worker
    that runs it later reads the same range (and the same cache file)."""
    tickers = params.get("ticker") or any(
        isinstance(h, dict) and h.get("ticker") is not None
        for h in (params.get("portfolio") or {}).get("holdings") or ())
    if tickers and not params.get("end"):
        return {**params, "end": clock.trading_day().isoformat()}
    return params


def history_for(params: dict):
    """``(series, dividends, splits)`` of a research request by ``ticker`` (a sweep's params or
    a backtest's options: :func:`requests.history_range`), or None without one; for a sweep's
    or walk-forward's ``portfolio``, each of its tickers' (a dict by ticker). A feed's
    failure is a :class:`requests.RequestError` with its code (the view answers it, the worker
    stores it as the job's error)."""
    if params.get("portfolio") is not None and params.get("kind"):  # a sweep of a portfolio
        spec = requests.portfolio(params["portfolio"], params)
        return {t: history_for({"ticker": t, "start": params.get("start"),
                                "end": params.get("end")}) for t in spec.tickers}
    wanted = requests.history_range(params)
    if wanted is None:
        return None
    ticker, start, end = wanted
    try:
        series, dividends, splits, _h = history_inputs(
            ticker=ticker, start=start, end=end or clock.trading_day())
    except FeedError as exc:
        raise requests.RequestError(exc.code, f"The history of {ticker} could not be fetched: "
                                    f"{exc.message}", status=FEED_STATUS.get(exc.code, 502),
                                    fields={"ticker": exc.message}) from None
    except data.DataError as exc:
        raise requests.ParamError("ticker", f"{ticker} {start} to {end}: {exc}") from None
    return series, dividends, splits
