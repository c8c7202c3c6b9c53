"""Sweeps (docs/strategy.md#research): the grid, the cells (the backtest itself, cell by cell),
the stability and ranking worked out by hand, parallel and Dask runs equal to the local run,
the heatmap's plane. ``manage.py sweep`` is tested in
positions/research/tests/test_sweep_command.py."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import subprocess
import time
import warnings
from decimal import Decimal

import numpy as np
import pytest

from positions.strategy import formats, rules
from positions.strategy.backtest import data, report
from positions.strategy.research import output, sweep

D = Decimal


def wave(n=150, name="W", amp=0.12, period=9.0, drift=0.001):
    """Daily bars from 2024-01-01: a sine around a slowly rising line."""
    day0 = np.datetime64("2024-01-01", "D")
    pts = [(str(day0 + i), round(100 * (1 + drift * i) * (1 + amp * math.sin(i / period)), 2))
           for i in range(n)]
    return sweep.Item(name, data.series_from_points(pts, name=name), ())


GRID = (sweep.parse_axis("trigger_pct=0.02:0.06:0.02"), sweep.parse_axis("guard_low=0.1,0.3"))
BASE = rules.Config(min_notional=D(0))


# --------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------


def test_a_range_is_inclusive_and_in_exact_decimal_steps():
    axis = sweep.parse_axis("trigger_pct=0.01:0.10:0.01")
    assert axis.values == tuple(D(i) / 100 for i in range(1, 11))
    assert axis.values[-1] == D("0.10")
    assert sweep.parse_axis("guard-low=0.1,0.2,0.3") == sweep.Axis(
        "guard_low", (D("0.1"), D("0.2"), D("0.3")))
    assert sweep.parse_axis("sizing=original,Proportional").values == ("original",
                                                                       "proportional")
    assert sweep.parse_axis("fractional=true,false").values == (True, False)
    assert sweep.parse_axis("max_orders_per_day=1:3:1").values == (1, 2, 3)
    assert sweep.parse_axis("qty_step=none,0.5").values == (None, D("0.5"))


@pytest.mark.parametrize("spec, fragment", [
    ("trigger=0.1,0.2", "'trigger' is not a strategy field"),
    ("trigger_pct", "write a grid as field=start:stop:step"),
    ("trigger_pct=0.1:0.2", "a range is start:stop:step"),
    ("trigger_pct=0.1:0.2:0", "the step must be greater than 0"),
    ("trigger_pct=0.2:0.1:0.01", "the stop is below the start"),
    ("trigger_pct=0.1,abc", "trigger_pct: 'abc' is not a number"),
    ("trigger_pct=0.1,0.10", "lists a value twice"),
    ("trigger_pct=0:1:0.0001", "has more than 1,000 values; at most 1,000"),
    # counts of 5,000 digits: more than Python formats (it was a ValueError, a 500 in the API)
    ("trigger_pct=0:1e5000:1", "has more than 1,000 values; at most 1,000"),
    ("trigger_pct=0:1:1e-5000", "has more than 1,000 values; at most 1,000"),
    ("trigger_pct=" + ",".join(str(i) for i in range(1001)), "has more than 1,000 values"),
    ("trigger_pct=0:1:1e-999999999", "too large or too small to count its values"),
    ("trigger_pct=1e-999999999:1e999999999:1", "too large or too small to count its values"),
    ("sizing=a:b:c", "only a numeric field takes a range"),
])
def test_bad_grids_are_one_sentence(spec, fragment):
    with pytest.raises(sweep.GridError) as exc:
        sweep.parse_axis(spec)
    assert fragment in str(exc.value)


def test_spec_checks():
    with pytest.raises(sweep.GridError, match="at least one grid"):
        sweep.Spec(BASE, ())
    with pytest.raises(sweep.GridError, match="'calmar' is not a metric"):
        sweep.Spec(BASE, GRID, metric="calmar")
    with pytest.raises(sweep.GridError, match="a field has two grids"):
        sweep.Spec(BASE, (GRID[0], GRID[0]))
    spec = sweep.Spec(BASE, GRID)
    assert spec.shape == (3, 2) and spec.n_cells == 6
    assert spec.values(3) == {"trigger_pct": D("0.04"), "guard_low": D("0.3")}
    assert spec.label(3) == "trigger_pct=0.04, guard_low=0.3"


# --------------------------------------------------------------------------------------------
# Stability and ranking, by hand
# --------------------------------------------------------------------------------------------


def test_stability_is_the_median_over_the_cell_and_its_grid_neighbours():
    # 3 x 3 grid (rows: the first parameter):
    #   1  2  3
    #   4  9  5
    #   6  7  8
    score = np.array([1, 2, 3, 4, 9, 5, 6, 7, 8], float)
    st = sweep.stability(score, (3, 3))
    assert st[4] == 5  # centre: median(9, 2, 7, 4, 5)
    assert st[0] == 2  # corner: median(1, 4, 2)
    assert st[1] == 2.5  # edge: median(2, 9, 1, 3)
    # A NaN neighbour (an invalid cell) is left out.
    score[1] = math.nan
    assert sweep.stability(score, (3, 3))[0] == 2.5  # median(1, 4)


def test_nanmedian0_is_numpys_nanmedian_over_the_first_axis():
    rng = np.random.default_rng(7)
    for rows in (1, 2, 3, 4, 5):
        a = rng.normal(size=(rows, 200))
        a[rng.random(a.shape) < 0.3] = math.nan  # some columns all NaN, some partly
        a[:, :3] = math.nan
        a[:, 3] = 1.5  # ties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's: an all-NaN column
            want = np.nanmedian(a, axis=0)
        np.testing.assert_array_equal(sweep.nanmedian0(a), want)  # NaN where numpy's is


def test_narrow_peak_ranks_by_score_but_scores_lower_stability():
    # A 1 x 5 grid over the trigger: a narrow peak at 0.03 and a plateau around 0.05.
    spec = sweep.Spec(BASE, (sweep.parse_axis("trigger_pct=0.01:0.05:0.01"),))
    score = np.array([0.1, 0.9, 0.1, 0.5, 0.5])  # Sharpe: higher is better
    stab = sweep.stability(score, spec.shape)
    assert list(stab) == [0.5, 0.1, 0.5, 0.5, 0.5]
    assert sweep.rank(spec, score, stab)[0] == 1  # the peak still wins on score


def test_ties_break_toward_stability_then_the_smaller_trigger():
    spec = sweep.Spec(BASE, (sweep.parse_axis("trigger_pct=0.01:0.04:0.01"),))
    score = np.array([0.5, 0.5, 0.5, math.nan])
    stab = np.array([0.2, 0.3, 0.3, math.nan])
    # Cells 1 and 2 tie on score and stability: the smaller trigger (cell 1) first; cell 3
    # (undefined) is not ranked.
    assert sweep.rank(spec, score, stab) == [1, 2, 0]


def test_lower_is_better_metrics_rank_the_smallest_first():
    values = np.array([[[0.3]], [[0.1]], [[0.2]]])
    vol = np.zeros((3, 1, len(sweep.CELL_METRICS)))
    vol[:, :, sweep.CELL_METRICS.index("volatility")] = values[:, :, 0]
    spec = sweep.Spec(BASE, (sweep.parse_axis("trigger_pct=0.01:0.03:0.01"),),
                      metric="volatility")
    s = sweep.scores(vol, "volatility")
    assert sweep.rank(spec, s, sweep.stability(s, spec.shape)) == [1, 2, 0]


# --------------------------------------------------------------------------------------------
# Cells are backtests
# --------------------------------------------------------------------------------------------


def test_every_cell_is_the_backtest_of_its_configuration():
    items = [wave(), wave(name="V", amp=0.2, period=5.0, drift=-0.0005)]
    spec = sweep.Spec(BASE, GRID, exact=True, top=3)
    res = sweep.run(spec, items)
    assert res.values.shape == (6, 2, len(sweep.CELL_METRICS))
    for cell in range(6):
        cfg = rules.Config(min_notional=D(0), **spec.values(cell))
        for s, it in enumerate(items):
            rep = report.backtest(it.series, cfg)
            got = dict(zip(sweep.CELL_METRICS, res.values[cell, s], strict=True))
            want = report.metrics_json(rep.metrics)
            for k in ("total_return", "sharpe", "max_drawdown", "buys", "sells",
                      "final_value"):
                assert got[k] == pytest.approx(want[k]), (cell, it.name, k)
            assert got["excess_over_held_mix"] == pytest.approx(
                rep.attribution["excess_over_held_mix"], abs=2e-6)
            assert got["trigger_timing"] == pytest.approx(rep.attribution["trigger_timing"],
                                                          abs=2e-6)
    # The score is the Sharpe averaged over the two series; the best is the top score.
    sharpe = res.values[:, :, sweep.CELL_METRICS.index("sharpe")].mean(axis=1)
    assert res.best == int(np.argmax(sharpe))
    assert res.exact_values == {}  # exact already: nothing to re-run


def test_float_cells_and_the_exact_top_agree_and_are_both_reported():
    items = [wave()]
    fl = sweep.run(sweep.Spec(BASE, GRID, top=2), items)
    ex = sweep.run(sweep.Spec(BASE, GRID, exact=True, top=2), items)
    assert fl.ranking == ex.ranking
    assert sorted(fl.exact_values) == sorted(fl.ranking[:2])
    k = sweep.CELL_METRICS.index("final_value")
    for cell, vals in fl.exact_values.items():
        assert np.array_equal(vals, ex.values[cell])  # the re-run is the exact path
        assert abs(fl.values[cell, 0, k] - vals[0, k]) <= 0.01  # floats to the cent
    doc = output.document(fl)
    assert doc["top"][0]["score_exact"] == pytest.approx(doc["top"][0]["score"], abs=1e-4)
    assert doc["top"][0]["series_exact"]["W"]["final_value"] is not None


def test_invalid_cells_are_reported_and_left_out_of_the_ranking():
    spec = sweep.Spec(BASE, (sweep.parse_axis("guard_low=0.5,0.8"),), exact=True)
    res = sweep.run(spec, [wave()])
    assert list(res.errors) == [1]  # guard_low 0.8 >= guard_high 0.75
    assert "guard" in res.errors[1]
    assert res.ranking == [0]
    assert np.isnan(res.values[1]).all()


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "loky"])
def test_worker_processes_give_the_local_results(fork, monkeypatch):
    """Forked workers (inheriting the inputs) and loky's (sent them pickled) alike."""
    items = [wave(), wave(name="V", amp=0.08, period=5.0)]
    spec = sweep.Spec(BASE, GRID, top=2)
    local = sweep.run(spec, items, jobs=1)
    # The path is forced (another test's idle thread would otherwise make it loky) and seen.
    monkeypatch.setattr(sweep, "_can_fork", lambda: fork)
    started, used = [], []
    real_pool, real_execute = sweep._fork_pool, sweep._execute

    @contextlib.contextmanager
    def counted_pool(*a):
        with real_pool(*a) as workers:
            started.append(workers is not None)
            yield workers

    monkeypatch.setattr(sweep, "_fork_pool", counted_pool)
    monkeypatch.setattr(sweep, "_execute", lambda *a: used.append(a[-1] is not None)
                        or real_execute(*a))
    seen = []
    pool = sweep.run(spec, items, jobs=2, progress=seen.append)
    assert started == [fork]  # forked once...
    assert used == [fork, fork]  # ...for the cells, then the exact top
    assert np.array_equal(local.values, pool.values, equal_nan=True)
    assert local.ranking == pool.ranking
    assert {c: v.tolist() for c, v in local.exact_values.items()} == {
        c: v.tolist() for c, v in pool.exact_values.items()}
    assert sum(seen) == sweep.total_runs(spec, items)
    assert pool.workers == "2 worker processes"
    assert sweep._SHARED is None  # the inputs are not kept after the pool


