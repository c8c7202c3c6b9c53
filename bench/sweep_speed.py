"""How fast is ``manage.py sweep``? One run prints every figure of issue 13's speed targets.

    .venv/bin/pip install -r bench/requirements.txt   # pandas, backtesting (bench only)
    .venv/bin/python bench/sweep_speed.py             # 400 cells, 20 years of daily bars

It writes 20 years of daily bars (a random walk, fixed seed, weekdays) as a Date,Close CSV in a
temporary directory, then times, as processes from start to results on disk, best of --repeat:

- ``manage.py sweep --csv FILE --grid trigger_pct=0.01:0.20:0.01 --grid
  guard_low=0.02:0.40:0.02 --jobs 1`` (one process) and ``--jobs 2`` (two worker processes);
  floats for the 400 cells, the top 10 re-run exact (the command's default);
- backtesting.py's ``Backtest.optimize`` over the same 20 x 20 grid of its comparable band
  strategy (bench/sweep_bt_optimize.py; it uses every core too).

Targets (the issue): the sweep at least 10x faster than ``Backtest.optimize``, and 2 workers at
least 1.7x faster than one. The machine's load is printed beside: both are measured in this run,
so a loaded machine slows both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from backtest_speed import timed  # bench/ is on the path when run as a script

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2, help="best of N (default 2)")
    ap.add_argument("--skip-bt", action="store_true", help="do not run backtesting.py")
    args = ap.parse_args()
    cells = len(TRIGGERS) * len(LOWS)
    with tempfile.TemporaryDirectory(prefix="volbal-sweep-bench-") as tmp:
        path = Path(tmp) / "daily.csv"
        n = write_series(path)
        print(f"series: {n:,} daily bars (20 years); grid: {len(TRIGGERS)} triggers x "
              f"{len(LOWS)} lower guardrails = {cells} cells")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the "
              f"start; Python {sys.version.split()[0]}; best of {args.repeat} runs")
        print()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="volbal.settings")
        env.pop("DASK_SCHEDULER_ADDRESS", None)
        out = Path(tmp) / "sweep.json"
        base = [PY, str(ROOT / "manage.py"), "sweep", "--csv", str(path),
                "--grid", "trigger_pct=0.01:0.20:0.01", "--grid", "guard_low=0.02:0.40:0.02",
                "--no-progress", "--json-file", str(out)]
        times = {}
        for jobs in (1, 2):
            times[jobs], _ = timed(base + ["--jobs", str(jobs)], args.repeat, cwd=ROOT, env=env)
            doc = json.loads(out.read_text())
            per = times[jobs] / cells * 1000
            print(f"manage.py sweep --jobs {jobs}: {times[jobs]:7.2f} s end to end "
                  f"({per:5.1f} ms a cell; in the command {doc['seconds']:.2f} s on "
                  f"{doc['workers']})")
        best = doc["best"]
        print(f"  best cell: {best['params']} sharpe {best['score']:.4f} (exact "
              f"{best['score_exact']:.4f}), stability {best['stability']:.4f}")
        scale = times[1] / times[2]
        print(f"  2 workers vs 1: {scale:4.2f}x   [target >= 1.7x: "
              f"{'met' if scale >= 1.7 else 'MISSED'}]")
        print(f"  load average now {os.getloadavg()[0]:.1f}")
        if args.skip_bt:
            return
        try:
            import backtesting  # noqa: F401
        except ImportError:
            print("\nbacktesting.py is not installed: pip install -r bench/requirements.txt")
            return
        bt_time, res = timed([PY, str(ROOT / "bench" / "sweep_bt_optimize.py"), str(path),
                              ",".join(map(str, TRIGGERS)), ",".join(map(str, LOWS))], 1)
        bt = json.loads(res.stdout.strip().splitlines()[-1])
        print()
        print(f"backtesting.py Backtest.optimize, same grid ({bt['cells']} cells, every core): "
              f"{bt_time:7.2f} s end to end ({bt_time / cells * 1000:5.1f} ms a cell; "
              f"optimize alone {bt['optimize_s']:.2f} s); best {bt['best']}")
        fastest = min(times.values())
        ratio = bt_time / fastest
        print(f"  manage.py sweep is {ratio:5.1f}x faster, process to process   "
              f"[target >= 10x: {'met' if ratio >= 10 else 'MISSED'}]")
        print(f"  load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
