"""The backtest's ``fill: limit`` (docs/strategy.md#resting-orders, docs/backtests.md): the
ladder's rungs rest from the bar after the state they were derived from and fill on a later bar
whose range reaches them, at the limit or at the open of a bar that gaps through it; one fill
per bar, the other rung cancelled. Hand-checked bars, properties, and reference figures."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.ladder import resting

D = Decimal
LIMIT = engine.Setup(fill="limit")
PLAIN = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0), guard_high=D(1))


def bars(*ohlc, start="2024-01-01"):
    """Daily OHLC bars from (open, high, low, close) tuples (a number alone: a flat bar)."""
    ohlc = [b if isinstance(b, tuple) else (b, b, b, b) for b in ohlc]
    first = dt.date.fromisoformat(start)
    s = data.series_from_points(
        [((first + dt.timedelta(days=i)).isoformat(), float(b[3])) for i, b in enumerate(ohlc)])
    o, h, lo = (np.array([float(b[k]) for b in ohlc]) for k in (0, 1, 2))
    return dataclasses.replace(s, opens=o, highs=h, lows=lo)


def walk(moves):
    """OHLC bars from 100: each move (gap, up, down, u) opens the bar ``gap`` basis points
    from the last close, spans ``up`` above and ``down`` below its open and closes at ``u``
    thousandths of its range (all to the cent)."""
    p = 100.0
    out = [(100, 100, 100, 100)]
    for gap, up, down, u in moves:
        o = round(max(p * (1 + gap / 10_000), 1), 2)
        h = round(o * (1 + up / 10_000), 2)
        lo = round(o * (1 - down / 10_000), 2)
        c = round(lo + (h - lo) * u / 1000, 2)
        out.append((o, h, lo, c))
        p = c
    return out


def rows(run):
    return [(o.bar, o.side, o.price, o.kind) for o in run.orders]


def opening():
    """Bar 0 at 100: 50 shares, 5000 of cash, anchor 100; the rungs rest at 97 and 103."""
    return rules.State(D(50), D("5000.000000"), D(0), D(100))


def test_a_bar_touching_the_limit_fills_at_the_limit():
    run = engine.run(bars(100, (99, 100, 97, 98)), PLAIN, LIMIT)
    q = resting(opening(), PLAIN).buy.qty
    assert rows(run)[1:] == [(1, "BUY", D("97.00"), "buy_trigger")]
    assert run.orders[1].qty == q
    assert run.anchor == D("97.00")
    # One tick short: nothing.
    run = engine.run(bars(100, (99, 100, D("97.01"), 98)), PLAIN, LIMIT)
    assert len(run.orders) == 1


def test_a_gap_through_the_limit_fills_at_the_open():
    run = engine.run(bars(100, (95, 96, 94, D("95.5"))), PLAIN, LIMIT)
    assert rows(run)[1:] == [(1, "BUY", D(95), "buy_trigger")]
    # the quantity is the rung's (sized at 97), bought cheaper
    assert run.orders[1].qty == resting(opening(), PLAIN).buy.qty
    run = engine.run(bars(100, (106, 107, 105, 106)), PLAIN, LIMIT)
    assert rows(run)[1:] == [(1, "SELL", D(106), "sell_trigger")]


def test_one_fill_per_bar_the_other_rung_cancelled():
    """A bar reaching both rungs fills the one nearer its open (the low here), cancels the
    other; the new pair (around 97: 94.09 and 99.91) rests from the next bar, whose range
    reaches the new sell."""
    wide = (99, 104, 96, 100)
    run = engine.run(bars(100, wide, wide), PLAIN, LIMIT)
    assert rows(run)[1:] == [(1, "BUY", D("97.00"), "buy_trigger"),
                             (2, "SELL", D("99.91"), "sell_trigger")]
    # Nearer the high: the sell first.
    run = engine.run(bars(100, (102, 104, 96, 100)), PLAIN, LIMIT)
    assert rows(run)[1:] == [(1, "SELL", D("103.00"), "sell_trigger")]


def test_closes_only_fill_at_the_close_that_reaches_the_rung():
    run = engine.run(bars(100, 98, D("96.5"), 97), PLAIN, LIMIT)
    assert rows(run)[1:] == [(2, "BUY", D("96.5"), "buy_trigger")]


def test_a_dividend_cancels_the_rungs_before_the_bar():
    """The ex-date moves the anchor (100 - 1 = 99): the resting 97 buy is cancelled before the
    bar is read, so the bar touching 97 fills nothing; the new rungs (96.03) rest from the
    next bar."""
    div = data.Dividend(dt.date(2024, 1, 2), dt.date(2024, 1, 20), D(1))
    run = engine.run(bars(100, (99, 99, 97, 98), (97, 97, 96, D("96.5"))), PLAIN, LIMIT, [div])
    assert rows(run)[1:] == [(2, "BUY", D("96.03"), "buy_trigger")]


def test_no_shares_rests_nothing_and_trades_at_market_next_bar():
    """Start weight 0: the buy is 'always' (weight 0 at any price, under the 25 % guardrail):
    nothing rests; the close proposes the guardrail buy and it fills at the next bar as
    next_bar does; from then on the rungs rest."""
    cfg = rules.Config(commission_rate=D(0))
    setup = dataclasses.replace(LIMIT, start_weight=D(0))
    run = engine.run(bars(100, 100, 100), cfg, setup)
    assert rows(run) == [(1, "BUY", D(100), "guardrail_rebalance")]


@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-400, 400), st.integers(0, 400), st.integers(0, 400),
                          st.integers(0, 1000)), min_size=2, max_size=60),
       st.sampled_from([D("0.02"), D("0.05")]), st.booleans())
def test_a_limit_never_fills_beyond_its_price(moves, tau, exact):
    """Random walks of OHLC bars: every resting order filled is a buy at or under its limit
    (itself at or under the ladder's trigger) or a sell at or over it, inside its bar's range,
    at most one order per bar."""
    series = bars(*walk(moves))
    cfg = rules.Config(trigger_pct=tau, commission_rate=D("0.001"))
    run = engine.run(series, cfg, LIMIT, exact=exact)
    per_bar = [o.bar for o in run.orders]
    assert len(per_bar) == len(set(per_bar))
    for k, rung, limit in run.rungs:
        o = run.orders[k]
        b = o.bar
        assert float(series.lows[b]) <= float(o.price) <= float(series.highs[b])
        if o.side == "BUY":
            assert limit <= rung and float(o.price) <= float(limit)
        else:
            assert limit >= rung and float(o.price) >= float(limit)


@pytest.mark.parametrize("ticker, orders, resting_fills, value", [
    ("AAPL", 1631, 1628, "27227.34"), ("IBM", 734, 722, "18340.82"),
    ("MSFT", 931, 923, "13020.01")])
def test_reference_figures_on_the_bundled_samples(ticker, orders, resting_fills, value):
    """The default strategy on a bundled OHLC sample (dividends credited): the figures quoted
    in docs/backtests.md. The orders that are not resting fills besides the opening are market
    orders of bars whose dividend cancelled the rungs while the close lay beyond the new ones;
    the float run fills the same orders."""
    series, dividends = data.load_sample(ticker)
    run = engine.run(series, rules.Config(), LIMIT, dividends)
    V = run.qty * D(repr(float(series.prices[-1]))) + run.cash + run.receivable
    assert (len(run.orders), len(run.rungs), V.quantize(D("0.01"))) == (
        orders, resting_fills, D(value))
    fl = engine.run(series, rules.Config(), LIMIT, dividends, exact=False)
    assert [(o.bar, o.side) for o in fl.orders] == [(o.bar, o.side) for o in run.orders]
    assert fl.cash == pytest.approx(float(run.cash), abs=0.01)


def test_csv_ohlc_read_on_request_and_checked(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("Date,Open,High,Low,Close\n2024-01-02,100,101,99,100.5\n"
                 "2024-01-03,100,102,97,98\n")
    assert data.load_csv(f).lows is None  # closes only unless asked
    s = data.load_csv(f, ohlc=True)
    assert s.lows.tolist() == [99, 97] and s.highs.tolist() == [101, 102]
    run = engine.run(s, PLAIN, LIMIT)
    # 100.5 * 0.97 = 97.485, rounded down onto the tick
    assert rows(run)[1:] == [(1, "BUY", D("97.48"), "buy_trigger")]
    assert s.between("2024-01-03", None).opens.tolist() == [100]
    f.write_text("Date,Open,High,Low,Close\n2024-01-02,100,101,99,102\n")
    with pytest.raises(data.DataError, match="line 2 .*must hold its open and close"):
        data.load_csv(f, ohlc=True)
    for row in ("100,101,0,100.5", "100,101,-3,100.5", "-1,101,99,100.5"):
        f.write_text(f"Date,Open,High,Low,Close\n2024-01-02,{row}\n")
        with pytest.raises(data.DataError, match="line 2 .*must be a positive number"):
            data.load_csv(f, ohlc=True)
    f.write_text("Date,Close\n2024-01-02,100\n")
    assert data.load_csv(f, ohlc=True).lows is None


def test_the_limit_report_shows_next_bar_beside_it_in_the_workbook_and_the_picture(tmp_path):
    """A limit run's report carries the same series under next_bar: the JSON's comparison,
    the workbook's rows (the same figures) and the picture's second equity curve."""
    import openpyxl

    from positions.strategy.backtest import report
    from positions.strategy.export import charts, tables

    series = bars(100, (99, 100, 96, 97), (97, 98, 94, 95), (95, 101, 95, 100),
                  (100, 104, 100, 103), 103)
    rep = report.backtest(series, PLAIN, LIMIT)
    doc = report.document(rep)["comparison"]
    assert doc["limit"]["trades"] == len(rep.strategy.orders)
    nb = engine.run(series, PLAIN, dataclasses.replace(LIMIT, fill="next_bar"))
    assert doc["next_bar"]["trades"] == len(nb.orders)
    assert doc["limit"]["total_return"] != doc["next_bar"]["total_return"]
    path = tmp_path / "r.xlsx"
    tables.write_backtest_xlsx(rep, path)
    rows_ = {r[-1]: r for r in openpyxl.load_workbook(path)["Summary"].iter_rows(values_only=True)
             if r and r[-1] in ("limit", "next_bar")}
    for key in ("limit", "next_bar"):
        assert rows_[key][1] == pytest.approx(doc[key]["total_return"], abs=1e-6)
        assert rows_[key][2] == doc[key]["trades"]
    png = tmp_path / "r.png"
    charts.write_backtest_plot(rep, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The equity panel draws the next_bar run's curve: its final value is the run's.
    assert rep.comparison["next_bar"]["equity"][-1] == pytest.approx(
        float(nb.qty) * 103 + float(nb.cash))


@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-300, 300), st.integers(0, 300), st.integers(0, 300),
                          st.integers(0, 1000)), min_size=2, max_size=80),
       st.booleans(), st.booleans())
def test_skipping_bars_no_rung_can_reach_changes_nothing(moves, exact, ohlc):
    """The limit loop skips to the first bar whose range may reach a rung (or that holds a
    corporate action): the same orders and books as reading every bar (``fast=False``), on
    OHLC bars and on closes, with dividends."""
    rows_ = walk(moves)
    series = bars(*(rows_ if ohlc else [r[3] for r in rows_]))
    if not ohlc:
        series = dataclasses.replace(series, opens=None, highs=None, lows=None)
    divs = [data.Dividend(dt.date(2024, 1, 1) + dt.timedelta(days=k),
                          dt.date(2024, 1, 1) + dt.timedelta(days=k + 3), D("0.5"))
            for k in range(5, len(rows_), 17)]
    cfg = rules.Config(trigger_pct=D("0.02"), commission_rate=D("0.001"), max_orders_per_day=1)
    fast = engine.run(series, cfg, LIMIT, divs, exact=exact)
    plain = engine.run(series, cfg, LIMIT, divs, exact=exact, fast=False)
    assert [(o.bar, o.side, o.qty, o.price) for o in fast.orders] == [
        (o.bar, o.side, o.qty, o.price) for o in plain.orders]
    assert (fast.qty, fast.cash, fast.receivable, fast.anchor) == (
        plain.qty, plain.cash, plain.receivable, plain.anchor)
    assert fast.rungs == plain.rungs
    assert np.array_equal(fast.change_bar, plain.change_bar)


def test_skipping_bars_on_the_bundled_samples_changes_nothing():
    for ticker in ("AAPL", "IBM"):
        series, dividends = data.load_sample(ticker)
        fast = engine.run(series, rules.Config(), LIMIT, dividends, exact=False)
        plain = engine.run(series, rules.Config(), LIMIT, dividends, exact=False, fast=False)
        assert [(o.bar, o.side, o.qty, o.price) for o in fast.orders] == [
            (o.bar, o.side, o.qty, o.price) for o in plain.orders]
        assert np.array_equal(fast.change_bar, plain.change_bar)


def test_a_limit_run_reports_its_progress_in_bars():
    series, dividends = data.load_sample("IBM")
    seen = []
    engine.run(series, rules.Config(), LIMIT, dividends, exact=False, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == len(series)
    assert 100 < len(seen) <= 401  # about every 1/400 of the bars, not every bar
