"""The Alpaca feed: Alpaca's market-data API through alpaca-py's maintained data clients
(docs/marketdata.md#the-alpaca-adapter).

- ``latest_trades``: ``StockHistoricalDataClient.get_stock_latest_trade`` with a
  ``StockLatestTradeRequest`` (``GET /v2/stocks/trades/latest?symbols=A,B,...&feed=iex``), one
  request per :data:`SYMBOLS_PER_REQUEST` symbols.
- ``daily_bars``: ``StockHistoricalDataClient.get_stock_bars`` with a ``StockBarsRequest``
  (``GET /v2/stocks/bars``, ``timeframe=1Day``, ``adjustment=raw``): the SDK follows
  ``next_page_token`` until the last page. A daily bar's time is the session's midnight in New
  York, so its day is that date there, whatever ``VOLBAL_TRADING_TZ`` says.
- ``corporate_actions``: ``CorporateActionsClient.get_corporate_actions`` with a
  ``CorporateActionsRequest`` (``GET /v1/corporate-actions``, types forward_split,
  reverse_split, cash_dividend; paged by the SDK). Alpaca selects actions by their *process*
  date, which for a dividend is its payable date, weeks after the ex-date: the request reaches
  :data:`PROCESS_LAG` past ``end`` and the answer is cut to ex-dates from ``start`` to ``end``.
  A split's effective date is its ``ex_date`` (the first session at the new price), never its
  payable date.

Both clients are built with ``raw_data=True``: the SDK's models hold prices as floats, its raw
answer is the JSON itself, which the session of :mod:`positions.marketdata.alpaca_http` decodes
with exact Decimals. That session also gives every request a timeout and waits a 429 out until
its reset (bounded); the SDK retries a 504. Failures are :class:`FeedError` subclasses: 401/403
:class:`FeedAuthRefused`, 429 :class:`FeedRateLimited`, 5xx and network errors
:class:`FeedUnavailable`, other 4xx :class:`FeedRequestRefused`, an answer not in the documented
shape :class:`FeedBadResponse`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from zoneinfo import ZoneInfo

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, CorporateActionsType, DataFeed
from alpaca.data.historical.corporate_actions import CorporateActionsClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CorporateActionsRequest, StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame

from positions.marketdata import alpaca_http
from positions.marketdata.port import (
    Bar,
    CashDividend,
    FeedAuthRefused,
    FeedBadResponse,
    FeedError,
    FeedNotConfigured,
    FeedRateLimited,
    FeedRequestRefused,
    FeedUnavailable,
    Split,
    Trade,
)

NEW_YORK = ZoneInfo("America/New_York")  # Alpaca's US sessions: a daily bar's time is its midnight
# Symbols per latest-trades or corporate-actions request. The API takes a comma-separated list
# in the query; this keeps the URL well under the 8 KB that proxies commonly accept.
SYMBOLS_PER_REQUEST = 200
PROCESS_LAG = dt.timedelta(days=90)  # how long after its ex-date a dividend may be processed
ACTION_TYPES = (CorporateActionsType.FORWARD_SPLIT, CorporateActionsType.REVERSE_SPLIT,
                CorporateActionsType.CASH_DIVIDEND)
DATA_FEEDS = tuple(f.value for f in DataFeed)


def _symbols(symbols: Iterable[str]) -> list[str]:
    """Upper-cased, stripped, each once, in the order given."""
    return list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))


def _chunks(items: list[str], size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class AlpacaFeed:
    name = "alpaca"

    def __init__(self, *, key_id: str, secret_key: str, feed: str = "iex",
                 url: str | None = None, session: alpaca_http.Session | None = None,
                 retry_attempts: int = alpaca_http.SDK_RETRY_ATTEMPTS,
                 retry_wait: float = alpaca_http.SDK_RETRY_WAIT_SECONDS):
        feed = (feed or "iex").strip().lower()
        if feed not in DATA_FEEDS:
            raise FeedNotConfigured(f"ALPACA_DATA_FEED is {feed!r}; Alpaca's stock feeds are "
                                    f"{', '.join(DATA_FEEDS)}")
        self._key, self._secret = key_id, secret_key
        self.feed, self.url = DataFeed(feed), (url.rstrip("/") if url else None)
        self._session = session or alpaca_http.Session()
        self._retry = (retry_attempts, retry_wait)

    def _client(self, cls):
        client = cls(api_key=self._key, secret_key=self._secret, raw_data=True,
                     url_override=self.url)
        return alpaca_http.configure(client, self._session, retry_attempts=self._retry[0],
                                     retry_wait=self._retry[1])

    def _ask(self, action: str, call: Callable):
        """``call()`` (one SDK method, every page of it), its failures as the port's."""
        try:
            return call()
        except APIError as exc:
            raise _api_failure(exc, action, self._session.now) from None
        except ValueError as exc:  # a body that is not JSON, or JSON without the documented key
            raise FeedBadResponse(f"Alpaca's answer to {action} was not understood ({exc})"
                                  ) from None
        except requests.Timeout:
            raise FeedUnavailable(f"Alpaca did not answer in time to {action}") from None
        except requests.RequestException as exc:
            raise FeedUnavailable(f"Alpaca could not be reached to {action} "
                                  f"({type(exc).__name__})") from None

    # ----------------------------------------------------------------------------------------

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]:
        wanted = _symbols(symbols)
        if not wanted:
            return {}
        client = self._client(StockHistoricalDataClient)
        out: dict[str, Trade] = {}
        for chunk in _chunks(wanted, SYMBOLS_PER_REQUEST):
            request = StockLatestTradeRequest(symbol_or_symbols=chunk, feed=self.feed)
            answer = self._ask("read the latest trades",
                               lambda r=request: client.get_stock_latest_trade(r))
            for symbol, raw in _mapping(answer, "latest trades").items():
                if symbol in chunk and raw is not None:
                    out[symbol] = _trade(symbol, raw)
        return out

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> list[Bar]:
        symbol = (_symbols([symbol]) or [""])[0]
        if not symbol or end < start:
            return []
        request = StockBarsRequest(
            symbol_or_symbols=[symbol], timeframe=TimeFrame.Day, adjustment=Adjustment.RAW,
            feed=self.feed, start=dt.datetime.combine(start, dt.time(0, 0), NEW_YORK),
            end=dt.datetime.combine(end, dt.time(23, 59, 59), NEW_YORK))
        client = self._client(StockHistoricalDataClient)
        answer = _mapping(self._ask(f"read {symbol}'s daily bars",
                                    lambda: client.get_stock_bars(request)), "bars")
        bars = [_bar(symbol, raw) for raw in _list(answer.get(symbol) or [], "bars")]
        return sorted((b for b in bars if start <= b.day <= end), key=lambda b: b.day)

    def corporate_actions(self, symbols: Iterable[str], start: dt.date, end: dt.date
                          ) -> tuple[list[Split], list[CashDividend]]:
        wanted = _symbols(symbols)
        if not wanted or end < start:
            return [], []
        client = self._client(CorporateActionsClient)
        splits: list[Split] = []
        dividends: list[CashDividend] = []
        for chunk in _chunks(wanted, SYMBOLS_PER_REQUEST):
            # limit=None: the request's default (1000) would be a cap on the whole listing,
            # which the SDK stops at; without it every page of 1000 is read.
            request = CorporateActionsRequest(symbols=chunk, types=list(ACTION_TYPES),
                                              start=start, end=end + PROCESS_LAG, limit=None)
            answer = _mapping(self._ask("read the corporate actions",
                                   lambda r=request: client.get_corporate_actions(r)),
                              "corporate actions")
            for kind in ("forward_splits", "reverse_splits"):
                for raw in _list(answer.get(kind) or [], kind):
                    split = _split(kind, raw)
                    if split.symbol in chunk and start <= split.effective_date <= end:
                        splits.append(split)
            for raw in _list(answer.get("cash_dividends") or [], "cash_dividends"):
                dividend = _dividend(raw)
                if dividend.symbol in chunk and start <= dividend.ex_date <= end:
                    dividends.append(dividend)
        splits.sort(key=lambda s: (s.effective_date, s.symbol))
        dividends.sort(key=lambda d: (d.ex_date, d.symbol))
        return splits, dividends


