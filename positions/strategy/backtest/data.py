"""Price series and dividends for the backtest: CSV files, posted points and bundled samples.

Pure: numpy and the standard library only (no Django, no pandas). Every problem with the input
is a :class:`DataError` whose message is one line a person can act on.

Times
    A bar's time is kept as its *wall-clock* time (``datetime64[s]``), the local time written in
    the data; when the data carries UTC offsets they are kept beside it, so the order of bars is
    checked on absolute time while the *calendar day* of a bar (the daily order cap, the daily
    resampling of the metrics, dividend dates) is the local date as written.

Sample data
    ``bokeh_sampledata`` ships public-domain daily prices (Quandl WIKI, 2000-03-01 to
    2013-03-01) with an unadjusted ``Close`` and a split- and dividend-adjusted ``Adj Close``. The
    ratio f = AdjClose / Close is constant between corporate actions; where it jumps between two
    consecutive days the later day is an ex-date: a ratio f[i-1]/f[i] close to 1/k (k = 2, 3, ...)
    is a k-for-1 split, any other ratio below one is a cash dividend of
    Close[i-1] * (1 - f[i-1]/f[i]) per share (the back-adjustment a data vendor applies). Prices are
    then split-adjusted (earlier closes divided by later split factors) so a split is not a crash;
    dividends are not adjusted out, they are credited as cash. The derived amounts carry the
    vendor's rounding noise (a few tenths of a cent), so they are rounded to the cent. The data has
    no payment dates: the pay date is taken as the ex-date plus 28 days, a typical lag.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import importlib.util
import math
import mmap
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from positions.strategy import rules

DATE_COLUMNS = ("date", "datetime", "time", "timestamp")
CLOSE_COLUMNS = ("close", "price")
SAMPLE_TICKERS = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
SAMPLE_PAY_LAG_DAYS = 28

_MIN_TIME = np.datetime64("1800-01-01T00:00:00", "s")
_MAX_TIME = np.datetime64("2300-01-01T00:00:00", "s")
_EPOCH = dt.datetime(1970, 1, 1)


class DataError(ValueError):
    """Bad input data: one line saying what and where."""


@dataclass(frozen=True, eq=False)
class Series:
    """Bars in ascending time: wall-clock times, prices, optional UTC offsets (seconds east)."""

    times: np.ndarray  # datetime64[s], local wall-clock time of each bar
    prices: np.ndarray  # float64, > 0
    offsets: np.ndarray | None = None  # int64 seconds east of UTC, None for naive times
    name: str = ""
    first_line: int = 2  # the file line of bar 0 (header = line 1), for messages
    lines: np.ndarray | None = None  # the file line of each bar, when not consecutive
    # OHLC bars (docs/backtests.md#resting-orders-fill-limit): the open, high and low of each
    # bar beside its close (``prices``), all three or none; None for a series of closes.
    opens: np.ndarray | None = None
    highs: np.ndarray | None = None
    lows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prices)

    def __getstate__(self) -> dict:
        """What pickle and deepcopy take: the fields and the cached values, less
        ``price_list`` (a memoryview of ``prices``, which neither can copy; it is cheap to
        make again)."""
        state = dict(self.__dict__)
        state.pop("price_list", None)
        return state

    @cached_property
    def seconds(self) -> np.ndarray:
        """Absolute time of each bar in seconds (int64): wall time minus the UTC offset."""
        s = self.times.astype("datetime64[s]", copy=False).view(np.int64)
        return s if self.offsets is None else s - self.offsets

    @cached_property
    def days(self) -> np.ndarray:
        """Calendar day number (days since 1970-01-01, int64) of each bar, as written."""
        return self.times.astype("datetime64[s]", copy=False).view(np.int64) // 86400

    @cached_property
    def day_ends(self) -> np.ndarray:
        """Index of the last bar of each calendar day."""
        d = self.days
        return np.append(np.flatnonzero(d[1:] != d[:-1]), len(self) - 1)

    @cached_property
    def price_list(self):
        """The prices as a sequence of Python floats (indexing gives a float, as a list's
        would): the backtest compares a candidate's first bars one by one on it
        (engine._scan), in every run over this series (a sweep's cells, a backtest's
        benchmarks). A memoryview of the float64 array: no copy, where a list of a million
        floats costs 20 ms to build."""
        p = self.prices
        if p.dtype == np.float64 and p.flags.c_contiguous:
            return memoryview(p)
        return p.tolist()

    @cached_property
    def intraday(self) -> bool:
        """Whether any bar has a time of day (or the data UTC offsets). Read a piece at a time,
        so minute bars answer from their first piece."""
        if self.offsets is not None:
            return True
        s = self.times.astype("datetime64[s]", copy=False).view(np.int64)
        return any((s[a:a + 65536] % 86400).any() for a in range(0, len(s), 65536))

    def label(self, i: int) -> str:
        """ISO text of bar ``i``: a date for daily data, else a date and time (with offset)."""
        t = self.times[i]
        if not self.intraday:
            return str(t.astype("datetime64[D]"))
        text = str(t.astype("datetime64[s]"))
        if self.offsets is not None:
            off = int(self.offsets[i])
            sign = "+" if off >= 0 else "-"
            off = abs(off)
            text += f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"
        return text

    def between(self, start: str | None, end: str | None) -> Series:
        """The bars from ``start`` to ``end`` inclusive (ISO dates or times; a date-only end
        includes that whole day). Raises DataError for a bad bound or an empty range."""
        lo = hi = None
        if start:
            lo = parse_bound(start, "start")
        if end:
            hi = parse_bound(end, "end")
            if len(end.strip()) <= 10:  # a date: the whole day
                hi = hi + np.timedelta64(86399, "s")
        if lo is not None and hi is not None and hi < lo:
            raise DataError(f"the start {start} is after the end {end}")
        # Compared on wall-clock time, as written (not searchsorted: with UTC offsets the wall
        # clock can step back an hour in the autumn).
        inside = np.ones(len(self), bool)
        if lo is not None:
            inside &= self.times >= lo
        if hi is not None:
            inside &= self.times <= hi
        idx = np.flatnonzero(inside)
        i, j = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
        if j <= i:
            span = (f" (the data runs from {self.label(0)} to {self.label(len(self) - 1)})"
                    if len(self) else "")
            raise DataError(f"no bars between {start or 'the start'} and {end or 'the end'}"
                            f"{span}")
        if i == 0 and j == len(self):
            return self
        return self.cut(i, j)

    def cut(self, i: int, j: int) -> Series:
        """Bars ``i`` to ``j - 1``, with everything they carry."""

        def part(a):
            return None if a is None else a[i:j]

        return Series(self.times[i:j], self.prices[i:j], part(self.offsets), self.name,
                      self.first_line + i, part(self.lines), part(self.opens), part(self.highs),
                      part(self.lows))

    @property
    def ohlc(self) -> bool:
        return self.lows is not None


@dataclass(frozen=True)
class Dividend:
    ex_date: dt.date
    pay_date: dt.date
    dps: Decimal


# --------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------


def parse_bound(text: str, what: str) -> np.datetime64:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataError(f"{what} {text!r} is not an ISO date or time (e.g. 2010-01-31)") from None
    if value.tzinfo is not None:
        value = value.replace(tzinfo=None)
    return np.datetime64(value.replace(microsecond=0), "s")



# numpy releases the GIL over a cast of more than 500 items; a bytes-to-datetime cast that then
# meets a time it cannot parse raises without the GIL and kills the process (SIGSEGV, numpy
# 2.4), where a shorter cast raises ValueError. Casting bytes in pieces of at most this many
# keeps every failure a ValueError (the caller then names the line); the pieces cost nothing
# measurable (a million times: the same ~20-35 ms either way).
_CAST_PIECE = 256


def _cast_times(raw: np.ndarray) -> np.ndarray:
    """``raw.astype("datetime64[s]")``, in pieces when ``raw`` holds bytes (see _CAST_PIECE)."""
    n = len(raw)
    if raw.dtype.kind != "S" or n <= _CAST_PIECE:
        return raw.astype("datetime64[s]")
    out = np.empty(n, "datetime64[s]")
    for i in range(0, n, _CAST_PIECE):
        out[i:i + _CAST_PIECE] = raw[i:i + _CAST_PIECE].astype("datetime64[s]")
    return out


def parse_times(raw: np.ndarray, lines=2) -> tuple[np.ndarray, np.ndarray | None]:
    """ISO dates or times (a bytes or str array) -> (wall-clock datetime64[s], offsets|None).

    The fast path is numpy's C parser; times with a UTC offset or a ``Z`` (which numpy will not
    keep) and anything numpy refuses go through ``datetime.fromisoformat`` one by one, which also
    names the first bad line: ``lines`` is the line of the first item, or of each item."""
    if len(raw) == 0:
        return np.empty(0, "datetime64[s]"), None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            wall = _cast_times(raw)
        if np.isnat(wall).any() or wall.min() < _MIN_TIME or wall.max() >= _MAX_TIME:
            raise ValueError("out of range")
        return wall, None
    except (ValueError, TypeError, Warning):
        pass
    return _parse_times_slow(raw, lines)


def _parse_times_slow(raw, lines) -> tuple[np.ndarray, np.ndarray | None]:
    def line_of(i: int) -> int:
        return lines + i if isinstance(lines, int) else int(lines[i])

    n = len(raw)
    wall = np.empty(n, np.int64)
    offsets = np.zeros(n, np.int64)
    aware = None
    for i, item in enumerate(raw.tolist()):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        text = text.strip()
        try:
            value = dt.datetime.fromisoformat(text)
            if not dt.datetime(1800, 1, 1) <= value.replace(tzinfo=None) < dt.datetime(2300, 1, 1):
                raise ValueError
        except ValueError:
            raise DataError(f"line {line_of(i)}: {text!r} is not an ISO date or time "
                            "(e.g. 2010-01-31 or 2010-01-31 09:30:00)") from None
        has_tz = value.tzinfo is not None
        if aware is None:
            aware = has_tz
        elif aware != has_tz:
            raise DataError(f"line {line_of(i)}: {text!r} mixes times with and without a "
                            "UTC offset")
        if has_tz:
            offsets[i] = int(value.utcoffset().total_seconds())
            value = value.replace(tzinfo=None)
        wall[i] = (value - _EPOCH) // dt.timedelta(seconds=1)
    return wall.astype("datetime64[s]"), (offsets if aware else None)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_series(series: Series, where: str = "line") -> Series:
    """Refuse empty data, non-positive or non-finite prices and times that are not strictly
    ascending (naming the first offending bar). Returns the series."""
    n = len(series)
    if n == 0:
        raise DataError("the data has no bars")
    p = series.prices
    if not (p.min() > 0 and np.isfinite(p.max())):  # NaN fails the first test
        i = int(np.argmax(~(np.isfinite(p) & (p > 0))))
        raise DataError(f"{_where(series, i, where)} ({series.label(i)}): the price must be a "
                        f"positive number, not {p[i]:g}")
    if n > 1:
        t = series.seconds
        bad = t[1:] <= t[:-1]
        if bad.any():
            i = int(np.argmax(bad)) + 1
            if t[i] == t[i - 1]:
                raise DataError(f"{_where(series, i, where)}: duplicate time {series.label(i)}")
            raise DataError(f"{_where(series, i, where)}: times are not in ascending order "
                            f"({series.label(i)} comes after {series.label(i - 1)})")
    return series


def _where(series: Series, i: int, where: str) -> str:
    if where == "line":
        line = series.first_line + i if series.lines is None else int(series.lines[i])
        return f"line {line}"
    return f"{where}[{i}]"


# --------------------------------------------------------------------------------------------
# CSV files
# --------------------------------------------------------------------------------------------


def _find_column(header: list[str], names: tuple[str, ...], what: str, path) -> int:
    lowered = [h.strip().strip('"').strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    found = ", ".join(h.strip() for h in header) or "nothing"
    raise DataError(f"{path}: no {what} column (found: {found})")


def load_csv(path: str | Path, *, ohlc: bool = False) -> Series:
    """A CSV with a Date and a Close column (names matched case-insensitively; Yahoo's download
    works as is). Raises DataError for a missing file or column, a bad value, unsorted or
    duplicate times, or non-positive prices. ``ohlc=True`` also reads Open, High and Low when
    the file has all three (:func:`with_ohlc`; a resting-order backtest reads the bar's range).

    Three readers, fastest first, each falling back to the next on anything unusual: a
    vectorized numpy parser for plain files (no quotes, ``\\n`` line ends, one time format per
    block, plain decimal prices), numpy's ``loadtxt``, and the ``csv`` module, which names the bad
    line."""
    path = Path(path)
    series = _load_closes(path)
    return with_ohlc(series, path) if ohlc else series


OPEN_COLUMNS = ("open",)
HIGH_COLUMNS = ("high",)
LOW_COLUMNS = ("low",)


def with_ohlc(series: Series, path: str | Path) -> Series:
    """``series`` (read from ``path``) with the Open, High and Low of each of its bars when the
    file's header has all three columns, else ``series`` as it is. Each bar's row is found by
    its file line; DataError names a line whose value is not a positive number or whose range
    does not hold its open and close (low <= open, close <= high)."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        try:
            cols = [_find_column(header, names, what, path) for names, what in
                    ((OPEN_COLUMNS, "Open"), (HIGH_COLUMNS, "High"), (LOW_COLUMNS, "Low"))]
        except DataError:
            return series
        n = len(series)
        want = (series.lines if series.lines is not None
                else np.arange(series.first_line, series.first_line + n))
        at = {int(line): i for i, line in enumerate(want.tolist())}
        out = np.full((3, n), np.nan)
        for row in reader:
            i = at.get(reader.line_num)
            if i is None:
                continue
            for k, c in enumerate(cols):
                cell = row[c].strip() if c < len(row) else ""
                try:
                    out[k, i] = float(cell)
                except ValueError:
                    raise DataError(f"{path}: line {reader.line_num}: the {header[c].strip()} "
                                    f"{cell!r} is not a number") from None
    o, h, lo = out
    close = series.prices
    for values, what in ((o, "Open"), (h, "High"), (lo, "Low")):
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{path}: {_where(series, i, 'line')} ({series.label(i)}): the "
                            f"{what} must be a positive number, not {values[i]:g} (prices "
                            "must be positive)")
    bad = ~((lo <= np.minimum(o, close))
            & (h >= np.maximum(o, close)))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}: {_where(series, i, 'line')} ({series.label(i)}): the bar's "
                        f"low and high must hold its open and close (open {o[i]:g}, high "
                        f"{h[i]:g}, low {lo[i]:g}, close {close[i]:g})")
    return dataclasses.replace(series, opens=o, highs=h, lows=lo)


