"""The file feed: today's price, split and dividend files read through the port
(docs/marketdata.md#the-file-adapter), from one directory:

- ``prices.csv``: rows ``ticker,price,ts`` (``manage.py import_prices``'s format): trades.
- ``<SYMBOL>.csv``: one symbol's daily history with ``Date`` and ``Close`` columns, and
  ``Open``, ``High``, ``Low``, ``Volume`` when present (Yahoo's download; the Date/Close file
  of ``import_prices --ticker`` and of the backtest). Each close is also a trade at that day's
  close, 16:00 in ``VOLBAL_TRADING_TZ``, as ``import_prices`` reads a date.
- ``<SYMBOL>.splits.csv``: ``date,ratio`` (the backtest's ``--splits`` file: 4 for a 4-for-1
  split, 0.1 for 1-for-10).
- ``<SYMBOL>.dividends.csv``: ``ex_date,pay_date,dps`` (the backtest's ``--dividends`` file).

Rows are read and checked by the importers' own readers (:func:`positions.prices_csv.read_prices`,
the backtest's ``load_splits`` and ``load_dividends``): a bad file is a :class:`FeedBadResponse`
naming the file and line, as the import would refuse it. Symbols are checked as tickers before
they name a file. A symbol with no file is absent from the answers, as an unknown symbol is
from Alpaca's.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from positions.marketdata.port import (
    Bar,
    CashDividend,
    FeedBadResponse,
    FeedNotConfigured,
    FeedRequestRefused,
    FeedUnavailable,
    Split,
    Trade,
)
from positions.prices_csv import PRICE_PLACES, PriceFileError, read_prices
from positions.services import TICKER_RE
from positions.strategy.backtest import data as backtest_data
from volbal import clock

PRICES_FILE = "prices.csv"
_EXTRA_COLUMNS = ("open", "high", "low", "volume")


class FileFeed:
    name = "file"

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    # ----------------------------------------------------------------------------------------

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, Trade]:
        wanted = self._symbols(symbols)
        rows = [r for r in self._rows(PRICES_FILE) if r["ticker"] in wanted]
        for symbol in wanted:
            rows.extend(self._rows(f"{symbol}.csv", ticker=symbol))
        out: dict[str, Trade] = {}
        for row in rows:  # the latest by time; a later line wins a tie
            seen = out.get(row["ticker"])
            if seen is None or row["ts"] >= seen.ts:
                out[row["ticker"]] = Trade(row["ticker"], row["price"], row["ts"])
        return out

    def daily_bars(self, symbol: str, start: dt.date, end: dt.date) -> list[Bar]:
        symbols = self._symbols([symbol])
        path = self._path(f"{symbols[0]}.csv") if symbols else None
        if path is None or end < start:
            return []
        symbol, lines = symbols[0], self._lines(path)
        closes = self._parse(path, lambda: read_prices(iter(lines), ticker=symbol))
        extras = _extras(path, lines)
        by_day: dict[dt.date, Bar] = {}
        for row, extra in zip(closes, extras, strict=True):
            day = clock.trading_day(row["ts"])
            if start <= day <= end:  # a later row of the same day replaces an earlier one
                by_day[day] = Bar(symbol, day, close=row["price"], **extra)
        return [by_day[day] for day in sorted(by_day)]

    def corporate_actions(self, symbols: Iterable[str], start: dt.date, end: dt.date
                          ) -> tuple[list[Split], list[CashDividend]]:
        splits: list[Split] = []
        dividends: list[CashDividend] = []
        for symbol in self._symbols(symbols):
            path = self._path(f"{symbol}.splits.csv")
            if path is not None:
                for day, ratio in self._parse(path, lambda p=path: backtest_data.load_splits(p)):
                    exact = Fraction(ratio)  # 0.1 is 1:10; a decimal ratio is exact
                    if start <= day <= end:
                        splits.append(Split(
                            symbol, day, exact.numerator, exact.denominator,
                            key=f"file:{symbol}:split:{day}:{exact.numerator}:{exact.denominator}"))
            path = self._path(f"{symbol}.dividends.csv")
            if path is not None:
                for d in self._parse(path, lambda p=path: backtest_data.load_dividends(p)):
                    if start <= d.ex_date <= end:
                        dividends.append(CashDividend(
                            symbol, d.ex_date, d.pay_date, d.dps,
                            key=f"file:{symbol}:cash_dividend:{d.ex_date}:{d.dps}"))
        splits.sort(key=lambda s: (s.effective_date, s.symbol))
        dividends.sort(key=lambda d: (d.ex_date, d.symbol))
        return splits, dividends

    # ----------------------------------------------------------------------------------------

    def _symbols(self, symbols: Iterable[str]) -> list[str]:
        out = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
        bad = [s for s in out if not TICKER_RE.match(s)]
        if bad:
            raise FeedRequestRefused(f"{', '.join(map(repr, bad))} is not a ticker (a letter, "
                                     "then up to 15 letters, digits, '.' or '-')")
        return out

    def _path(self, name: str) -> Path | None:
        """The file ``name`` in the directory (any letter case), or None."""
        if not self.directory.is_dir():
            raise FeedNotConfigured(f"the price directory {self.directory} (VOLBAL_PRICE_FEED_DIR) "
                                    "does not exist")
        path = self.directory / name
        if path.is_file():
            return path
        lower = name.lower()
        return next((p for p in self.directory.iterdir()
                     if p.name.lower() == lower and p.is_file()), None)

    def _lines(self, path: Path) -> list[str]:
        try:
            return path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        except UnicodeDecodeError as exc:
            raise FeedBadResponse(f"{path}: not UTF-8 text (byte {exc.start} cannot be read)"
                                  ) from None
        except OSError as exc:
            raise FeedUnavailable(f"{path}: {exc.strerror or exc}") from None

    def _rows(self, name: str, ticker: str | None = None) -> list[dict]:
        path = self._path(name)
        if path is None:
            return []
        lines = self._lines(path)
        return self._parse(path, lambda: read_prices(iter(lines), ticker=ticker))

    @staticmethod
    def _parse(path: Path, read):
        try:
            return read()
        except PriceFileError as exc:
            raise FeedBadResponse(f"{path}: {exc}") from None
        except backtest_data.DataError as exc:  # its message names the file already
            raise FeedBadResponse(str(exc)) from None


def _extras(path: Path, lines: list[str]) -> list[dict]:
    """Open, High, Low (6 decimal places, as closes are stored) and Volume of each non-blank
    row, None where the file has no such column or the cell is blank."""
    reader = csv.reader(lines)
    header = [h.strip().lower() for h in next(reader, [])]
    at = {name: header.index(name) for name in _EXTRA_COLUMNS if name in header}
    out = []
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # read_prices skips the same rows
        extra: dict = dict.fromkeys(_EXTRA_COLUMNS)
        for name, i in at.items():
            raw = row[i].strip() if i < len(row) else ""
            if not raw:
                continue
            try:
                value = Decimal(raw)
                if not value.is_finite() or value < 0 or (name != "volume" and value == 0):
                    raise InvalidOperation
            except InvalidOperation:
                raise FeedBadResponse(f"{path}: line {line_no}: {name} {raw!r} is not a "
                                      "positive number") from None
            extra[name] = int(value) if name == "volume" else value.quantize(PRICE_PLACES)
        out.append(extra)
    return out
