"""Backtest metrics on small series whose answers are worked out by hand
(docs/strategy.md#backtest)."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine, metrics, report

D = Decimal
ANN = math.sqrt(252)


def daily(prices, start="2024-01-01"):
    """Consecutive calendar days from ``start``."""
    day0 = np.datetime64(start, "D")
    return data.series_from_points(
        [(str(day0 + i), p) for i, p in enumerate(prices)], name="T")


def run(series, cfg, setup=engine.Setup(), dividends=()):
    return report.backtest(series, cfg, setup, list(dividends))


FREE = dict(commission_rate=D(0), min_notional=D(0))


def test_flat_series():
    rep = run(daily([100] * 10), rules.Config(commission_rate=D(0)))
    m = rep.metrics
    # Opening: buy_to(0.5) = 0.5 * 10000 / (100 * (1 + 0.5 * 0)) = 50 shares, 5000 cash left.
    assert [(o.side, o.qty, o.price, o.kind) for o in rep.strategy.orders] == [
        ("BUY", D(50), D(100), "opening")]
    assert m["total_return"] == 0
    # Ten bars over nine days: too short to annualise (60 days and 20 bars at least).
    assert [m[k] for k in metrics.ANNUALISED] == [None] * 5
    assert rep.note.startswith("CAGR, volatility, Sharpe, Sortino and turnover are left out")
    assert m["max_drawdown"] == 0 and m["max_drawdown_days"] == 0
    assert (m["buys"], m["sells"]) == (1, 0)
    assert m["commissions"] == 0 and m["dividends"] == 0
    assert m["in_band_share"] == 1.0
    assert (m["final_qty"], m["final_cash"], m["final_value"]) == (D(50), D(5000), D(10000))
    assert rep.hold_metrics == m  # nothing ever triggers: the strategy holds


def test_flat_series_with_commission():
    rep = run(daily([100] * 3), rules.Config())
    m = rep.metrics
    # q = 5000 / (100 * 1.00005) = 49.99750012 (8 places, toward zero); notional 4999.750012;
    # commission 0.0001 * 4999.750012 = 0.499975 (6 places); cash 10000 - 4999.750012 - 0.499975.
    (o,) = rep.strategy.orders
    assert (o.qty, o.notional, o.commission) == (D("49.99750012"), D("4999.750012"),
                                                D("0.499975"))
    assert m["final_cash"] == D("4999.750013")
    assert m["final_value"] == D("9999.500025")
    assert m["total_return"] == pytest.approx(-0.0000499975)
    assert m["commissions"] == D("0.499975")


def test_single_round_trip():
    # fixed_fraction 1: a sell trigger sells every share, a buy trigger spends all the cash.
    cfg = rules.Config(trigger_pct=D("0.05"), sizing="fixed_fraction", fixed_fraction=D(1),
                       guard_low=D(0), guard_high=D(1), **FREE)
    rep = run(daily([100, 110, 100, 95]), cfg)
    got = [(o.bar, o.side, o.qty, o.price, o.kind) for o in rep.strategy.orders]
    assert got == [
        (0, "BUY", D(50), D(100), "opening"),  # 5000 in stock, 5000 cash
        (1, "SELL", D(50), D(110), "sell_trigger"),  # 110 >= 100 * 1.05: cash 10500
        (2, "BUY", D(105), D(100), "buy_trigger"),  # 100 <= 110 * 0.95: 10500 / 100 shares
    ]  # bar 3: 95 <= 100 * 0.95 is a buy trigger, but there is no cash left
    m = rep.metrics
    # Equity after each day: 10000, 10500, 10500, 105 * 95 = 9975.
    assert np.allclose(rep.equity, [10000, 10500, 10500, 9975])
    r = np.array([0.05, 0.0, -0.05])
    assert m["total_return"] == pytest.approx(-0.0025)
    # The annualised figures as computed (the report leaves them out: four bars are too few).
    p = metrics.performance(rep.equity, rep.series.seconds, rep.series.days, 10000.0)
    assert p["cagr"] == pytest.approx(0.9975 ** (365.25 / 3) - 1)
    assert p["volatility"] == pytest.approx(0.05 * ANN)  # sd (ddof 1) of r is 0.05
    assert p["sharpe"] == pytest.approx(0.0)
    assert p["sortino"] == pytest.approx(0.0)
    assert r.mean() == pytest.approx(0.0)
    assert [m[k] for k in metrics.ANNUALISED] == [None] * 5
    assert m["max_drawdown"] == pytest.approx(9975 / 10500 - 1)
    assert m["max_drawdown_days"] == 1.0  # at the 10500 peak on day 2, below it on day 3
    assert (m["buys"], m["sells"]) == (2, 1)
    assert (m["final_qty"], m["final_cash"], m["final_value"]) == (D(105), D(0), D(9975))
    h = rep.hold_metrics
    # Buy-and-hold: 50 shares + 5000 cash: 10000, 10500, 10000, 9750.
    assert h["total_return"] == pytest.approx(-0.025)
    assert h["max_drawdown"] == pytest.approx(9750 / 10500 - 1)
    assert h["max_drawdown_days"] == 2.0  # never recovers: peak day 1 to the last day
    assert (h["buys"], h["sells"]) == (1, 0)


def test_annualised_figures_from_60_days_and_20_bars():
    # The round trip above, then the price stays at 95 (no cash left: nothing trades): 61 bars
    # over 60 calendar days are enough to annualise.
    cfg = rules.Config(trigger_pct=D("0.05"), sizing="fixed_fraction", fixed_fraction=D(1),
                       guard_low=D(0), guard_high=D(1), **FREE)
    rep = run(daily([100, 110, 100] + [95] * 58), cfg)
    assert len(rep.series) == 61 and rep.note is None
    m = rep.metrics
    assert m["cagr"] == pytest.approx(0.9975 ** (365.25 / 60) - 1)
    mean_equity = (10000 + 10500 + 10500 + 9975 * 58) / 61
    assert m["turnover"] == pytest.approx((5000 + 5500 + 10500) / mean_equity / (60 / 365.25))
    assert m["volatility"] is not None and m["sharpe"] is not None


@pytest.mark.parametrize("bars, step_days", [(19, 4), (30, 2)])
def test_too_short_to_annualise_is_null_with_a_note(bars, step_days):
    # 19 bars over 72 days (too few bars); 30 bars over 58 days (too short a span).
    day0 = np.datetime64("2024-01-01", "D")
    prices = [100 + (i % 3) for i in range(bars)]
    series = data.series_from_points(
        [(str(day0 + i * step_days), p) for i, p in enumerate(prices)], name="T")
    rep = run(series, rules.Config())
    span = (bars - 1) * step_days
    for m in (rep.metrics, *(b.metrics for b in rep.benchmarks.values())):
        assert [m[k] for k in metrics.ANNUALISED] == [None] * 5
        assert m["total_return"] is not None and m["max_drawdown"] is not None
    assert f"covers {span} calendar days and {bars} bars" in rep.note
    table = report.table(rep)
    assert "Note: CAGR, volatility, Sharpe, Sortino and turnover are left out" in table
    assert report.document(rep)["notes"] == [rep.note]


def test_known_drawdown():
    # All in stock (start weight 1, no commission): equity = 100 shares * price.
    prices = [100, 120, 90, 60, 90, 120, 130]
    rep = run(daily(prices), rules.Config(**FREE), engine.Setup(start_weight=D(1)))
    h = rep.hold_metrics
    assert h["final_qty"] == D(100) and h["final_cash"] == D(0)
    # Peak 12000 on day 1, trough 6000 on day 3, back to 12000 on day 5.
    assert h["max_drawdown"] == pytest.approx(-0.5)
    assert h["max_drawdown_days"] == 4.0
    assert h["total_return"] == pytest.approx(0.3)
    eq = np.array(prices, float) * 100
    secs = np.arange(len(prices)) * 86400
    assert metrics.drawdown(eq, secs) == (pytest.approx(-0.5), 4.0)
    assert metrics.drawdown(np.array([1.0, 2.0, 3.0]), np.arange(3) * 86400) == (0.0, 0.0)


def test_annualisation_daily_bars():
    eq = np.array([100.0, 110.0, 104.5])
    secs = np.arange(3) * 86400
    days = np.arange(3)
    p = metrics.performance(eq, secs, days, 100.0)
    r = np.array([0.1, -0.05])
    sd = math.sqrt(((0.1 - 0.025) ** 2 + (-0.05 - 0.025) ** 2) / 1)
    assert p["volatility"] == pytest.approx(sd * ANN)
    assert p["sharpe"] == pytest.approx(r.mean() / sd * ANN)
    assert p["sortino"] == pytest.approx(0.025 / math.sqrt(0.05 ** 2 / 2) * ANN)
    assert p["cagr"] == pytest.approx(1.045 ** (365.25 / 2) - 1)
    assert p["total_return"] == pytest.approx(0.045)


def test_annualisation_minute_bars_resample_to_daily_closes():
    # Three days of three bars (09:30, 12:00, 16:00); the daily closes are 100, 110, 104.5 as
    # above, so volatility, Sharpe and Sortino are the daily ones (not x sqrt(252 * bars)).
    eq = np.array([100, 105, 100, 95, 120, 110, 130, 90, 104.5], float)
    day = np.repeat(np.arange(3), 3)
    secs = day * 86400 + np.tile([34200, 43200, 57600], 3)
    p = metrics.performance(eq, secs, day, 100.0)
    daily_p = metrics.performance(np.array([100.0, 110.0, 104.5]), np.arange(3) * 86400,
                                  np.arange(3), 100.0)
    for k in ("volatility", "sharpe", "sortino"):
        assert p[k] == pytest.approx(daily_p[k])
    # CAGR over calendar time: 2 days and 6.5 hours.
    years = (2 + 6.5 / 24) / 365.25
    assert p["cagr"] == pytest.approx(1.045 ** (1 / years) - 1)
    # The drawdown is measured bar by bar: 130 at 09:30 on day 3 down to 90 at noon, not
    # recovered by the close (6.5 hours later).
    assert p["max_drawdown"] == pytest.approx(90 / 130 - 1)
    assert p["max_drawdown_days"] == pytest.approx(6.5 / 24)


def test_undefined_figures_are_none():
    one_day = metrics.performance(np.array([100.0, 101.0]), np.array([0, 3600]),
                                  np.array([0, 0]), 100.0)
    assert one_day["volatility"] is None and one_day["sharpe"] is None
    assert one_day["cagr"] is not None  # an hour is a span of calendar time
    single = metrics.performance(np.array([100.0]), np.array([0]), np.array([0]), 100.0)
    assert single["cagr"] is None and single["total_return"] == 0


def test_dividends_credited_to_both():
    # 50 shares from the opening; ex-date on day 2 (entitlement: the 50 held before the bar),
    # paid on day 4: net = 1 * 50 * (1 - 0.25) = 37.5.
    div = data.Dividend(np.datetime64("2024-01-03").item(), np.datetime64("2024-01-05").item(),
                        D(1))
    rep = run(daily([100] * 6), rules.Config(**FREE), dividends=[div])
    for m in (rep.metrics, rep.hold_metrics):
        assert m["dividends"] == D("37.5")
        assert m["final_cash"] == D("5037.5")
        assert m["final_value"] == D("10037.5")
    # The receivable counts in the equity from the ex-date; cash from the pay date.
    assert np.allclose(rep.equity, [10000, 10000, 10037.5, 10037.5, 10037.5, 10037.5])
    # The anchor drops by the dividend on the ex-date.
    assert list(metrics.per_bar(rep.strategy, 6)["anchor"]) == [100, 100, 99, 99, 99, 99]


def test_in_band_share_counts_bars_outside():
    # Band 0.4-0.6 with triggers out of reach and a huge minimum notional: nothing trades, and
    # the weight 50*P / (50*P + 5000) leaves the band when P > 150 or P < 66.67.
    cfg = rules.Config(trigger_pct=D("0.99"), guard_low=D("0.4"), guard_high=D("0.6"),
                       min_notional=D(10**9), commission_rate=D(0))
    rep = run(daily([100, 160, 100, 60, 100]), cfg)
    assert len(rep.strategy.orders) == 1
    assert rep.metrics["in_band_share"] == pytest.approx(3 / 5)


@pytest.mark.parametrize("seed", range(12))
def test_a_long_series_drawdown_piece_by_piece_equals_the_whole_array(seed, monkeypatch):
    # A series longer than metrics._CHUNK is measured piece by piece: the same drawdown and
    # the same dates as the whole-array form, to the bit (peaks and troughs on piece
    # boundaries, ties, plateaus, no recovery, no drawdown at all).
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    steps = rng.choice([-1.0, 0.0, 0.0, 1.0, 2.5], n) if seed % 3 else rng.normal(0, 1, n)
    eq = np.round(100 + np.cumsum(steps), 2 if seed % 2 else 12)
    eq = np.abs(eq) + 1.0 if seed != 5 else np.arange(1.0, n + 1)  # seed 5: only rises
    secs = np.cumsum(rng.integers(60, 86400 * 3, n))
    monkeypatch.setattr(metrics, "_CHUNK", 10**9)
    whole = metrics.drawdown(eq, secs)
    for chunk in (7, 8, 16, 64):
        monkeypatch.setattr(metrics, "_CHUNK", chunk)
        assert metrics.drawdown(eq, secs) == whole


def test_the_first_of_equal_troughs_is_the_drawdown_piece_by_piece(monkeypatch):
    # Halved three times: the first trough (bar 1, peak bar 0, back at bar 2) is the one
    # reported, whichever piece the later ones fall in.
    eq = np.array([100.0, 50, 100, 50, 100, 120, 60, 70, 80])
    secs = np.arange(len(eq)) * 86400
    for chunk in (2, 3, 4, 10**9):
        monkeypatch.setattr(metrics, "_CHUNK", chunk)
        assert metrics.drawdown(eq, secs) == (-0.5, 2.0)