def _load_closes(path: Path) -> Series:
    try:
        with open(path, "rb") as f:
            head = f.readline()
            parsed = None
            text = head.decode("utf-8-sig", "replace").strip()
            if text:
                header = next(csv.reader([text]))
                di = _find_column(header, DATE_COLUMNS, "Date", path)
                ci = _find_column(header, CLOSE_COLUMNS, "Close", path)
                parsed = _parse_plain_file(f, len(head), len(header), di, ci)
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from None
    if not text:
        raise DataError(f"{path}: the file is empty")
    try:
        if parsed is not None:  # the plain reader: one row per line, so indices are lines
            return _checked(Series(parsed[0], parsed[1], None, path.stem), path)
        parsed = _parse_loadtxt(path, di, ci)
        if parsed is not None:
            try:
                return _checked(Series(parsed[0], parsed[1], None, path.stem), path)
            except DataError:
                pass  # loadtxt skips blank lines: let the careful reader name the line
    except MemoryError:  # pragma: no cover - a file far larger than memory
        raise DataError(f"{path}: too large to read") from None
    # The careful path: UTC offsets, odd rows, and a message naming the bad line.
    times_raw, prices, lines = _read_csv_slow(path, di, ci, len(header))
    try:
        wall, offsets = parse_times(times_raw, lines) if len(prices) else (None, None)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return _checked(Series(wall, prices, offsets, path.stem, lines=lines), path)


