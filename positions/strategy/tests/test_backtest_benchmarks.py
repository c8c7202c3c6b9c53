"""The three benchmarks and the attribution (docs/strategy.md#benchmarks-and-attribution), on
series small enough to work out by hand."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import benchmarks, data, engine, report

D = Decimal

# 30 and 31 January at 100, 1 February (a month start) at 200, 2 February at 100.
DAYS = ("2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02")
PRICES = (100, 100, 200, 100)
# Trigger 50 %, proportional sizing with r = 1, no band, no commission, no minimum.
CFG = rules.Config(trigger_pct=D("0.5"), rebalance_ratio=D(1), guard_low=D(0), guard_high=D(1),
                   commission_rate=D(0), min_notional=D(0))


def series(prices=PRICES, days=DAYS):
    return data.series_from_points(list(zip(days, prices, strict=True)), name="T")


def test_three_benchmarks_and_the_attribution_by_hand():
    rep = report.backtest(series(), CFG)
    # Strategy: opening 50 shares at 100 (cash 5000). 1 Feb, 200 >= 100 * 1.5: sell
    # |100/200 - 1| * 1 * V/P = 0.5 * 15000 / 200 = 37.5 shares: 12.5 shares, cash 12500.
    # 2 Feb, 100 <= 200 * 0.5: buy |200/100 - 1| * 13750 / 100 = 137.5, trimmed by the cash to
    # 125: 137.5 shares, no cash: 13750. R = 0.375.
    assert [(o.bar, o.side, o.qty) for o in rep.strategy.orders] == [
        (0, "BUY", D(50)), (2, "SELL", D("37.5")), (3, "BUY", D(125))]
    assert rep.metrics["final_value"] == D(13750)
    b = {k: v.metrics for k, v in rep.benchmarks.items()}
    assert list(b) == ["held_mix", "stock_held", "fixed_mix"]
    # Held mix: 50 shares + 5000 cash -> 50 * 100 + 5000 = 10000 at the end: H = 0.
    assert (b["held_mix"]["final_qty"], b["held_mix"]["final_value"]) == (D(50), D(10000))
    # Stock held: buy_to(1) = 10000 / 100 = 100 shares -> 10000 at the end.
    assert (b["stock_held"]["final_qty"], b["stock_held"]["final_cash"]) == (D(100), D(0))
    assert b["stock_held"]["total_return"] == 0
    assert [float(x) for x in rep.benchmarks["stock_held"].equity] == [10000, 10000, 20000,
                                                                        10000]
    # Fixed mix: 1 Feb is a month start: 50 * 200 = 10000 of stock in 15000 -> sell_to(0.5) =
    # (10000 - 7500) / 200 = 12.5 shares: 37.5 shares, cash 7500 -> 11250 on 2 Feb. F = 0.125.
    mix = rep.benchmarks["fixed_mix"].run
    assert [(o.bar, o.side, o.qty, o.kind) for o in mix.orders] == [
        (0, "BUY", D(50), "opening"), (2, "SELL", D("12.5"), "rebalance")]
    assert b["fixed_mix"]["final_value"] == D(11250)
    assert (b["fixed_mix"]["buys"], b["fixed_mix"]["sells"]) == (1, 1)
    a = rep.attribution
    assert (a["strategy_return"], a["held_mix_return"], a["fixed_mix_return"]) == (
        0.375, 0.0, 0.125)
    assert a["excess_over_held_mix"] == 0.375
    assert a["rebalancing_premium"] == 0.125  # F - H
    assert a["trigger_timing"] == 0.25  # R - F
    assert a["dividends"] == dict.fromkeys(("strategy", *benchmarks.NAMES), 0.0)
    assert a["commissions"] == dict.fromkeys(("strategy", *benchmarks.NAMES), 0.0)


def test_fixed_mix_buys_back_up_to_the_start_weight():
    # 1 Feb at 50: 50 * 50 = 2500 of stock in 7500 -> buy_to(0.5) = (3750 - 2500) / 50 = 25
    # shares: 75 shares, 3750 cash. 2 Feb at 100: 7500 + 3750 = 11250.
    rep = report.backtest(series((100, 100, 50, 100)), CFG)
    mix = rep.benchmarks["fixed_mix"]
    assert [(o.side, o.qty, o.price) for o in mix.run.orders[1:]] == [("BUY", D(25), D(50))]
    assert mix.metrics["final_value"] == D(11250)


def test_fixed_mix_skips_a_rebalance_below_the_minimum_notional():
    # The 1 February sell is 12.5 shares at 200 = 2500 of notional.
    traded = report.backtest(series(), rules.Config(**{**_fields(CFG), "min_notional": D(2500)}))
    assert len(traded.benchmarks["fixed_mix"].run.orders) == 2
    skipped = report.backtest(series(), rules.Config(**{**_fields(CFG),
                                                        "min_notional": D("2500.01")}))
    mix = skipped.benchmarks["fixed_mix"]
    assert len(mix.run.orders) == 1
    assert mix.metrics == skipped.benchmarks["held_mix"].metrics
    assert skipped.attribution["rebalancing_premium"] == 0


def test_fixed_mix_rebalances_on_the_first_bar_of_each_month_only():
    days = ("2024-01-30", "2024-02-01", "2024-02-02", "2024-02-29", "2024-03-04")
    prices = (100, 200, 400, 200, 100)
    mix = report.backtest(series(prices, days), CFG).benchmarks["fixed_mix"].run
    assert [(o.bar, o.side) for o in mix.orders] == [(0, "BUY"), (1, "SELL"), (4, "BUY")]
    assert benchmarks.month_starts(series(prices, days).days).tolist() == [1, 4]


def test_dividends_and_commissions_as_fractions_of_the_starting_cash():
    # A dividend of 1 per share goes ex and is paid on 1 February, withholding 25 %; the
    # entitlement counts the shares before that bar's trade. Commission 0.001.
    cfg = rules.Config(**{**_fields(CFG), "commission_rate": D("0.001")})
    div = data.Dividend(ex_date=np.datetime64("2024-02-01").item(),
                        pay_date=np.datetime64("2024-02-01").item(), dps=D(1))
    rep = report.backtest(series(), cfg, dividends=[div])
    b = {k: v.run for k, v in rep.benchmarks.items()}
    # Opening buy_to(0.5) = 5000 / (100 * 1.0005) = 49.97501249 shares (8 places, down);
    # stock held buy_to(1) = 10000 / (100 * 1.001) = 99.90009990 shares.
    held_qty = D("49.97501249")
    stock_qty = D("99.90009990")
    assert b["held_mix"].orders[0].qty == held_qty
    assert b["stock_held"].orders[0].qty == stock_qty
    net = D("0.75")
    assert b["held_mix"].dividends == (held_qty * net).quantize(D("0.000001"))
    assert b["stock_held"].dividends == (stock_qty * net).quantize(D("0.000001"))
    assert b["fixed_mix"].dividends == b["held_mix"].dividends  # paid before the rebalance
    assert rep.strategy.dividends == b["held_mix"].dividends
    k_stock = (D("0.001") * stock_qty * 100).quantize(D("0.000001"))
    assert b["stock_held"].commissions == k_stock
    a = rep.attribution
    assert a["dividends"]["stock_held"] == pytest.approx(float(stock_qty * net) / 10000)
    assert a["dividends"]["held_mix"] == pytest.approx(float(held_qty * net) / 10000)
    assert a["commissions"]["stock_held"] == pytest.approx(float(k_stock) / 10000)
    assert a["commissions"]["strategy"] == pytest.approx(
        float(sum(o.commission for o in rep.strategy.orders)) / 10000)
    assert a["commissions"]["fixed_mix"] > a["commissions"]["held_mix"] > 0
    # The attribution adds up whatever the costs.
    assert a["excess_over_held_mix"] == pytest.approx(a["rebalancing_premium"]
                                                      + a["trigger_timing"])


def test_float_mode_gives_the_same_benchmarks():
    exact = report.backtest(series(), CFG)
    fast = report.backtest(series(), CFG, exact=False)
    for k in benchmarks.NAMES:
        assert float(fast.benchmarks[k].metrics["final_value"]) == pytest.approx(
            float(exact.benchmarks[k].metrics["final_value"]), abs=0.01)
    assert isinstance(fast.benchmarks["fixed_mix"].run.qty, float)


def test_benchmarks_with_slippage_fill_worse():
    setup = engine.Setup(slippage_bps=D(100))  # 1 %
    mix = report.backtest(series(), CFG, setup).benchmarks["fixed_mix"].run
    # Opening at 101: buy_to(0.5) = 5000 / 101 = 49.50495049 shares; 1 Feb sells at 198.
    assert [(o.side, o.price) for o in mix.orders] == [("BUY", D(101)), ("SELL", D(198))]
    assert mix.orders[0].qty == D("49.50495049")


def _fields(cfg):
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}