# --------------------------------------------------------------------------------------------
# An SDK error as the port's
# --------------------------------------------------------------------------------------------


def _api_failure(exc: APIError, action: str, now: Callable[[], float]) -> FeedError:
    status, code, message = alpaca_http.api_error_parts(exc)
    detail = f"code {code}: {message}" if code else message
    said = f"Alpaca answered {status} to {action} ({detail})"
    if status in (401, 403):
        return FeedAuthRefused(f"{said}: check ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY, "
                               "and that the account may read this feed (ALPACA_DATA_FEED)")
    if status == 429:
        response = exc.response
        wait = alpaca_http.reset_in(response, now) if response is not None else None
        when = f"; its limit resets in {wait:.0f} s" if wait is not None else ""
        return FeedRateLimited(f"{said}{when}: try again later")
    if status is None or status >= 500:
        return FeedUnavailable(said)
    return FeedRequestRefused(said)


# --------------------------------------------------------------------------------------------
# Reading the answers (the shapes of Alpaca's market-data API reference)
# --------------------------------------------------------------------------------------------


def _bad(what: str, value) -> FeedBadResponse:
    return FeedBadResponse(f"Alpaca sent {what} that is not as documented: {value!r:.200}")


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{what}", value)
    return value


def _list(value, what: str) -> list:
    if not isinstance(value, list):
        raise _bad(f"{what}", value)
    return value