def _checked(series: Series, path: Path) -> Series:
    if len(series) == 0:
        raise DataError(f"{path}: no rows after the header")
    try:
        return check_series(series)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def _times_ok(wall: np.ndarray) -> bool:
    return not len(wall) or not (np.isnat(wall).any() or wall.min() < _MIN_TIME
                                 or wall.max() >= _MAX_TIME)


def _parse_loadtxt(path: Path, di: int, ci: int):
    """numpy's C reader: naive ISO times and prices in one pass; None when it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rows = np.loadtxt(
                path, delimiter=",", skiprows=1, usecols=(di, ci), ndmin=1, comments=None,
                dtype=[("t", "M8[s]"), ("p", "f8")], quotechar='"', encoding="utf-8",
            )
    except (ValueError, TypeError, OverflowError, Warning, UnicodeError):
        return None
    wall = np.ascontiguousarray(rows["t"])
    if not _times_ok(wall):
        return None
    return wall, np.ascontiguousarray(rows["p"])


_POW10 = 10.0 ** np.arange(23)
_MISSING = ("", "null")


_BLOCK = 1 << 21  # bytes per block of the plain reader: small, reused buffers


def _parse_plain_file(f, offset: int, ncols: int, di: int, ci: int):
    """The plain reader over a memory map of the file, block by block (a block ends at a line
    end), so its temporaries stay small and are reused; None when it cannot read the file."""
    try:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (ValueError, OSError):  # empty file, or not mappable
        return None
    with m:
        size = len(m)
        if offset >= size or m.find(b'"', offset) >= 0 or m.find(b"\r", offset) >= 0:
            return None
        buf = np.frombuffer(m, np.uint8)
        try:
            walls, prices = [], []
            a = offset
            while a < size:
                z = m.find(b"\n", min(a + _BLOCK, size - 1))
                z = size if z < 0 else z + 1
                part = _parse_plain(buf[a:z], ncols, di, ci)
                if part is None:
                    return None
                walls.append(part[0])
                prices.append(part[1])
                a = z
            del part
        finally:
            del buf
    if len(walls) == 1:
        return walls[0], prices[0]
    return np.concatenate(walls), np.concatenate(prices)


_LAYOUTS = {  # the usual fixed-width ISO times: {width: ((column, allowed bytes), ...)}
    10: ((4, b"-"), (7, b"-")),  # YYYY-MM-DD
    16: ((4, b"-"), (7, b"-"), (10, b" T"), (13, b":")),  # YYYY-MM-DD HH:MM
    19: ((4, b"-"), (7, b"-"), (10, b" T"), (13, b":"), (16, b":")),  # YYYY-MM-DD HH:MM:SS
}


def _zoned(rows: np.ndarray) -> bool:
    """Whether fixed-width time fields (uint8 rows) may carry a UTC offset or a ``Z``: those go
    to the careful reader, never to numpy's parser, which warns about them, and numpy 2.4
    crashes (a segmentation fault) when it warns in a cast of a thousand byte strings or more.
    The usual layouts, their separators in place, leave no room for one (a ``Z`` or a sign in
    a digit's place is an error numpy raises, not a warning); any other is searched."""
    layout = _LAYOUTS.get(rows.shape[1])
    if layout is not None:
        for col, allowed in layout:
            c = rows[:, col]
            ok = c == allowed[0]
            if len(allowed) > 1:
                ok |= c == allowed[1]
            if not ok.all():
                break
        else:
            return False
    tail = rows[:, 10:]
    return bool(((tail == 43) | (tail == 45) | ((tail | 32) == 122)).any())  # + - Z z


def _parse_plain(b: np.ndarray, ncols: int, di: int, ci: int):
    """A vectorized reader for a block of plain lines (uint8); None whenever anything is unusual.

    Every line must hold exactly ``ncols - 1`` commas and end with ``\\n`` (no quotes, no
    ``\\r``, no blank line); the time field must have one width on every line (one ISO format,
    parsed by numpy's datetime parser) and the price field must be digits with at most one
    point. A price is then its decimal digits as an integer divided by a power of ten: both exact
    in binary, so the quotient is the correctly rounded value, the same float as ``float(text)``.

    The usual file, a time then a price, is split at its line ends only: the time's width is
    the first line's, so each line's comma must follow it (a line with another comma fails the
    time's or the price's reading)."""
    if b[-1] != 10:
        b = np.append(b, np.uint8(10))
    nl = b == 10
    if ncols == 2 and di == 0:
        ends = np.flatnonzero(nl)
        n = len(ends)
        w = int(np.argmax(b[: int(ends[0])] == 44)) if n and ends[0] else 0
        if w < 8 or w > 40:
            return None
        ts = np.empty(n, np.int64)
        ts[0] = 0
        ts[1:] = ends[:-1] + 1
        te = ts + w
        if int(te[-1]) >= len(b) or not (b[te] == 44).all():
            return None
        ps, pe = te + 1, ends
    else:
        seps = np.flatnonzero(nl | (b == 44))
        n = int(np.count_nonzero(nl))
        if n == 0 or len(seps) != n * ncols:
            return None
        seps = seps.reshape(n, ncols)
        if not nl[seps[:, -1]].all():
            return None  # a comma where a line should end: lines with other field counts
        line_start = np.empty(n, np.int64)
        line_start[0] = 0
        line_start[1:] = seps[:-1, -1] + 1

        def field(k: int):
            return (line_start if k == 0 else seps[:, k - 1] + 1), seps[:, k]

        ts, te = field(di)
        width = te - ts
        w = int(width[0])
        if w < 8 or w > 40 or not (width == w).all():
            return None
        ps, pe = field(ci)

    # Times: one width everywhere, then numpy's ISO parser over the gathered fixed-width rows.
    rows = sliding_window_view(b, w)[ts]
    if _zoned(rows):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            wall = _cast_times(rows.view(f"S{w}").ravel())
    except (ValueError, TypeError, Warning):
        return None
    if not _times_ok(wall):
        return None

    # Prices, column by column over a right-aligned window that ends at the field's end (bytes
    # left of the field count as '0': leading zeros). The point is read as a 0 digit and
    # taken out afterwards: total = int_part * 10**(f+1) + frac_part, f digits after it.
    pw = pe - ps
    mw = int(pw.max())
    short = int(pw.min())
    if short < 1 or mw > 16 or int(pe.min()) < mw:
        return None
    total = _fixed_prices(_words(b), pe, pw, mw, short) if int(pe.min()) >= 8 else None
    if total is not None:
        return wall, total
    idx = pe - mw
    total = np.zeros(n, np.float64)
    after = np.zeros(n, np.uint8)  # digits after the point
    dots = np.zeros(n, np.uint8)
    ok = np.ones(n, bool)
    for k in range(mw):
        c = b[idx]
        idx += 1
        if k < mw - short:
            c = np.where(pw >= mw - k, c, np.uint8(48))
        isdot = c == 46
        d = c - np.uint8(48)
        ok &= (d < 10) | isdot
        total *= 10.0
        total += d * ~isdot
        after += dots
        dots += isdot
    if not ok.all() or dots.max() > 1 or (pw - dots < 1).any() or total.max() >= 2.0 ** 53:
        return None
    scale = _POW10[after]
    low = np.fmod(total, scale)
    total -= low
    total /= np.where(dots > 0, 10.0, 1.0)
    total += low
    total /= scale
    return wall, total


# The prices of the usual layout (:func:`_fixed_prices`) are read 8 bytes of text at once, as one
# little-endian uint64 (its first character in the low byte): one numpy operation treats a
# whole field of each row.
_U64 = np.dtype("<u8")
_ZEROS = int.from_bytes(b"00000000", "little")
_SIXES = 0x0606060606060606
_HIGH_NIBBLES = 0xF0F0F0F0F0F0F0F0
_SIXTEENS = 0x1010101010101010  # the bit a digit value of 10 or more sets after + 6


def _words(b: np.ndarray) -> np.ndarray:
    """``words[i]`` = the 8 bytes ``b[i:i + 8]`` as a little-endian uint64 (a view, no copy)."""
    return np.ndarray((len(b) - 7,), _U64, b, 0, (1,))


def _digits_ok(x: np.ndarray) -> np.ndarray:
    """Rows whose every byte of ``x`` (text XOR '0', other bytes cleared) is a digit value."""
    return ((x & np.uint64(_HIGH_NIBBLES)) == 0) & (((x + np.uint64(_SIXES))
                                                     & np.uint64(_SIXTEENS)) == 0)


def _fixed_prices(words: np.ndarray, pe: np.ndarray, pw: np.ndarray, mw: int, short: int):
    """Prices of at most 8 characters that all have the same number of digits after the point
    (or none), as in most files: each row's field read as one word; None otherwise (the
    column-by-column reader takes them). The digits make an integer, exact in binary, divided by
    a power of ten (exact too): the correctly rounded quotient, the same float as ``float``."""
    if mw > 8:
        return None
    x = words[pe - 8]  # the field in the high bytes, what precedes it in the low ones
    # the number of digits after the point, from the first row (the point is 0x2E)
    text = int(x[0]).to_bytes(8, "little")[8 - int(pw[0]):]
    k = len(text) - 1 - text.index(b".") if b"." in text else None
    keep = np.left_shift(np.uint64(0xFFFFFFFFFFFFFFFF), ((8 - pw) * 8).astype(np.uint64))
    x ^= np.uint64(_ZEROS)
    x &= keep  # digit values; the bytes before the field 0 (leading zeros)
    if k is None:
        ok = _digits_ok(x)
    else:
        if short < max(k + 1, 2):
            return None  # a field that ends before its point, or a point alone
        at = 8 * (7 - k)  # the point's bit offset
        if not ((x >> np.uint64(at)) & np.uint64(0xFF) == 0x1E).all():  # '.' ^ '0'
            return None
        below = np.uint64((1 << at) - 1)
        above = np.uint64(~((1 << (at + 8)) - 1) & 0xFFFFFFFFFFFFFFFF)
        x = ((x & below) << np.uint64(8)) | (x & above)  # the point taken out
        ok = _digits_ok(x)
    if not ok.all():
        return None
    # 8 digits (the first in the low byte) to an integer: pairs, then fours, then eight.
    x = x * np.uint64(10) + (x >> np.uint64(8))
    x &= np.uint64(0x00FF00FF00FF00FF)
    x = x * np.uint64(100) + (x >> np.uint64(16))
    x &= np.uint64(0x0000FFFF0000FFFF)
    x = x * np.uint64(10000) + (x >> np.uint64(32))
    x &= np.uint64(0xFFFFFFFF)
    total = x.astype(np.float64)
    if k:
        total /= _POW10[k]
    return total


def _read_csv_slow(path: Path, di: int, ci: int, width: int):
    """The ``csv`` module: (times, prices, file line of each row); empty or "null" prices are
    skipped."""
    times: list[str] = []
    prices: list[float] = []
    lines: list[int] = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(di, ci):
                raise DataError(f"{path}: line {line} has {len(row)} fields, the header has "
                                f"{width}")
            cell = row[ci].strip()
            if cell.lower() in _MISSING:
                continue  # no price, no bar (Yahoo marks days without trading "null")
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{path}: line {line}: the Close {cell!r} is not a "
                                "number") from None
            if not (math.isfinite(value) and value > 0):
                raise DataError(f"{path}: line {line} ({row[di].strip()}): the price must be a "
                                f"positive number, not {cell}")
            times.append(row[di].strip())
            prices.append(value)
            lines.append(line)
    return (np.array(times, dtype=object), np.array(prices, dtype=np.float64),
            np.array(lines, dtype=np.int64))