def _loky_workers() -> list[str]:
    """This process's children that are loky's workers (not its resource trackers)."""
    out = subprocess.run(["ps", "--ppid", str(os.getpid()), "-o", "args", "--no-headers"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "popen_loky" in line]


def test_loky_workers_leave_soon_after_the_run(monkeypatch):
    # a new user's find: after serve was stopped by SIGTERM its job worker's loky processes
    # ran on under init for five minutes (joblib's idle timeout)
    monkeypatch.setattr(sweep, "_can_fork", lambda: False)  # a job worker's path: loky
    monkeypatch.setattr(sweep, "LOKY_IDLE_SECONDS", 1)
    spec = sweep.Spec(BASE, GRID, top=2)
    sweep.run(spec, [wave()], jobs=2)
    assert _loky_workers(), "the run used loky's worker processes"
    deadline = time.monotonic() + 15
    while _loky_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _loky_workers() == []


def test_progress_counts_cells_then_exact_re_runs():
    """What run() reports (runs of a cell on a series) told as cells and exact re-runs: 6
    cells then the top 3 again, on 2 series (and over 2 windows of a walk-forward)."""
    spec = sweep.Spec(BASE, GRID, top=3)
    assert sweep.total_runs(spec, [wave(), wave()]) == (6 + 3) * 2

    def text(done, windows=1):
        return sweep.progress_text(sweep.progress_counts(spec, 2, done, windows))

    assert text(0) == "cells 0/6, exact re-runs 0/3"
    assert text(8) == "cells 4/6, exact re-runs 0/3"
    assert text(14) == "cells 6/6, exact re-runs 1/3"
    assert text(18) == "cells 6/6, exact re-runs 3/3"
    assert text(20, windows=2) == "cells 7/12, exact re-runs 3/6"
    assert text(36, windows=2) == "cells 12/12, exact re-runs 6/6"
    exact = sweep.Spec(BASE, GRID, exact=True)  # nothing re-run: only cells
    assert sweep.progress_text(sweep.progress_counts(exact, 1, 6)) == "cells 6/6"


@pytest.mark.parametrize("enabled", [True, False])
def test_a_chunk_pauses_the_cyclic_gc_and_restores_it_and_leaves_no_cycles(enabled):
    """run_chunk pauses the collector while its cells run: safe because a cell's objects form
    no cycle (nothing is left for the collector after float and exact cells, an invalid cell
    among them); the caller's setting is back afterwards."""
    spec = sweep.Spec(BASE, (sweep.parse_axis("trigger_pct=0.02,0.04"),
                             sweep.parse_axis("guard_low=0.1,0.8")))  # 0.8: invalid
    items = [wave(), wave(name="V", period=5.0)]
    bench = sweep.bench_returns(spec, items)
    was = gc.isenabled()
    try:
        gc.collect()
        gc.enable() if enabled else gc.disable()
        seen = []
        orig = sweep._run_cells
        sweep._run_cells = lambda *a: seen.append(gc.isenabled()) or orig(*a)
        try:
            out = sweep.run_chunk(spec, items, bench, range(4), False)
            out += sweep.run_chunk(spec, items, bench, range(4), True)
        finally:
            sweep._run_cells = orig
        assert seen == [False, False]
        assert gc.isenabled() is enabled
        assert [err is None for _, _, err in out] == [True, False, True, False] * 2
        gc.disable()
        assert gc.collect() == 0
    finally:
        gc.enable() if was else gc.disable()


def test_cells_are_dealt_across_the_chunks():
    assert sweep._chunks(list(range(7)), 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert sweep._chunks([5], 4) == [[5]]


def test_a_dask_cluster_gives_the_local_results():
    from distributed import LocalCluster

    items = [wave()]
    spec = sweep.Spec(BASE, GRID, top=2)
    local = sweep.run(spec, items, jobs=1)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        seen = []
        remote = sweep.run(spec, items, dask_address=cluster.scheduler_address,
                           progress=seen.append)
    assert np.array_equal(local.values, remote.values, equal_nan=True)
    assert local.ranking == remote.ranking
    assert {c: v.tolist() for c, v in local.exact_values.items()} == {
        c: v.tolist() for c, v in remote.exact_values.items()}
    assert remote.workers.startswith("Dask cluster at ")
    assert sum(seen) == sweep.total_runs(spec, items)


def test_heatmap_plane_holds_the_other_parameters_at_the_best_cell():
    axes = GRID + (sweep.parse_axis("guard_high=0.7,0.8"),)
    res = sweep.run(sweep.Spec(BASE, axes, exact=True), [wave()])
    plane, held = output.heatmap_grid(res, "trigger_pct", "guard_low", "sharpe")
    best = res.spec.values(res.best)
    assert held == {"guard_high": formats.setting(best["guard_high"])}
    assert plane.shape == (2, 3)  # rows guard_low, columns trigger_pct
    k = sweep.CELL_METRICS.index("sharpe")
    for i, gl in enumerate((D("0.1"), D("0.3"))):
        for j, tp in enumerate((D("0.02"), D("0.04"), D("0.06"))):
            cell = next(c for c in range(res.spec.n_cells) if res.spec.values(c) == {
                "trigger_pct": tp, "guard_low": gl, "guard_high": best["guard_high"]})
            assert plane[i, j] == res.values[cell, 0, k]
    with pytest.raises(sweep.GridError, match="'min_notional' is not a parameter of the grid"):
        output.heatmap_grid(res, "min_notional", "guard_low", "sharpe")
