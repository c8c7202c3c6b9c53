"""Parameter sweeps (docs/strategy.md#research). Pure: no Django.

A sweep runs the backtest for every cell of a grid (the Cartesian product of the listed values of
some strategy fields) on one or more series. Each cell is one ``engine.run`` (every decision is
``rules.evaluate``: there is no second copy of the rules here) measured by
``metrics.summary``, plus its excess over each series' held mix and its trigger's timing (over
the fixed mix), the benchmarks being run once per series.

- **score** of a cell: the ranking metric (default Sharpe), averaged over the series; undefined
  (NaN) when any series leaves it undefined. For ``volatility``, ``max_drawdown_days`` and
  ``commissions`` lower is better; for every other metric higher is better.
- **stability** of a cell: the median of its score and its grid neighbours' (cells one step
  away along one parameter), undefined scores left out: a best cell on a narrow peak scores lower
  than one on a plateau.
- **ranking**: by score, ties toward the higher stability, then the smaller trigger.
- cells may run on floats (the rules' float mode, which agrees with the exact run to the cent);
  the top cells are then re-run on the exact Decimal path and both are reported.

Cells run in chunks, in this process (``jobs=1``), in worker processes on every core (forked
from this one when that is safe, else joblib's loky), or on a Dask cluster (joblib's dask
backend, ``dask_address``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import math
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from positions.strategy import formats, rules
from positions.strategy.backtest import benchmarks, engine, metrics, report
from positions.strategy.backtest import portfolio as pf

FIELDS = {f.name: f for f in dataclasses.fields(rules.Config)}
# Run options a grid may also vary: the fill policy (compare market and resting orders in one
# grid, docs/backtests.md#resting-orders-fill-limit).
SETUP_FIELDS = ("fill",)
GRID_FIELDS = (*FIELDS, *SETUP_FIELDS)
EXTRA_METRICS = ("excess_over_held_mix", "trigger_timing")
CELL_METRICS = metrics.METRIC_NAMES + EXTRA_METRICS
LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown_days", "commissions"})
MAX_AXIS_VALUES = 1000
MAX_CELLS = 100_000
_BOOL = {"true": True, "1": True, "yes": True, "on": True,
         "false": False, "0": False, "no": False, "off": False}


class GridError(ValueError):
    """A bad grid or sweep input: one sentence naming what."""


# --------------------------------------------------------------------------------------------
# Values and axes
# --------------------------------------------------------------------------------------------


def parse_value(name: str, text) -> object:
    """One strategy field's value from text, typed as ``rules.Config`` holds it (Decimal,
    int, bool, str or None). Raises GridError naming the field; the ranges are checked by
    ``rules.config_errors``."""
    if name not in GRID_FIELDS:
        raise GridError(f"{name!r} is not a strategy field (one of {', '.join(GRID_FIELDS)})")
    raw = text
    text = str(text).strip()
    if name == "fill":
        if text.lower() not in engine.FILLS:  # a choice, like sizing
            raise GridError(f"{name}: {name} must be one of: {', '.join(engine.FILLS)}.")
        return text.lower()
    if name == "sizing":
        if text.lower() not in rules.SIZINGS:  # a choice, never free text (it reaches exports)
            raise GridError(f"{name}: {name} must be one of: {', '.join(rules.SIZINGS)}.")
        return text.lower()
    if name == "fractional":
        if text.lower() not in _BOOL:
            raise GridError(f"{name}: {raw!r} is not true or false")
        return _BOOL[text.lower()]
    if name == "max_orders_per_day":
        try:
            return int(text)
        except ValueError:
            raise GridError(f"{name}: {raw!r} is not a whole number") from None
    if name == "qty_step" and text.lower() in ("none", ""):
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise GridError(f"{name}: {raw!r} is not a number") from None
    if not value.is_finite():
        raise GridError(f"{name}: {raw!r} is not a finite number")
    return value


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple

    def text(self, i: int) -> str:
        return formats.setting(self.values[i])


def parse_axis(spec: str) -> Axis:
    """``name=start:stop:step`` (inclusive of stop, in exact decimal steps) or
    ``name=v1,v2,...``."""
    name, sep, rest = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not rest.strip():
        raise GridError(f"{spec!r}: write a grid as field=start:stop:step or field=v1,v2,...")
    if name not in GRID_FIELDS:
        raise GridError(f"{name!r} is not a strategy field (one of {', '.join(GRID_FIELDS)})")
    if ":" in rest:
        parts = rest.split(":")
        if len(parts) != 3:
            raise GridError(f"{spec!r}: a range is start:stop:step")
        if name in ("sizing", "fractional", "fill"):
            raise GridError(f"{spec!r}: only a numeric field takes a range")
        start, stop, step = (parse_value(name, p) for p in parts)
        if not all(isinstance(x, (Decimal, int)) and not isinstance(x, bool)
                   for x in (start, stop, step)):
            raise GridError(f"{spec!r}: only a numeric field takes a range")
        if not step > 0:
            raise GridError(f"{spec!r}: the step must be greater than 0")
        if stop < start:
            raise GridError(f"{spec!r}: the stop is below the start")
        try:
            count = int((stop - start) / step) + 1
        except ArithmeticError:  # decimal.Overflow: e.g. 0:1:1e-999999999, 1e999999 values
            raise GridError(f"{spec!r}: the start, stop or step is too large or too small to "
                            f"count its values; at most {MAX_AXIS_VALUES:,} values") from None
        if count > MAX_AXIS_VALUES:
            raise _too_many(spec)
        values = tuple(start + i * step for i in range(count))
    else:
        values = tuple(parse_value(name, p) for p in rest.split(","))
        if len(values) > MAX_AXIS_VALUES:
            raise _too_many(spec)
    if len(set(values)) != len(values):
        raise GridError(f"{spec!r} lists a value twice")
    return Axis(name, values)


def _too_many(spec: str) -> GridError:
    """The count itself is never formatted: a range such as 0:1e5000:1 has a count of 5,000
    digits, more than Python turns into text (ValueError, not an answer)."""
    return GridError(f"{spec!r} has more than {MAX_AXIS_VALUES:,} values; at most "
                     f"{MAX_AXIS_VALUES:,}")


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One series of the sweep, with its dividends."""

    name: str
    series: object  # data.Series
    dividends: tuple = ()


