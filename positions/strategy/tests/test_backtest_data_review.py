"""The backtest's data after issue 24's speed work (found by its review): one bad time in a long
plain CSV is refused with its line (numpy's bytes-to-datetime cast over more than 500 items
crashed the process), and a backtested Series still pickles and deep-copies."""

from __future__ import annotations

import copy
import math
import pickle
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine


def _series():
    day0 = np.datetime64("2024-01-01", "D")
    pts = [(str(day0 + i), round(100 * (1 + 0.12 * math.sin(i / 9.0)), 2)) for i in range(120)]
    return data.series_from_points(pts, name="W")


def test_a_backtested_series_still_pickles_and_deep_copies():
    series = _series()
    engine.run(series, rules.Config(min_notional=Decimal(0)))
    back = pickle.loads(pickle.dumps(series))
    assert np.array_equal(back.prices, series.prices)
    assert np.array_equal(copy.deepcopy(series).times, series.times)


def _load_in_child(path) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[3]
    code = ("from positions.strategy.backtest import data\n"
            "try:\n"
            f"    data.load_csv({str(path)!r})\n"
            "    print('accepted')\n"
            "except data.DataError as exc:\n"
            "    print('refused:', exc)\n")
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(root), "PATH": ""})


@pytest.mark.parametrize("bad", ["2024-01-0x", "2024-13-01", " 2024-01-0"])
def test_one_bad_time_in_a_long_plain_file_is_refused_with_its_line(tmp_path, bad):
    day0 = np.datetime64("2020-01-01", "D")
    rows = [f"{day0 + i},{100 + i % 7}.5" for i in range(1500)]
    rows[1200] = f"{bad},101.5"
    path = tmp_path / "long.csv"
    path.write_text("Date,Close\n" + "\n".join(rows) + "\n")
    done = _load_in_child(path)
    assert done.returncode == 0, f"the reader crashed: exit {done.returncode} {done.stderr[-300:]}"
    assert done.stdout.startswith("refused:") and "line 1202" in done.stdout, done.stdout
