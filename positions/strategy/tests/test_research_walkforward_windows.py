"""A walk-forward's last window, cut short by the end of the series, is dropped when its test
part is under half the test length, and the result says so (docs/strategy.md#research)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.research import output, sweep
from positions.strategy.research import walkforward as wf


def series(n):
    day0 = np.datetime64("2024-01-01", "D")
    return data.series_from_points([(str(day0 + i), 100 + (i % 7)) for i in range(n)],
                                   name="T")


def test_a_last_test_part_under_half_the_test_length_is_dropped():
    train, test = wf.Length(10, ""), wf.Length(10, "")
    wins = wf.windows(series(34), train, test)  # tests 10-19, 20-29, then 30-33 (4 < 5)
    assert [w.test for w in wins] == [(10, 20), (20, 30)]
    assert wins.dropped.test == (30, 34)
    assert wins.note(test) == ("The last window (test bars 30 to 33) was dropped: its test "
                               "part, cut short by the end of the series, is less than half "
                               "of 10 bars.")


def test_half_the_test_length_or_more_is_kept():
    train, test = wf.Length(10, ""), wf.Length(10, "")
    wins = wf.windows(series(35), train, test)  # the last test part 30-34: 5 of 10 bars
    assert [w.test for w in wins] == [(10, 20), (20, 30), (30, 35)]
    assert wins.dropped is None and wins.note(test) is None


def test_the_only_window_is_never_dropped():
    wins = wf.windows(series(12), wf.Length(10, ""), wf.Length(10, ""))
    assert [w.test for w in wins] == [(10, 12)] and wins.dropped is None


def test_the_walk_forward_says_so_in_its_table_and_document():
    s = series(34)
    spec = sweep.Spec(rules.Config(min_notional=Decimal(0)),
                      (sweep.parse_axis("trigger_pct=0.02,0.04"),),
                      setup=engine.Setup(cash=Decimal("10000")))
    res = wf.run(spec, sweep.Item("T", s, ()), wf.Length(10, ""), wf.Length(10, ""))
    assert [w.window.test for w in res.windows] == [(10, 20), (20, 30)]
    assert "The last window (test bars 30 to 33) was dropped" in output.wf_table(res)
    assert output.wf_document(res)["note"] == res.note
    assert res.oos_series.prices.size == 20  # the stitched run ends with the kept windows