@dataclass(frozen=True)
class PortfolioItem:
    """A portfolio swept as a series is (docs/backtests.md#portfolio-backtests): each cell is
    one portfolio backtest (``backtest.portfolio.simulate``: every holding on the cell's
    strategy, the cash moved by ``rule``), measured by its figures under a single backtest's
    names; its benchmarks are the portfolio's (held at weights, fixed mix). The holdings are
    aligned on their common bars (``series``: those bars)."""

    name: str
    holdings: tuple  # backtest.portfolio.Holding, aligned
    rule: str = "never"
    band: Decimal | None = None
    dividends: tuple = ()  # each holding carries its own

    @classmethod
    def of(cls, name: str, holdings, rule: str = "never", band=None) -> PortfolioItem:
        """The holdings aligned, the weights and the rule checked (backtest.portfolio's
        PortfolioError, its code the backtest's: no_common_bars, invalid_weights, ...)."""
        return cls(name, tuple(pf.check(list(holdings), rule, band)), rule, band)

    @property
    def series(self):
        return self.holdings[0].series

    def cut(self, start: int, stop: int) -> PortfolioItem:
        """The portfolio over bars [start, stop) (a walk-forward's window)."""
        return dataclasses.replace(self, holdings=tuple(
            dataclasses.replace(h, series=h.series.cut(start, stop)) for h in self.holdings))