def series_from_points(points: list[tuple[str, float]], name: str = "") -> Series:
    """A series from (ISO time, price) pairs, e.g. a posted body; DataError names the index."""
    times = []
    prices = np.empty(len(points), np.float64)
    for i, (ts, price) in enumerate(points):
        if not isinstance(ts, str):
            raise DataError(f"prices[{i}].ts must be an ISO date or time string")
        times.append(ts.strip())
        try:
            prices[i] = float(price)
        except (TypeError, ValueError):
            raise DataError(f"prices[{i}].price must be a number") from None
    try:
        raw = np.array(times, dtype="U64") if times else np.empty(0, "U64")
        wall, offsets = parse_times(raw, 0)
    except DataError as exc:
        raise DataError(str(exc).replace("line ", "prices[", 1).replace(":", "].ts:", 1)) from None
    return check_series(Series(wall, prices, offsets, name, first_line=0), where="prices")


# --------------------------------------------------------------------------------------------
# Dividends
# --------------------------------------------------------------------------------------------


def _date(text, what: str) -> dt.date:
    if isinstance(text, dt.date):
        return text
    try:
        return dt.datetime.fromisoformat(str(text).strip()).date()
    except ValueError:
        raise DataError(f"{what} {text!r} is not an ISO date") from None


def make_dividend(ex_date, pay_date, dps, where: str) -> Dividend:
    ex = _date(ex_date, f"{where}: ex_date")
    pay = ex if pay_date in (None, "") else _date(pay_date, f"{where}: pay_date")
    try:
        amount = dps if isinstance(dps, Decimal) else Decimal(str(dps).strip())
    except (InvalidOperation, ValueError):
        raise DataError(f"{where}: dps {dps!r} is not a number") from None
    if not (amount.is_finite() and amount > 0):
        raise DataError(f"{where}: dps must be greater than zero, not {dps}")
    if pay < ex:
        raise DataError(f"{where}: pay_date {pay} is before ex_date {ex}")
    return Dividend(ex, pay, amount)


