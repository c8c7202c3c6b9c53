"""Walk-forward (docs/strategy.md#research): the windows, the state carried across them, the
stitched out-of-sample report. ``manage.py walkforward`` is tested in
positions/research/tests/test_walkforward_command.py."""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_DOWN, Decimal

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine, report
from positions.strategy.research import sweep
from positions.strategy.research import walkforward as wf

D = Decimal


def daily(prices, start="2024-01-01", name="T"):
    day0 = np.datetime64(start, "D")
    return data.series_from_points([(str(day0 + i), p) for i, p in enumerate(prices)],
                                   name=name)


def wave(n=400):
    return daily([round(100 * (1 + 0.0005 * i) * (1 + 0.12 * math.sin(i / 9)), 2)
                  for i in range(n)], name="W")


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


def test_windows_in_bars_are_adjacent_test_windows():
    wins = wf.windows(daily([100] * 10), wf.parse_length("4", "train"),
                      wf.parse_length("3", "test"))
    assert [(w.train, w.test) for w in wins] == [((0, 4), (4, 7)), ((3, 7), (7, 10))]


def test_windows_in_calendar_months_and_a_short_last_test():
    s = daily([100] * 200)  # 2024-01-01 to 2024-07-18
    wins = wf.windows(s, wf.parse_length("2m", "train"), wf.parse_length("2m", "test"))
    spans = [(s.label(w.train[0]), s.label(w.test[0]), s.label(w.test[1] - 1)) for w in wins]
    assert spans == [("2024-01-01", "2024-03-01", "2024-04-30"),
                     ("2024-03-01", "2024-05-01", "2024-06-30")]
    # the last test part, 2024-07-01 to 2024-07-18, is under half of two months: dropped
    assert s.label(wins.dropped.test[0]) == "2024-07-01"

    s = daily([100] * 230)  # to 2024-08-17: the last test part is over half of two months
    wins = wf.windows(s, wf.parse_length("2m", "train"), wf.parse_length("2m", "test"))
    assert s.label(wins[-1].test[1] - 1) == "2024-08-17" and wins.dropped is None


@pytest.mark.parametrize("text", ["0", "3w", "-1", "y", ""])
def test_bad_lengths(text):
    with pytest.raises(sweep.GridError, match="is not a length"):
        wf.parse_length(text, "--train")


def test_a_series_too_short_for_one_window():
    with pytest.raises(sweep.GridError, match=r"too short for one window of train 10 bars"):
        wf.windows(daily([100] * 10), wf.Length(10, ""), wf.Length(5, ""))


# --------------------------------------------------------------------------------------------
# One run, its configuration changed between windows, the state carried over
# --------------------------------------------------------------------------------------------

FREE = dict(rebalance_ratio=D(1), guard_low=D(0), guard_high=D(1), commission_rate=D(0),
            min_notional=D(0))


def test_the_new_window_configuration_applies_from_its_first_bar():
    # Opening: 50 shares at 100, cash 5000. Bar 2 at 104 is 4 % above the anchor: no trigger at
    # 5 % (the first window), a sell at 3 % (the second, from bar 2).
    s = daily([100, 101, 104, 104])
    wide = rules.Config(trigger_pct=D("0.05"), **FREE)
    narrow = rules.Config(trigger_pct=D("0.03"), **FREE)
    assert [o.bar for o in engine.run(s, wide).orders] == [0]
    run = wf.run_windows(s, [(0, wide), (2, narrow)])
    (opening, sell) = run.orders
    assert (opening.kind, sell.bar, sell.side, sell.kind) == ("opening", 2, "SELL",
                                                              "sell_trigger")
    # proportional: |Pa/P - 1| * r * V/P with V = 50 * 104 + 5000 = 10200.
    want = (abs(D(100) / D(104) - 1) * D(10200) / D(104)).quantize(D("0.00000001"), ROUND_DOWN)
    assert sell.qty == want
    # Switching back at bar 3 to the wide trigger: 104 against the anchor 104 fires nothing.
    assert len(wf.run_windows(s, [(0, wide), (2, narrow), (3, wide)]).orders) == 2


def test_state_and_pending_dividends_carry_over_a_window_boundary():
    # A dividend goes ex in the first window and is paid in the second; with the same
    # configuration in every window the walk-forward run is the plain run, order by order.
    s = wave(120)
    divs = [data.Dividend(dt.date(2024, 2, 10), dt.date(2024, 3, 5), D("0.8"))]
    cfg = rules.Config()
    same = rules.Config()
    plain = engine.run(s, cfg, dividends=divs)
    walked = wf.run_windows(s, [(0, cfg), (40, same), (80, rules.Config())], dividends=divs)
    assert [(o.bar, o.side, o.qty, o.price) for o in walked.orders] == [
        (o.bar, o.side, o.qty, o.price) for o in plain.orders]
    assert (walked.qty, walked.cash, walked.receivable, walked.anchor, walked.dividends) == (
        plain.qty, plain.cash, plain.receivable, plain.anchor, plain.dividends)
    assert walked.dividends > 0
    assert [o.kind for o in walked.orders].count("opening") == 1  # no second opening


def test_walk_forward_picks_the_best_train_cell_and_stitches_the_test_windows():
    s = wave(400)
    spec = sweep.Spec(rules.Config(min_notional=D(0)),
                      (sweep.parse_axis("trigger_pct=0.02,0.05,0.10"),), exact=True)
    item = sweep.Item("W", s)
    res = wf.run(spec, item, wf.Length(150, ""), wf.Length(100, ""))
    assert [(w.window.train, w.window.test) for w in res.windows] == [
        ((0, 150), (150, 250)), ((100, 250), (250, 350)), ((200, 350), (350, 400))]
    for w in res.windows:
        # The chosen cell is the best of a sweep over the train part alone.
        part = sweep.Item("W", wf._slice(s, *w.window.train))
        alone = sweep.run(spec, [part])
        assert w.cell == alone.best
        assert w.in_sample["sharpe"] == pytest.approx(alone.score[alone.best])
    # The stitched run covers the test windows exactly and is the run with those configs.
    rep = res.report
    assert (rep.series.label(0), len(rep.series)) == (s.label(150), 250)
    configs = [(w.window.test[0] - 150, spec.config(w.cell)) for w in res.windows]
    again = wf.run_windows(wf._slice(s, 150, 400), configs)
    assert [(o.bar, o.qty) for o in rep.strategy.orders] == [(o.bar, o.qty)
                                                             for o in again.orders]
    # Benchmarks over the same out-of-sample span: the backtest's own.
    plain = report.backtest(wf._slice(s, 150, 400), spec.base)
    for k, b in rep.benchmarks.items():
        assert b.metrics == plain.benchmarks[k].metrics
    # Each window's out-of-sample return chains into the stitched one.
    growth = np.prod([1 + w.out_of_sample["total_return"] for w in res.windows])
    assert growth - 1 == pytest.approx(rep.metrics["total_return"])
