"""Review of issue 24's speed work (branch h24-review): defects found, each pinned by a test
that fails on the merge (xfail strict, the defect in the reason) so the fix turns it green."""

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


@pytest.mark.xfail(strict=True, reason=(
    "h24 (9068de2/d73ca7c): Series.price_list is now a cached memoryview of the prices, so a "
    "Series that has been backtested once can no longer be pickled or deep-copied (TypeError: "
    "cannot pickle memoryview objects); at 659ba9f it was a list and both worked. cloudpickle "
    "(loky, dask) copes, the standard library does not."))
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


@pytest.mark.xfail(strict=True, reason=(
    "The plain reader (data._parse_plain) casts every row's time at once with numpy's "
    "astype('M8[s]'); numpy 2.4.6 crashes the process (SIGSEGV) when that cast fails on an "
    "array of ~1,000 strings or more, so ONE malformed time (a typo, a lower-case 't', a "
    "leading space) in a plain CSV of 1,000+ rows kills `manage.py backtest --csv`/`sweep` "
    "instead of a DataError naming the line. Also so at 659ba9f; d73ca7c/_zoned only keeps "
    "UTC offsets away from the cast. Fix: cast in pieces of a few hundred rows, or check the "
    "layout's digits before the cast."))
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