@dataclass(frozen=True)
class Spec:
    base: rules.Config
    axes: tuple[Axis, ...]
    setup: engine.Setup = engine.Setup()
    metric: str = "sharpe"
    exact: bool = False  # every cell on the exact Decimal path (else floats, top re-run exact)
    top: int = 10

    def __post_init__(self):
        names = [a.name for a in self.axes]
        if not names:
            raise GridError("give at least one grid (--grid field=values)")
        if len(set(names)) != len(names):
            raise GridError("a field has two grids")
        if self.metric not in CELL_METRICS:
            raise GridError(f"{self.metric!r} is not a metric (one of {', '.join(CELL_METRICS)})")
        if self.n_cells > MAX_CELLS:
            raise GridError(f"the grid has {self.n_cells:,} cells; at most {MAX_CELLS:,}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    def index(self, cell: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(cell, self.shape))

    def values(self, cell: int) -> dict:
        return {a.name: a.values[i] for a, i in zip(self.axes, self.index(cell), strict=True)}

    def config(self, cell: int) -> rules.Config:
        return dataclasses.replace(self.base, **{k: v for k, v in self.values(cell).items()
                                                 if k not in SETUP_FIELDS})

    @property
    def fills(self) -> frozenset:
        """Every fill policy a cell runs under: the setup's, or a ``fill`` axis' values."""
        for a in self.axes:
            if a.name == "fill":
                return frozenset(a.values)
        return frozenset({self.setup.fill})

    def setup_of(self, cell: int) -> engine.Setup:
        """The run's setup with the cell's value of a run-option axis (``fill``)."""
        extra = {k: v for k, v in self.values(cell).items() if k in SETUP_FIELDS}
        return dataclasses.replace(self.setup, **extra) if extra else self.setup

    def label(self, cell: int) -> str:
        return ", ".join(f"{a.name}={a.text(i)}"
                         for a, i in zip(self.axes, self.index(cell), strict=True))


def bench_returns(spec: Spec, items: Sequence[Item]) -> list[dict]:
    """Per series: the three benchmarks' metrics (exact), for the report and for each cell's
    excess and timing."""
    out = []
    for it in items:
        if isinstance(it, PortfolioItem):
            out.append({k: report.metrics_json(m) for k, m in pf.benchmark_summaries(
                list(it.holdings), spec.base, spec.setup, it.rule, it.band).items()})
            continue
        runs = benchmarks.run_all(it.series, spec.base, spec.setup, it.dividends)
        out.append({k: report.metrics_json(metrics.summary(it.series, r, spec.base,
                                                           spec.setup.cash))
                    for k, r in runs.items()})
    return out


def measure_cell(cfg: rules.Config, it: Item, setup: engine.Setup, bench: dict,
                 exact: bool) -> list:
    """One cell on one series (or portfolio: exact whatever ``exact``, its holdings' engines
    meet at the rebalances; the entrances sweep a portfolio with ``Spec.exact``, so nothing is
    re-run): the values of :data:`CELL_METRICS` (floats, NaN undefined). A portfolio's held mix
    is its holdings held at their weights."""
    if isinstance(it, PortfolioItem):
        m = report.metrics_json(pf.summary(pf.simulate(list(it.holdings), cfg, setup, it.rule,
                                                       it.band, with_benchmarks=False)))
    else:
        run = engine.run(it.series, cfg, setup, it.dividends, exact=exact)
        m = report.metrics_json(metrics.summary(it.series, run, cfg, setup.cash))
    r = m["total_return"]
    m["excess_over_held_mix"] = r - bench["held_mix" if "held_mix" in bench else "held"][
        "total_return"]
    m["trigger_timing"] = r - bench["fixed_mix"]["total_return"]
    return [math.nan if m[k] is None else float(m[k]) for k in CELL_METRICS]


def run_chunk(spec: Spec, items: Sequence[Item], bench: list[dict], cells: Sequence[int],
              exact: bool) -> list[tuple[int, np.ndarray | None, str | None]]:
    """Cells ``cells`` over every series: (cell, values[series, metric] or None, error).

    The cyclic garbage collector is paused while they run (and restored after): a cell
    allocates a few hundred orders, states and decisions a trade, none of them in a cycle (each
    is freed by its count when the cell ends), and the collections they would set off cost
    about a tenth of a cell's CPU."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _run_cells(spec, items, bench, cells, exact)
    finally:
        if paused:
            gc.enable()


def _run_cells(spec, items, bench, cells, exact) -> list:
    out = []
    for cell in cells:
        cfg = spec.config(cell)
        errors = rules.config_errors(cfg)
        if errors:
            out.append((cell, None, " ".join(errors.values())))
            continue
        try:
            vals = np.array([measure_cell(cfg, it, spec.setup_of(cell), b, exact)
                             for it, b in zip(items, bench, strict=True)])
        except (engine.SetupError, rules.RuleError, InvalidOperation,
                pf.PortfolioError) as exc:
            out.append((cell, None, str(exc)))
            continue
        out.append((cell, vals, None))
    return out


@dataclass
class Result:
    spec: Spec
    items: list[Item]
    benchmarks: list[dict]  # per series: {held_mix|stock_held|fixed_mix: metrics}
    values: np.ndarray  # [cell, series, metric], NaN where undefined or invalid
    errors: dict[int, str]  # cells whose configuration is invalid
    score: np.ndarray  # [cell]
    stability: np.ndarray  # [cell]
    ranking: list[int]  # cells, best first (defined scores only)
    exact_values: dict[int, np.ndarray] = field(default_factory=dict)  # top cells re-run exact
    seconds: float = 0.0
    workers: str = ""

    @property
    def best(self) -> int | None:
        return self.ranking[0] if self.ranking else None

    def metric_index(self, name: str) -> int:
        return CELL_METRICS.index(name)

    def mean(self, name: str, values: np.ndarray | None = None) -> np.ndarray:
        """The metric ``name`` averaged over the series, per cell (NaN if any is NaN)."""
        v = self.values if values is None else values
        return v[..., self.metric_index(name)].mean(axis=-1)


def bench_label(item, key: str) -> str:
    """A benchmark's label: a series' (benchmarks.LABELS) or a portfolio's (held at weights,
    fixed mix at its rule's period)."""
    return (pf.LABELS if isinstance(item, PortfolioItem) else benchmarks.LABELS)[key]


def scores(values: np.ndarray, metric: str) -> np.ndarray:
    """The ranking score per cell: the metric's mean over the series, signed so that higher
    is better."""
    s = values[:, :, CELL_METRICS.index(metric)].mean(axis=1)
    return -s if metric in LOWER_IS_BETTER else s


def stability(score: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The median of each cell's score and its grid neighbours' (one step along one axis),
    NaN scores left out (NaN when all are)."""
    grid = score.reshape(shape)
    stack = [grid]
    for ax in range(len(shape)):
        for shift in (1, -1):
            rolled = np.roll(grid, shift, axis=ax)
            edge = [slice(None)] * len(shape)
            edge[ax] = 0 if shift == 1 else -1
            rolled = rolled.copy()
            rolled[tuple(edge)] = np.nan  # no wrap-around: the edge has no neighbour there
            stack.append(rolled)
    return nanmedian0(np.stack(stack)).reshape(-1)


def nanmedian0(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=0)``, NaN (without a warning) where a column is all NaN: the
    same values, without ``numpy.ma``, which ``np.nanmedian`` imports for a small array (about
    10 ms of a sweep command's serial start). The defined values of a column sorted (NaN sorts
    last), the middle one, or the mean of the two middle ones as ``np.median`` takes it."""
    s = np.sort(a, axis=0)
    k = np.count_nonzero(~np.isnan(a), axis=0)
    top = a.shape[0] - 1
    lo = np.take_along_axis(s, np.clip((k - 1) // 2, 0, top)[None], axis=0)[0]
    hi = np.take_along_axis(s, np.clip(k // 2, 0, top)[None], axis=0)[0]
    med = np.where(k % 2 == 1, hi, (lo + hi) / 2)
    med[k == 0] = np.nan
    return med


def rank(spec: Spec, score: np.ndarray, stab: np.ndarray) -> list[int]:
    """Cells with a defined score, best first: score, then stability, then smaller trigger."""
    def trigger(cell: int) -> Decimal:
        return spec.values(cell).get("trigger_pct", spec.base.trigger_pct)

    defined = [c for c in range(len(score)) if not math.isnan(score[c])]
    return sorted(defined, key=lambda c: (-score[c],
                                          -(stab[c] if not math.isnan(stab[c]) else -math.inf),
                                          trigger(c), c))


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _chunks(cells: Sequence[int], parts: int) -> list[list[int]]:
    """``cells`` dealt into at most ``parts`` chunks, every ``parts``-th cell to one chunk, so
    that each chunk holds cells from the whole grid (the small triggers, which trade most, are
    not all in one chunk that finishes last)."""
    parts = max(1, min(parts, len(cells)))
    return [list(cells[i::parts]) for i in range(parts)]


_FORK_CHUNKS = 32  # chunks a forked worker, at most

# How long loky's workers wait for more work once a run's chunks are done (joblib's default is
# 300 s): long enough to serve the exact re-runs that follow the cells, short enough that the
# processes a job worker started do not outlive it by minutes (serve stopped by a service
# manager's SIGTERM left them running under init). The next job starts them again (~0.4 s).
LOKY_IDLE_SECONDS = 10

# The sweep's inputs while a fork pool runs: set before the workers fork, so each inherits them
# (the series are never pickled); None otherwise.
_SHARED: tuple | None = None


def _run_shared(cells: list[int], exact: bool) -> list:
    spec, items, bench = _SHARED
    return run_chunk(spec, items, bench, cells, exact)


def _can_fork() -> bool:
    """Forking is safe and available: a POSIX fork start method, and no other thread in this
    process (a thread holding a lock at the fork would leave it locked in the child; a job
    worker's heartbeat thread is one, so jobs use loky)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def _execute(spec, items, bench, cells, exact, jobs, dask_address, progress, pool=None):
    """Run ``cells``; yields each chunk's results as it completes.

    Local workers are forked from this process when that is safe (:func:`_can_fork`): they
    start at once with the modules and the series already in memory, and only cell numbers go
    to them (``pool``: the workers :func:`_fork_pool` started, kept for the exact re-runs).
    Otherwise (another thread here, or no fork) joblib's loky workers, which start a
    fresh interpreter each (about 0.4 s of imports here, a quarter of a 400-cell sweep on 20
    years of daily bars) and receive the inputs pickled with each chunk."""
    if jobs == 1 and not dask_address:
        for chunk in _chunks(cells, max(1, len(cells) // 50)):
            yield run_chunk(spec, items, bench, chunk, exact)
            progress(len(chunk) * len(items))
        return
    workers = jobs if jobs > 0 else _cores()
    if pool is not None:
        # Only cell numbers travel to a forked worker: small chunks (about 6 cells of a
        # 400-cell grid on 2 workers) keep every core busy to the end (the last chunk is what
        # one worker runs while the others wait).
        chunks = _chunks(cells, workers * _FORK_CHUNKS)
        for out in pool.imap_unordered(functools.partial(_run_shared, exact=exact), chunks):
            progress(len(out) * len(items))
            yield out
        return
    chunks = _chunks(cells, workers * 8)  # each carries the inputs, pickled
    # joblib: a heavy optional library, loaded when cells run in parallel
    from joblib import Parallel, delayed, parallel_config

    tasks = (delayed(run_chunk)(spec, items, bench, c, exact) for c in chunks)
    if dask_address:
        # distributed (Dask): a heavy optional library, only for a cluster
        from distributed import Client

        with Client(dask_address) as _client, parallel_config(backend="dask"):
            for out in Parallel(n_jobs=-1, return_as="generator_unordered")(tasks):
                progress(len(out) * len(items))
                yield out
        return
    with parallel_config(backend="loky", n_jobs=workers, idle_worker_timeout=LOKY_IDLE_SECONDS):
        for out in Parallel(return_as="generator_unordered")(tasks):
            progress(len(out) * len(items))
            yield out


@contextlib.contextmanager
def _fork_pool(spec, items, bench, jobs, dask_address):
    """Worker processes forked from this process for the whole run (the cells, then the exact
    re-runs: started once), or None: one job, a Dask cluster, or forking unsafe."""
    if jobs == 1 or dask_address or not _can_fork():
        yield None
        return
    global _SHARED
    _SHARED = (spec, items, bench)
    try:
        workers = min(jobs if jobs > 0 else _cores(), spec.n_cells)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield pool
    finally:
        _SHARED = None


def _cores() -> int:
    # joblib: a heavy optional library, loaded when cells run in parallel
    from joblib import cpu_count

    return max(1, cpu_count())


def run(spec: Spec, items: Sequence[Item], *, jobs: int = 1, dask_address: str | None = None,
        progress: Callable[[int], None] | None = None) -> Result:
    """Every cell over every series; then the ranking, the stability and, in float mode, the
    top cells again on the exact path. ``progress(k)`` is called with the number of (cell,
    series) runs just finished (the total being ``n_cells * len(items)`` plus the exact re-runs
    of the top cells, ``min(top, n_cells) * len(items)``)."""
    t0 = time.perf_counter()
    items = list(items)
    if not items:
        raise GridError("give at least one series")
    bench = bench_returns(spec, items)
    tick = progress or (lambda k: None)
    n = spec.n_cells
    values = np.full((n, len(items), len(CELL_METRICS)), np.nan)
    errors: dict[int, str] = {}
    with _fork_pool(spec, items, bench, jobs, dask_address) as pool:
        for out in _execute(spec, items, bench, list(range(n)), spec.exact, jobs, dask_address,
                            tick, pool):
            for cell, vals, err in out:
                if err is not None:
                    errors[cell] = err
                else:
                    values[cell] = vals
        score = scores(values, spec.metric)
        stab = stability(score, spec.shape)
        order = rank(spec, score, stab)
        res = Result(spec, items, bench, values, errors, score, stab, order)
        if not spec.exact and order:
            top = order[:spec.top]
            one = len(top) == 1
            for out in _execute(spec, items, bench, top, True, 1 if one else jobs,
                                dask_address, tick, None if one else pool):
                for cell, vals, _err in out:
                    res.exact_values[cell] = vals
    res.seconds = time.perf_counter() - t0
    res.workers = (f"Dask cluster at {dask_address}" if dask_address else
                   "this process" if jobs == 1 else
                   f"{jobs if jobs > 0 else _cores()} worker processes")
    return res


def total_runs(spec: Spec, items: Sequence) -> int:
    """What :func:`run` reports to ``progress`` in all."""
    return (spec.n_cells + _reruns(spec)) * len(items)


def _reruns(spec: Spec) -> int:
    """The top cells :func:`run` runs again on the exact path (none when every cell was)."""
    return 0 if spec.exact else min(spec.top, spec.n_cells)


def progress_counts(spec: Spec, n_series: int, done: int, windows: int = 1) -> dict:
    """``done`` runs (what :func:`run` reported to ``progress``, over ``windows`` runs of a
    walk-forward) as cells: ``{"cells": {"done", "total"}, "exact_reruns": {"done",
    "total"}}``. Each run measures every cell, then re-runs the top cells exact."""
    reruns = _reruns(spec)
    per = (spec.n_cells + reruns) * n_series
    full, rest = divmod(max(done, 0), per) if per else (0, 0)
    if full >= windows:
        full, rest = windows, 0
    cells = full * spec.n_cells + min(rest, spec.n_cells * n_series) // n_series
    exact = full * reruns + max(0, rest - spec.n_cells * n_series) // n_series
    return {"cells": {"done": cells, "total": spec.n_cells * windows},
            "exact_reruns": {"done": exact, "total": reruns * windows}}


def progress_text(counts: dict) -> str:
    """``cells 30/30, exact re-runs 10/10`` (the command's bar, the admin)."""
    c, e = counts["cells"], counts["exact_reruns"]
    text = f"cells {c['done']:,}/{c['total']:,}"
    return f"{text}, exact re-runs {e['done']:,}/{e['total']:,}" if e["total"] else text
