"""How fast is ``manage.py backtest``? One run prints every figure of its targets.

    .venv/bin/pip install -r bench/requirements.txt   # pandas, backtesting (bench only)
    .venv/bin/python bench/backtest_speed.py          # 1,000,000 minute bars

It writes a random-walk series of minute bars (fixed seed, 390 bars a weekday) as a Date,Close
CSV in a temporary directory, then times, best of --repeat runs:

- pandas reading that CSV: ``pandas.read_csv(path)`` in a fresh process, start to finish
  (interpreter, ``import pandas``, read), and inside one warm process (the read alone);
- ``python manage.py backtest --csv FILE --json`` in a fresh process, start to JSON out;
- backtesting.py (bench/backtest_bt_strategy.py, a comparable band strategy) on the same bars,
  in a fresh process: its run alone and start to finish. ``--bt-bars N`` runs it on the first N
  bars only and scales its times linearly to the full series (said so in the output).

Targets: the command within 2.5x the pandas read, and at least 10x faster than
backtesting.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def write_series(path: Path, bars: int, seed: int = 20240101) -> None:
    """Minute bars 09:30-15:59 on weekdays from 2012-01-02; log-returns N(0, 0.0006)."""
    rng = np.random.default_rng(seed)
    days = []
    d = dt.date(2012, 1, 2)
    while len(days) * 390 < bars:
        if d.weekday() < 5:
            days.append(np.datetime64(d, "m"))
        d += dt.timedelta(days=1)
    minutes = (np.array(days)[:, None] + np.timedelta64(570, "m")
               + np.arange(390).astype("timedelta64[m]")).ravel()[:bars]
    prices = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0006, bars))), 2)
    stamps = np.char.replace(np.datetime_as_string(minutes, unit="s"), "T", " ")
    with open(path, "w") as f:
        f.write("Date,Close\n")
        f.write("\n".join(f"{t},{p:.2f}" for t, p in zip(stamps.tolist(), prices.tolist(),
                                                          strict=True)))
        f.write("\n")


def timed(cmd: list[str], repeat: int, **kw) -> tuple[float, subprocess.CompletedProcess]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    ap.add_argument("--bt-bars", type=int, default=None,
                    help="run backtesting.py on the first N bars and scale (default: all)")
    ap.add_argument("--bt-repeat", type=int, default=1, help="best of N for backtesting.py")
    ap.add_argument("--skip-bt", action="store_true", help="do not run backtesting.py")
    args = ap.parse_args()
    n = args.bars

    with tempfile.TemporaryDirectory(prefix="volbal-bench-") as tmp:
        path = Path(tmp) / "minutes.csv"
        t = time.perf_counter()
        write_series(path, n)
        size = path.stat().st_size
        print(f"series: {n:,} minute bars, {size / 1e6:.1f} MB CSV "
              f"(written in {time.perf_counter() - t:.1f} s)")
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; best of "
              f"{args.repeat} runs unless said otherwise")
        print()

        # pandas: a fresh process, and the read alone in a warm one.
        pd_proc, _ = timed([PY, "-c", "import sys, pandas; pandas.read_csv(sys.argv[1])",
                            str(path)], args.repeat)
        import pandas

        pd_read = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            pandas.read_csv(path)
            pd_read = min(pd_read, time.perf_counter() - t)

        # The command, start to JSON out.
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="volbal.settings")
        cmd_time, res = timed([PY, str(ROOT / "manage.py"), "backtest", "--csv", str(path),
                               "--json"], args.repeat, cwd=ROOT, env=env)
        doc = json.loads(res.stdout)
        orders = len(doc["orders"])

        print(f"pandas.read_csv, fresh process (start, import, read): {pd_proc:7.3f} s")
        print(f"pandas.read_csv, read alone in a warm process:        {pd_read:7.3f} s")
        print(f"manage.py backtest --csv --json, start to JSON out:    {cmd_time:7.3f} s   "
              f"({orders:,} orders, final value {doc['metrics']['final_value']:,.2f})")
        print(f"  throughput: {n / cmd_time:,.0f} bars/s end to end")
        r1, r2 = cmd_time / pd_proc, cmd_time / pd_read
        print(f"  vs pandas, process to process:  {r1:5.2f}x the pandas read   "
              f"[target <= 2.5x: {'met' if r1 <= 2.5 else 'MISSED'}]")
        print(f"  vs pandas, read alone:          {r2:5.2f}x the pandas read   "
              f"[target <= 2.5x: {'met' if r2 <= 2.5 else 'MISSED'}]")

        if args.skip_bt:
            return
        try:
            import backtesting  # noqa: F401
        except ImportError:
            print("\nbacktesting.py is not installed: pip install -r bench/requirements.txt")
            return
        bt_bars = min(args.bt_bars or n, n)
        bt_time, res = timed([PY, str(ROOT / "bench" / "backtest_bt_strategy.py"), str(path),
                              str(bt_bars)], args.bt_repeat)
        bt = json.loads(res.stdout.strip().splitlines()[-1])
        scale = n / bt_bars
        run_s, total_s = bt["run_s"] * scale, bt_time if scale == 1 else (
            bt_time - bt["run_s"] - bt["read_s"] + (bt["run_s"] + bt["read_s"]) * scale)
        print()
        note = "" if scale == 1 else (f" (ran on {bt_bars:,} bars, times scaled x{scale:g} to "
                                      f"{n:,})")
        print(f"backtesting.py, comparable band strategy{note}:")
        print(f"  its run alone (Backtest.run):       {run_s:7.3f} s   "
              f"({bt['trades']:,} trades{'' if scale == 1 else ' on the slice'})")
        print(f"  fresh process, start to stats out:  {total_s:7.3f} s")
        s1, s2 = run_s / cmd_time, total_s / cmd_time
        print(f"  manage.py backtest is {s1:5.1f}x faster than its run alone   "
              f"[target >= 10x: {'met' if s1 >= 10 else 'MISSED'}]")
        print(f"  manage.py backtest is {s2:5.1f}x faster, process to process "
              f"[target >= 10x: {'met' if s2 >= 10 else 'MISSED'}]")


if __name__ == "__main__":
    main()