def _field(raw, name: str, what: str):
    if not isinstance(raw, dict) or raw.get(name) is None:
        raise _bad(f"{what} without {name!r}", raw)
    return raw[name]


def _price(value, what: str) -> Decimal:
    """A JSON number (a Decimal from the session's decoder; an int stays exact) as a
    positive Decimal."""
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _bad(what, value) from None
    if isinstance(value, bool) or not price.is_finite() or price <= 0:
        raise _bad(what, value)
    return price


def _moment(value, what: str) -> dt.datetime:
    try:  # RFC 3339 with up to nanoseconds: Python keeps microseconds
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(what, value) from None
    if moment.tzinfo is None:
        raise _bad(what, value)
    return moment


def _date(value, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _bad(what, value) from None


def _trade(symbol: str, raw) -> Trade:
    return Trade(symbol=symbol, price=_price(_field(raw, "p", "a trade"), "a trade price"),
                 ts=_moment(_field(raw, "t", "a trade"), "a trade time"))


def _bar(symbol: str, raw) -> Bar:
    day = _moment(_field(raw, "t", "a bar"), "a bar time").astimezone(NEW_YORK).date()
    volume = raw.get("v")
    if volume is not None:
        try:
            volume = int(Decimal(volume))  # IEX and SIP volumes are whole shares
        except (InvalidOperation, ValueError, TypeError):
            raise _bad("a bar volume", volume) from None
    return Bar(symbol=symbol, day=day,
               open=_price(_field(raw, "o", "a bar"), "a bar open"),
               high=_price(_field(raw, "h", "a bar"), "a bar high"),
               low=_price(_field(raw, "l", "a bar"), "a bar low"),
               close=_price(_field(raw, "c", "a bar"), "a bar close"), volume=volume)


def _rates(raw, what: str) -> tuple[int, int]:
    """new_rate:old_rate as whole numbers in lowest terms (Alpaca sends whole numbers; a
    fractional pair such as 1.5:1 becomes 3:2)."""
    ratio = (Fraction(_price(_field(raw, "new_rate", what), f"{what} new_rate"))
             / Fraction(_price(_field(raw, "old_rate", what), f"{what} old_rate")))
    if ratio == 1:
        raise _bad(f"{what} that changes nothing", raw)
    return ratio.numerator, ratio.denominator


def _key(raw, *parts) -> str:
    """Alpaca's id for the action, or (older answers carry none) what identifies it."""
    ident = raw.get("id")
    return f"alpaca:{ident}" if ident else ":".join(["alpaca", *map(str, parts)])


def _split(kind: str, raw) -> Split:
    what = "a forward split" if kind == "forward_splits" else "a reverse split"
    symbol = str(_field(raw, "symbol", what)).upper()
    ex_date = _date(_field(raw, "ex_date", what), f"{what} ex_date")
    new_rate, old_rate = _rates(raw, what)
    return Split(symbol=symbol, effective_date=ex_date, new_rate=new_rate, old_rate=old_rate,
                 key=_key(raw, kind[:-1], symbol, ex_date, f"{new_rate}:{old_rate}"))


def _dividend(raw) -> CashDividend:
    what = "a cash dividend"
    symbol = str(_field(raw, "symbol", what)).upper()
    ex_date = _date(_field(raw, "ex_date", what), f"{what} ex_date")
    payable = raw.get("payable_date")
    rate = _price(_field(raw, "rate", what), f"{what} rate")
    return CashDividend(symbol=symbol, ex_date=ex_date,
                        payable_date=_date(payable, f"{what} payable_date") if payable else None,
                        rate=rate, key=_key(raw, "cash_dividend", symbol, ex_date, rate))
