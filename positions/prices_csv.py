"""Reading price files: ``ticker,price,ts`` or Yahoo-style ``Date,…,Close,…`` (with a ticker)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from positions.models import price_ts_error
from positions.services import TICKER_RE
from volbal import clock

MARKET_CLOSE = dt.time(16, 0)
PRICE_PLACES = Decimal("0.000001")  # prices keep 6 decimal places
PRICE_LIMIT = Decimal(10) ** 16  # the price column holds 22 digits, 6 of them decimals
MAX_BAD_LINES_SHOWN = 20


class PriceFileError(ValueError):
    """A file that cannot be imported, with the line number when a row is at fault."""


def parse_ts(raw: str) -> dt.datetime:
    """ISO date or date-time. A date is that day's 16:00 close in the trading time zone; a
    time without an offset is UTC."""
    raw = raw.strip()
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            return dt.datetime.combine(day, MARKET_CLOSE, tzinfo=clock.trading_tz())
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _price_row(row: list[str], i_ticker: int | None, i_price: int, i_ts: int,
               ticker: str | None) -> dict:
    """One row as ``{ticker, price, ts}``, or ValueError saying what is wrong with it."""
    try:
        raw_price = row[i_price].strip()
        try:
            price = Decimal(raw_price)
        except InvalidOperation:
            raise ValueError(f"price {raw_price!r} is not a number") from None
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price {raw_price!r} is not a positive number")
        if price >= PRICE_LIMIT:
            raise ValueError(f"price {raw_price!r} is too large (at most 16 digits before "
                             "the decimal point)")
        price = price.quantize(PRICE_PLACES)  # 6 decimal places, half-even
        if price <= 0:
            raise ValueError(f"price {raw_price!r} rounds to zero at 6 decimal places")
        raw_ticker = row[i_ticker] if i_ticker is not None else ticker
        symbol = raw_ticker.strip().upper()
        if not TICKER_RE.match(symbol):
            raise ValueError(f"ticker {raw_ticker.strip()!r} is not valid (a letter, then "
                             "up to 15 letters, digits, '.' or '-')")
        ts = parse_ts(row[i_ts])
        future = price_ts_error(ts)
        if future:
            raise ValueError(f"ts {future}")
        return {"ticker": symbol, "price": price, "ts": ts}
    except IndexError:
        raise ValueError("too few columns") from None


def read_prices(lines: Iterator[str], *, ticker: str | None = None) -> list[dict]:
    """Parse every row, or raise PriceFileError naming every bad line (the first
    :data:`MAX_BAD_LINES_SHOWN`, then how many more): nothing half-read."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise PriceFileError("the file is empty") from None
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    if {"ticker", "price", "ts"} <= set(columns):
        i_ticker, i_price, i_ts = columns["ticker"], columns["price"], columns["ts"]
    elif {"date", "close"} <= set(columns):
        if not ticker:
            raise PriceFileError("a Date/Close file needs --ticker")
        if not TICKER_RE.match(ticker.strip().upper()):
            raise PriceFileError(f"--ticker {ticker.strip()!r} is not valid (a letter, then up "
                                 "to 15 letters, digits, '.' or '-')")
        i_ticker, i_price, i_ts = None, columns["close"], columns["date"]
    else:
        raise PriceFileError(
            f"line 1: expected columns ticker,price,ts or Date,Close; found {','.join(header)}")
    rows, bad, bad_count = [], [], 0
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            rows.append(_price_row(row, i_ticker, i_price, i_ts, ticker))
        except ValueError as exc:
            bad_count += 1
            if len(bad) < MAX_BAD_LINES_SHOWN:
                bad.append(f"line {line_no}: {exc}")
    if bad:
        more = bad_count - len(bad)
        head = bad[0] if bad_count == 1 else f"{bad_count} bad rows:\n  " + "\n  ".join(bad)
        raise PriceFileError(head + (f"\n  and {more} more bad rows" if more else ""))
    if not rows:
        raise PriceFileError("the file has a header but no prices")
    return rows
