"""Walk-forward validation (docs/strategy.md#research). Pure: no Django.

The series is split into consecutive windows of ``train`` then ``test`` length, the test windows
adjacent and not overlapping (the next window starts ``test`` later). For each window the best
cell of a sweep over its train part runs over its test part. The out-of-sample run is *one*
engine run over the span of the test windows whose configuration changes at the first bar of
each test window: so every test window starts from the state (shares, cash, receivable,
anchor, dividends still to be paid) the previous one ended with, and the first starts from the
usual opening purchase at its first bar. Its equity is the concatenation of the test windows.
The three benchmarks run over the same out-of-sample span.

Lengths are bars (``"250"``) or calendar spans (``"90d"``, ``"6m"``, ``"2y"``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from positions.strategy.backtest import benchmarks, engine, metrics
from positions.strategy.backtest import portfolio as pf
from positions.strategy.backtest import report as bt_report
from positions.strategy.research import sweep

_LENGTH = re.compile(r"^\s*(\d+)\s*([dmy]?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Length:
    count: int
    unit: str  # "" bars, "d" days, "m" months, "y" years

    def __str__(self) -> str:
        return f"{self.count}{self.unit}" if self.unit else f"{self.count} bars"


def parse_length(text: str, what: str) -> Length:
    m = _LENGTH.match(str(text))
    if not m or int(m.group(1)) < 1:
        raise sweep.GridError(f"{what} {text!r} is not a length: a number of bars (250) or of "
                              "days, months or years (90d, 6m, 2y)")
    return Length(int(m.group(1)), m.group(2).lower())


def _shift(day: dt.date, length: Length) -> dt.date:
    if length.unit == "d":
        return day + dt.timedelta(days=length.count)
    months = length.count * (12 if length.unit == "y" else 1)
    y, m = divmod(day.month - 1 + months, 12)
    y += day.year
    m += 1
    last = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(y, m, min(day.day, last))


@dataclass(frozen=True)
class Window:
    train: tuple[int, int]  # bars [start, stop)
    test: tuple[int, int]


class Windows(list):
    """The windows of a walk-forward (a list of :class:`Window`), and the last one that was
    dropped for a test part shorter than half the test length (``dropped``, None if none)."""

    dropped: Window | None = None

    def note(self, test: Length) -> str | None:
        """The sentence that says a short last window was dropped, or None."""
        w = self.dropped
        if w is None:
            return None
        return (f"The last window (test bars {w.test[0]:,} to {w.test[1] - 1:,}) was dropped: "
                f"its test part, cut short by the end of the series, is less than half of "
                f"{test}.")


def _short(series, test: Length, start: int, stop: int, planned_end) -> bool:
    """Whether a test part [start, stop) cut by the series end is under half the test length
    (in bars for a length in bars, else in calendar days from its first bar to the planned
    end)."""
    if not test.unit:
        return 2 * (stop - start) < test.count
    days = series.days
    first = int(days[start])
    planned = (planned_end - dt.date(1970, 1, 1)).days - first
    return 2 * (int(days[stop - 1]) + 1 - first) < planned


def windows(series, train: Length, test: Length) -> Windows:
    """The windows over ``series``: train then test, the next starting one test later; the last
    test window may be shorter (it ends with the series), and is dropped when it is shorter
    than half the test length and not the only one (said in ``Windows.dropped``). Raises
    GridError when not even one window fits."""
    n = len(series)
    out = Windows()
    if not train.unit and not test.unit:
        s = 0
        while s + train.count < n:
            out.append(Window((s, s + train.count), (s + train.count,
                                                    min(s + train.count + test.count, n))))
            s += test.count
        if len(out) > 1:
            last = out[-1]
            if _short(series, test, *last.test, None):
                out.dropped = out.pop()
    else:
        days = series.days
        first = dt.date(1970, 1, 1) + dt.timedelta(days=int(days[0]))

        def bar(day: dt.date) -> int:
            return int(np.searchsorted(days, (day - dt.date(1970, 1, 1)).days, "left"))

        def later(start_bar: int, start_day: dt.date, length: Length) -> tuple[int, dt.date]:
            if not length.unit:
                j = min(start_bar + length.count, n)
                return j, (dt.date(1970, 1, 1) + dt.timedelta(days=int(days[j])) if j < n
                           else dt.date.max)
            d = _shift(start_day, length)
            return bar(d), d

        s, sday = 0, first
        last_end = None  # the planned end day of the last window's test part
        while True:
            t, tday = later(s, sday, train)
            if t >= n or t <= s:
                break
            e, eday = later(t, tday, test)
            out.append(Window((s, t), (t, min(max(e, t + 1), n))))
            last_end = eday if e >= n else None
            s, sday = later(s, sday, test)
            if s >= n:
                break
        if len(out) > 1 and last_end is not None and last_end != dt.date.max:
            if _short(series, test, *out[-1].test, last_end):
                out.dropped = out.pop()
    if not out:
        raise sweep.GridError(f"the series ({n:,} bars) is too short for one window of train "
                              f"{train} then test {test}")
    return out


def run_windows(series, configs, setup=engine.Setup(), dividends=(), *, exact=True,
                fast=True) -> engine.Run:
    """One run over ``series`` whose configuration is ``configs[k][1]`` from bar
    ``configs[k][0]`` on (the first at bar 0)."""
    if not configs or configs[0][0] != 0:
        raise ValueError("the first configuration starts at bar 0")
    return engine.simulate(series, engine.Rules(), configs[0][1], setup, dividends, exact=exact,
                           fast=fast, switches=dict(configs[1:]))


def _slice(series, start: int, stop: int):
    return series.cut(start, stop)


@dataclass
class WindowResult:
    window: Window
    cell: int | None  # the chosen cell (None: no cell had a defined score: the base config)
    params: dict
    in_sample: dict  # the chosen cell's metrics over the train part
    out_of_sample: dict  # its metrics over the test part (from the carried state)


@dataclass
class Result:
    spec: sweep.Spec
    item: sweep.Item
    train: Length
    test: Length
    windows: list[WindowResult]
    oos_series: object
    # the stitched out-of-sample run against the benchmarks (a portfolio's: pf.PortfolioRun)
    report: bt_report.Report | pf.PortfolioRun
    seconds: float = 0.0
    note: str | None = None  # a short last window dropped (Windows.note)


    @property
    def portfolio(self) -> bool:
        return isinstance(self.report, pf.PortfolioRun)

    @property
    def oos_metrics(self) -> dict:
        """The stitched run's figures under a single backtest's names."""
        return pf.summary(self.report) if self.portfolio else self.report.metrics

    @property
    def oos_benchmarks(self) -> dict[str, tuple[np.ndarray, float]]:
        """Each benchmark over the out-of-sample span: label -> (equity, total return)."""
        if self.portfolio:
            cash = float(self.spec.setup.cash)
            return {pf.LABELS[k]: (eq, float(eq[-1]) / cash - 1.0)
                    for k, eq in self.report.benchmarks.items()}
        return {benchmarks.LABELS[k]: (b.equity, b.metrics["total_return"])
                for k, b in self.report.benchmarks.items()}


def check_axes(axes) -> None:
    """A walk-forward's grid varies strategy fields only: its windows switch the configuration
    of one run, whose fill (``--fill``, ``fill``) holds throughout (GridError)."""
    for a in axes:
        if a.name in sweep.SETUP_FIELDS:
            raise sweep.GridError(f"{a.name} is a run option of a walk-forward, not a grid: "
                                  f"give one {a.name} for the whole run")


def run(spec: sweep.Spec, item: sweep.Item, train: Length, test: Length, *, jobs: int = 1,
        dask_address: str | None = None, exact: bool = True,
        progress: Callable[[int], None] | None = None) -> Result:
    """Sweep each train part, run the best cells out of sample as one run, measure it."""
    check_axes(spec.axes)
    portfolio = isinstance(item, sweep.PortfolioItem)
    t0 = time.perf_counter()
    series = item.series
    wins = windows(series, train, test)
    chosen = []
    for w in wins:
        part = (item.cut(*w.train) if portfolio else
                sweep.Item(item.name, _slice(series, *w.train), item.dividends))
        res = sweep.run(spec, [part], jobs=jobs, dask_address=dask_address, progress=progress)
        best = res.best
        vals = (res.exact_values.get(best, res.values[best]) if best is not None else None)
        in_sample = ({m: _f(vals[0, k]) for k, m in enumerate(sweep.CELL_METRICS)}
                     if vals is not None else {})
        chosen.append((best, in_sample))
    start, stop = wins[0].test[0], wins[-1].test[1]
    oos = _slice(series, start, stop)
    configs = []
    for w, (cell, _) in zip(wins, chosen, strict=True):
        cfg = spec.config(cell) if cell is not None else (configs[-1][1] if configs
                                                         else spec.base)
        configs.append((w.test[0] - start, cfg))
    if portfolio:  # every holding switches at the windows; the portfolio's own report
        rep = pf.simulate(list(item.cut(start, stop).holdings), configs[0][1], spec.setup,
                          item.rule, item.band, switches=dict(configs[1:]))
    else:
        strat = run_windows(oos, configs, spec.setup, item.dividends, exact=exact)
        rep = _report(oos, strat, spec, item, configs, exact)
    results = []
    for w, (cell, ins), (_, cfg) in zip(wins, chosen, configs, strict=True):
        a, b = w.test[0] - start, w.test[1] - start
        before = float(spec.setup.cash) if a == 0 else float(rep.equity[a - 1])
        eq = rep.equity[a:b]
        perf = metrics.performance(eq, oos.seconds[a:b], oos.days[a:b], before)
        if metrics.annualised_note(oos.seconds[a:b]) is not None:
            for k in ("cagr", "volatility", "sharpe", "sortino"):
                perf[k] = None
        perf["total_return"] = float(eq[-1]) / before - 1.0
        results.append(WindowResult(w, cell, {a_.name: getattr(cfg, a_.name)
                                               for a_ in spec.axes}, ins, perf))
    return Result(spec, item, train, test, results, oos, rep, time.perf_counter() - t0,
                  wins.note(test))


def _f(x):
    x = float(x)
    return None if np.isnan(x) else x


def _report(oos, strat, spec, item, configs, exact) -> bt_report.Report:
    """A backtest report of the stitched run against the benchmarks over the same span (the
    benchmarks use the base configuration's commission and withholding)."""
    cash = spec.setup.cash
    mine = bt_report.measure(oos, strat, configs[0][1], cash)
    runs = benchmarks.run_all(oos, spec.base, spec.setup, item.dividends, exact=exact)
    bench = {k: bt_report.measure(oos, r, spec.base, cash) for k, r in runs.items()}
    held = bench["held_mix"]
    return bt_report.Report(
        oos, dataclasses.replace(configs[0][1]), spec.setup, list(item.dividends), strat,
        held.run, mine.equity, mine.weight, held.equity, held.weight, mine.metrics,
        held.metrics, bench,
        benchmarks.attribution(mine.metrics, {k: b.metrics for k, b in bench.items()}, cash),
        metrics.annualised_note(oos.seconds))