def _csv_rows(path: str | Path, need: tuple[str, ...]):
    """The header (lower-cased) of a small CSV with the columns ``need``, and its non-blank
    rows as ``(where, row)``: a missing column or a short row is a DataError naming it."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror or exc}") from None
    with f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        for name in need:
            if name not in header:
                found = ", ".join(header) or "nothing"
                raise DataError(f"{path}: no {name} column (found: {found})")
        rows = []
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            where = f"{path}: line {reader.line_num}"
            if len(row) < len(header):
                raise DataError(f"{where} has {len(row)} fields, the header has {len(header)}")
            rows.append((where, row))
    return header, rows


def load_dividends(path: str | Path) -> list[Dividend]:
    """A CSV with columns ex_date, pay_date (blank: the ex-date) and dps."""
    header, rows = _csv_rows(path, ("ex_date", "dps"))
    ie = header.index("ex_date")
    ip = header.index("pay_date") if "pay_date" in header else None
    idps = header.index("dps")
    out = [make_dividend(row[ie], None if ip is None else row[ip], row[idps], where)
           for where, row in rows]
    return sorted(out, key=lambda d: (d.ex_date, d.pay_date))


def load_splits(path: str | Path) -> tuple[tuple[dt.date, Fraction], ...]:
    """A CSV with columns date and ratio (new:old shares, exactly: 2:1, or 1:3 for a reverse
    split; a decimal that states it exactly, 2 or 0.1, is taken too), for a series of
    unadjusted prices; sorted by date."""
    header, rows = _csv_rows(path, ("date", "ratio"))
    idate, iratio = header.index("date"), header.index("ratio")
    out = []
    for where, row in rows:
        try:
            ratio = rules.split_ratio(row[iratio].strip())
        except rules.RuleError as exc:
            raise DataError(f"{where}: {exc.message}") from None
        out.append((_date(row[idate], f"{where}: date"), ratio))
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------------
# Bundled samples (bokeh_sampledata)
# --------------------------------------------------------------------------------------------


def _sample_file() -> Path:
    spec = importlib.util.find_spec("bokeh_sampledata")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("sample data needs the bokeh_sampledata package (pip install "
                        "bokeh_sampledata)")
    path = Path(next(iter(spec.submodule_search_locations))) / "_data" / "stocks.csv.gz"
    if not path.exists():
        raise DataError(f"sample data file {path} is missing")
    return path


def load_sample(ticker: str) -> tuple[Series, list[Dividend]]:
    """Daily closes of a bundled ticker, split-adjusted, and the dividends derived from its
    adjusted closes (see the module notes)."""
    symbol = ticker.strip().upper()
    if symbol not in SAMPLE_TICKERS:
        raise DataError(f"unknown sample {ticker!r}: choose one of {', '.join(SAMPLE_TICKERS)}")
    series, dividends = _load_sample(symbol)
    return series, list(dividends)


@lru_cache(maxsize=len(SAMPLE_TICKERS))
def _load_sample(symbol: str) -> tuple[Series, tuple[Dividend, ...]]:
    dates: list[str] = []
    close: list[float] = []
    adj: list[float] = []
    ohl: list[tuple[float, float, float]] = []
    with gzip.open(_sample_file(), "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader)]
        it, idt, ic, ia, io, ih, il = (header.index(k) for k in (
            "ticker", "date", "close", "adj close", "open", "high", "low"))
        for row in reader:
            if row[it] == symbol:
                dates.append(row[idt])
                close.append(float(row[ic]))
                adj.append(float(row[ia]))
                ohl.append((float(row[io]), float(row[ih]), float(row[il])))
    c = np.array(close)
    factor = np.array(adj) / c
    ratio = factor[:-1] / factor[1:]  # f[i-1] / f[i], at the bar i = index + 1
    split = np.ones(len(c))  # split ratio k effective on bar i
    divs: list[tuple[int, float]] = []
    for j in np.flatnonzero(np.abs(ratio - 1) > 1e-6):
        r = float(ratio[j])
        k = round(1 / r)
        if k >= 2 and abs(r * k - 1) < 1e-4:
            split[j + 1] = k
        elif r < 1:
            divs.append((int(j) + 1, c[j] * (1 - r)))
    # Split factor still to come after each bar: earlier prices are divided by it.
    later = np.cumprod(split[::-1])[::-1]
    later = np.append(later[1:], 1.0)
    prices = np.round(c / later, 6)
    # The bars' open, high and low, split-adjusted like the closes (the range kept around the
    # rounded close).
    o, h, lo = (np.round(a / later, 6) for a in np.array(ohl).T)
    h = np.maximum(h, np.maximum(o, prices))
    lo = np.minimum(lo, np.minimum(o, prices))
    times = np.array(dates, dtype="datetime64[s]")
    dividends = []
    for i, amount in divs:
        ex = dt.date.fromisoformat(dates[i])
        dps = Decimal(f"{amount:.2f}") / Decimal(repr(float(later[i])))
        if dps <= 0:
            continue
        dividends.append(Dividend(ex, ex + dt.timedelta(days=SAMPLE_PAY_LAG_DAYS),
                                  dps.quantize(Decimal("0.000001"))))
    for a in (times, prices, o, h, lo):
        a.flags.writeable = False
    return (check_series(Series(times, prices, None, symbol, opens=o, highs=h, lows=lo)),
            tuple(dividends))
