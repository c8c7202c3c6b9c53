"""How fast is ``manage.py sweep``? One run prints every figure of docs/research.md#speed.

    .venv/bin/pip install -r bench/requirements.txt   # pandas, backtesting (bench only)
    nice -n 10 .venv/bin/python bench/sweep_speed.py  # 400 cells, 20 years of daily bars

It writes 20 years of daily bars (a random walk, fixed seed, weekdays) as a Date,Close CSV in a
temporary directory, then measures:

- the engine alone, in this process: the 400 cells on floats (``research.run_chunk``), CPU
  time per cell (``time.process_time``: what the engine costs, whatever the machine's load);
- as processes from start to results on disk, best of --repeat, the runs of 1 and 2 workers
  interleaved: ``manage.py sweep --csv FILE --grid trigger_pct=0.01:0.20:0.01 --grid
  guard_low=0.02:0.40:0.02 --jobs 1`` (one process) and ``--jobs 2`` (two worker processes);
  floats for the 400 cells, the top 10 re-run exact (the command's default); wall time and
  CPU time (user + system of the process and its workers);
- the floor, measured the same way: the same command for one cell (interpreter, django.setup,
  the CSV, the benchmarks, the cell and its exact re-run, the outputs), serial whatever the
  workers; the last line says how low it must be for both targets at once (with 2 workers at
  best wall2 = (wall1 + floor) / 2);
- backtesting.py's ``Backtest.optimize`` over the same 20 x 20 grid of its comparable band
  strategy (bench/sweep_bt_optimize.py; it uses every core too), once, the same way.

The processes cache their bytecode as an installed program does: if PYTHONDONTWRITEBYTECODE is
set here it is unset for them (``--no-bytecode`` keeps it), and an untimed one-cell sweep first
writes the project's ``__pycache__`` (git-ignored).

Targets (issue 24): the sweep at least 20x faster than ``Backtest.optimize``, and 2 workers at
least 1.7x faster than one, both end to end (wall). The load average (1, 5, 15 min) is printed
beside every figure: on a machine other work keeps busy the wall ratios understate both (two
workers cannot have two cores), so the CPU ratio (backtesting.py's CPU over the 2-worker
sweep's) is printed against the same target; CPU time depends far less on the load. The last
lines are the ratios, with the targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET_VS_BT = 20.0  # the sweep vs backtesting.py's optimize, end to end (issue 24)
TARGET_SCALING = 1.7  # 2 workers vs 1, end to end
TRIGGERS = [round(0.01 * i, 2) for i in range(1, 21)]
LOWS = [round(0.02 * i, 2) for i in range(1, 21)]


def write_series(path: Path, years: int = 20, seed: int = 20240101) -> int:
    """Daily closes on weekdays from 2004-01-01; log-returns N(0.0003, 0.015)."""
    n = 252 * years
    start = np.datetime64("2004-01-01")
    days = np.arange(start, start + n * 2)
    days = days[np.is_busday(days)][:n]
    rng = np.random.default_rng(seed)
    prices = np.round(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n))), 2)
    with open(path, "w") as f:
        f.write("Date,Close\n")
        f.write("\n".join(f"{d},{p:.2f}" for d, p in zip(days.astype(str).tolist(),
                                                          prices.tolist(), strict=True)))
        f.write("\n")
    return n


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the process and every child it waited for, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def engine_cpu_per_cell(path: Path) -> float:
    """The 400 float cells in this process, one after the other: CPU ms a cell."""
    sys.path.insert(0, str(ROOT))
    from positions.strategy import rules
    from positions.strategy.backtest import data, engine
    from positions.strategy.research import sweep

    items = [sweep.Item("daily", data.load_csv(str(path)), ())]
    spec = sweep.Spec(rules.Config(), (sweep.parse_axis("trigger_pct=0.01:0.20:0.01"),
                                       sweep.parse_axis("guard_low=0.02:0.40:0.02")),
                      engine.Setup())
    bench = sweep.bench_returns(spec, items)
    cells = list(range(spec.n_cells))
    best = math.inf
    for _ in range(2):
        t = time.process_time()
        sweep.run_chunk(spec, items, bench, cells, False)
        best = min(best, time.process_time() - t)
    return best / len(cells) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of N sweep runs (default 3)")
    ap.add_argument("--skip-bt", action="store_true", help="do not run backtesting.py")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE if set: every process compiles the "
                         "project's modules from source at its start")
    args = ap.parse_args()
    cells = len(TRIGGERS) * len(LOWS)
    with tempfile.TemporaryDirectory(prefix="volbal-sweep-bench-") as tmp:
        path = Path(tmp) / "daily.csv"
        n = write_series(path)
        print(f"series: {n:,} daily bars (20 years); grid: {len(TRIGGERS)} triggers x "
              f"{len(LOWS)} lower guardrails = {cells} cells")
        print(f"machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
              f"{load()} at the start")
        print()
        per = engine_cpu_per_cell(path)
        print(f"engine: {per:5.2f} ms CPU a cell (400 float cells in one process; {load()})")
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="volbal.settings")
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        if not args.no_bytecode and env.pop("PYTHONDONTWRITEBYTECODE", None):
            # As installed, Python caches each module's bytecode (__pycache__, git-ignored);
            # with PYTHONDONTWRITEBYTECODE every start compiles the ~60 project modules the
            # command imports again (about 0.1 s CPU). A run before the timed ones caches them.
            print("bytecode: cached (PYTHONDONTWRITEBYTECODE unset for the runs; --no-bytecode "
                  "keeps it)")
        out = Path(tmp) / "sweep.json"
        base = [PY, str(ROOT / "manage.py"), "sweep", "--csv", str(path),
                "--no-progress", "--json-file", str(out)]
        one = base + ["--grid", "trigger_pct=0.05", "--grid", "guard_low=0.1", "--jobs", "1"]
        run(one, cwd=ROOT, env=env)  # untimed: caches the bytecode, warms the file cache
        base += ["--grid", "trigger_pct=0.01:0.20:0.01", "--grid", "guard_low=0.02:0.40:0.02"]
        wall = {1: math.inf, 2: math.inf}
        cpu = {1: math.inf, 2: math.inf}
        inside = {}
        floor_wall = floor_cpu = math.inf
        for _ in range(args.repeat):
            # The floor: the same command for one cell (interpreter, django.setup, the CSV, the
            # benchmarks, one cell and its exact re-run, the outputs): what no worker shares.
            w, c, _res = run(one, cwd=ROOT, env=env)
            floor_wall, floor_cpu = min(floor_wall, w), min(floor_cpu, c)
            for jobs in (1, 2):
                w, c, _res = run(base + ["--jobs", str(jobs)], cwd=ROOT, env=env)
                doc = json.loads(out.read_text())
                if w < wall[jobs]:
                    wall[jobs], inside[jobs] = w, doc["seconds"]
                cpu[jobs] = min(cpu[jobs], c)
        print(f"floor: manage.py sweep of 1 cell: {floor_wall:6.2f} s end to end, "
              f"{floor_cpu:6.2f} s CPU (start-up, CSV, benchmarks, outputs); {load()}")
        for jobs in (1, 2):
            print(f"manage.py sweep --jobs {jobs}: {wall[jobs]:6.2f} s end to end "
                  f"({wall[jobs] / cells * 1000:5.1f} ms a cell; {inside[jobs]:.2f} s in the "
                  f"command), {cpu[jobs]:6.2f} s CPU; {load()}")
        best = doc["best"]
        print(f"  best cell: {best['params']} sharpe {best['score']:.4f} (exact "
              f"{best['score_exact']:.4f}), stability {best['stability']:.4f}")
        scale = wall[1] / wall[2]
        bt_wall = None
        if not args.skip_bt:
            try:
                import backtesting  # noqa: F401
            except ImportError:
                print("\nbacktesting.py is not installed: pip install -r bench/requirements.txt")
            else:
                bt_wall, bt_cpu, res = run([PY, str(ROOT / "bench" / "sweep_bt_optimize.py"),
                                            str(path), ",".join(map(str, TRIGGERS)),
                                            ",".join(map(str, LOWS))], env=env)
                bt = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"backtesting.py Backtest.optimize, same grid ({bt['cells']} cells, every "
                      f"core): {bt_wall:6.2f} s end to end ({bt_wall / cells * 1000:5.1f} ms a "
                      f"cell; optimize alone {bt['optimize_s']:.2f} s), {bt_cpu:6.2f} s CPU; "
                      f"{load()}")
                print(f"  best {bt['best']}")
        print()
        print(f"RATIOS ({load()}):")
        print(f"  2 workers vs 1, end to end:             {scale:5.2f}x   [target >= "
              f"{TARGET_SCALING}x: {_met(scale >= TARGET_SCALING)}]   (in the command: "
              f"{inside[1] / inside[2]:.2f}x)")
        if bt_wall is not None:
            fastest = min(wall.values())
            ratio = bt_wall / fastest
            print(f"  sweep vs backtesting.py, end to end:    {ratio:5.1f}x   [target >= "
                  f"{TARGET_VS_BT:g}x: {_met(ratio >= TARGET_VS_BT)}]")
            ratio = bt_cpu / cpu[2]
            print(f"  sweep vs backtesting.py, CPU (2 workers): {ratio:5.1f}x [target >= "
                  f"{TARGET_VS_BT:g}x: {_met(ratio >= TARGET_VS_BT)}]")
            # The floor F is serial: with 2 workers at best wall2 = (wall1 + F) / 2, so
            # wall1 / wall2 >= s (1.7) needs wall1 >= F s / (2 - s), then wall2 >= F / (2 - s);
            # with wall2 <= bt / 20, both targets at once need F <= bt (2 - s) / 20.
            s = TARGET_SCALING
            print(f"  both targets at once need the 1-cell floor <= "
                  f"{bt_wall * (2 - s) / TARGET_VS_BT:.2f} s (measured {floor_wall:.2f} s); "
                  f"with it, {TARGET_VS_BT:g}x needs --jobs 1 <= "
                  f"{2 * bt_wall / TARGET_VS_BT - floor_wall:.2f} s and {s}x needs --jobs 1 >= "
                  f"{floor_wall * s / (2 - s):.2f} s")


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    main()
