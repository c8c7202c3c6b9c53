"""The backtest loop: the float path agrees with the Decimal path to the cent on real data, and
the fast path (which skips bars) equals the plain bar-by-bar loop whatever the options."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy import rules
from positions.strategy.backtest import data, engine

D = Decimal
CENT = 0.01


def order_rows(run):
    return [(o.bar, o.side, o.qty, o.price, o.commission, o.notional, o.kind) for o in run.orders]


def assert_same_run(a, b):
    assert order_rows(a) == order_rows(b)
    assert (a.qty, a.cash, a.receivable, a.anchor) == (b.qty, b.cash, b.receivable, b.anchor)
    assert (a.commissions, a.dividends) == (b.commissions, b.dividends)
    assert np.array_equal(a.change_bar, b.change_bar)
    for name in ("change_qty", "change_cash", "change_receivable", "change_anchor"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


# --------------------------------------------------------------------------------------------
# Float path = Decimal path, to the cent, order by order, on bundled real series with dividends
# --------------------------------------------------------------------------------------------

REAL_CONFIGS = [
    (rules.Config(), engine.Setup()),
    (rules.Config(fractional=False, trigger_pct=D("0.05")), engine.Setup(cash=D("25000"))),
    (rules.Config(sizing="original", guard_low=D("0.3"), guard_high=D("0.7"),
                  commission_rate=D("0.001")), engine.Setup(slippage_bps=D("5"))),
    (rules.Config(sizing="fixed_fraction", fixed_fraction=D("0.25"), qty_step=D("0.5"),
                  max_orders_per_day=1, min_notional=D(0), withholding_tax_rate=D(0)),
     engine.Setup(start_weight=D("0.8"))),
]


@pytest.mark.parametrize("ticker", ["IBM", "MSFT", "AAPL"])
@pytest.mark.parametrize("cfg,setup", REAL_CONFIGS)
def test_float_path_agrees_with_decimal_path_to_the_cent(ticker, cfg, setup):
    series, dividends = data.load_sample(ticker)
    assert dividends  # the samples used here all pay dividends
    exact = engine.run(series, cfg, setup, dividends, exact=True)
    fast_float = engine.run(series, cfg, setup, dividends, exact=False)
    assert len(exact.orders) > 20
    assert len(fast_float.orders) == len(exact.orders)
    for a, b in zip(exact.orders, fast_float.orders, strict=True):
        assert (a.bar, a.side, a.kind) == (b.bar, b.side, b.kind)
        assert isinstance(a.qty, Decimal) and isinstance(b.qty, float)
        assert abs(float(a.price) - b.price) <= 1.01e-6  # 6 places; halves may round apart
        assert abs(float(a.qty) - b.qty) * float(a.price) < CENT
        assert abs(float(a.notional) - b.notional) < CENT
        assert abs(float(a.commission) - b.commission) < CENT
    assert abs(float(exact.cash) - fast_float.cash) < CENT
    assert abs(float(exact.receivable) - fast_float.receivable) < CENT
    assert abs(float(exact.dividends) - fast_float.dividends) < CENT
    last = float(series.prices[-1])
    assert abs(float(exact.qty) - fast_float.qty) * last < CENT


def test_real_series_fast_equals_plain_decimal():
    series, dividends = data.load_sample("MSFT")
    cfg = rules.Config(trigger_pct=D("0.02"), max_orders_per_day=1)
    fast = engine.run(series, cfg, engine.Setup(), dividends)
    plain = engine.run(series, cfg, engine.Setup(), dividends, fast=False)
    assert_same_run(fast, plain)
    assert fast.evaluations < plain.evaluations


# --------------------------------------------------------------------------------------------
# Fast path = plain bar-by-bar loop, every option varied
# --------------------------------------------------------------------------------------------


class Bars:
    """A minimal series: float prices and calendar days."""

    def __init__(self, prices, days):
        self.prices = np.asarray(prices, dtype=np.float64)
        self.days = np.asarray(days, dtype=np.int64)

    def __len__(self):
        return len(self.prices)


def fractions(lo, hi, places=4):
    return st.integers(int(lo * 10**places), int(hi * 10**places)).map(
        lambda i: D(i).scaleb(-places))


@st.composite
def configs(draw):
    low = draw(fractions(0, 0.6))
    high = draw(fractions(float(low) + 0.05, 1))
    step = draw(st.sampled_from([None, None, D("0.5"), D("0.001"), D(3)]))
    return rules.Config(
        trigger_pct=draw(fractions(0.005, 0.3)),
        rebalance_ratio=draw(fractions(0.1, 4)),
        sizing=draw(st.sampled_from(rules.SIZINGS)),
        fixed_fraction=draw(fractions(0.01, 1)),
        guard_low=low,
        guard_high=high,
        min_notional=draw(st.sampled_from([D(0), D(1), D(100), D(750), D(5000)])),
        commission_rate=draw(st.sampled_from([D(0), D("0.0001"), D("0.002"), D("0.0499")])),
        max_orders_per_day=draw(st.integers(1, 6)),
        fractional=draw(st.booleans()),
        qty_step=step,
        withholding_tax_rate=draw(st.sampled_from([D(0), D("0.25"), D("0.9")])),
    )


@st.composite
def setups(draw):
    return engine.Setup(
        cash=draw(st.sampled_from([D(1), D(500), D(10000), D("123456.78")])),
        start_weight=draw(st.sampled_from([D(0), D("0.1"), D("0.5"), D("0.9"), D(1)])),
        slippage_bps=draw(st.sampled_from([D(0), D(0), D(3), D(50)])),
    )


@st.composite
def markets(draw):
    n = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.001, 0.01, 0.03, 0.08]))
    per_day = draw(st.integers(1, 6))
    decimals = draw(st.sampled_from([0, 2, 4]))
    rng = np.random.default_rng(seed)
    prices = np.round(50 * np.exp(np.cumsum(rng.normal(0, vol, n))), decimals)
    prices = np.maximum(prices, 10.0 ** -decimals)
    days = np.arange(n) // per_day + 19000
    divs = []
    for _ in range(draw(st.integers(0, 4))):
        ex = int(rng.integers(days[0] - 2, days[-1] + 3))
        pay = ex + int(rng.integers(0, 10))
        dps = D(str(round(float(rng.uniform(0.01, 3)), 2)))
        divs.append(data.Dividend(_date(ex), _date(pay), dps))
    return Bars(prices, days), divs


def _date(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(market=markets(), cfg=configs(), setup=setups(), exact=st.booleans())
def test_fast_path_equals_plain_loop(market, cfg, setup, exact):
    bars, divs = market
    fast = engine.run(bars, cfg, setup, divs, exact=exact)
    plain = engine.run(bars, cfg, setup, divs, exact=exact, fast=False)
    assert_same_run(fast, plain)
    hold_fast = engine.run(bars, cfg, setup, divs, exact=exact, hold=True)
    hold_plain = engine.run(bars, cfg, setup, divs, exact=exact, hold=True, fast=False)
    assert_same_run(hold_fast, hold_plain)


def test_fast_path_on_a_long_minute_walk():
    rng = np.random.default_rng(7)
    n = 30_000
    prices = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.0015, n))), 2)
    bars = Bars(prices, np.arange(n) // 390)
    cfg = rules.Config(max_orders_per_day=2)
    fast = engine.run(bars, cfg, engine.Setup())
    plain = engine.run(bars, cfg, engine.Setup(), fast=False)
    assert_same_run(fast, plain)
    assert len(fast.orders) > 50
    assert fast.evaluations < n / 20  # the point of the fast path


# --------------------------------------------------------------------------------------------
# Behaviours
# --------------------------------------------------------------------------------------------


def test_blocked_below_min_notional_trades_once_big_enough():
    # Start at the high guardrail; no trigger in reach. As the price creeps up, the guardrail
    # sell grows; it is blocked below 500 and fills on the first bar where it reaches 500.
    cfg = rules.Config(trigger_pct=D("0.9"), guard_low=D("0.25"), guard_high=D("0.5"),
                       min_notional=D(500), commission_rate=D(0))
    prices = 100 + np.arange(200) * 0.25
    bars = Bars(prices, np.arange(200))
    fast = engine.run(bars, cfg, engine.Setup())
    plain = engine.run(bars, cfg, engine.Setup(), fast=False)
    assert_same_run(fast, plain)
    first = fast.orders[1]
    assert first.kind == "guardrail_rebalance" and first.side == "SELL"
    assert first.notional >= 500
    # The bar before, the same sell would have been below the minimum.
    S, C, P = D(50), D(5000), D(repr(float(prices[first.bar - 1])))
    short = rules.sell_to(D("0.5"), qty=S, cash=C, receivable=D(0), price=P,
                          commission_rate=D(0)).quantize(rules.QTY_PLACES, ROUND_DOWN)
    assert short * P < 500
    assert fast.evaluations < plain.evaluations / 4


WHOLE = dict(fractional=False, min_notional=D(0))
CREEPS = {
    # name: (config, start weight, first price, direction of the creep)
    "sell trimmed by the low guardrail": (
        rules.Config(min_notional=D(200), commission_rate=D("0.001")), D("0.26"), 100, +1),
    "buy trimmed by the high guardrail": (
        rules.Config(min_notional=D(200), commission_rate=D("0.001")), D("0.74"), 100, -1),
    "guardrail sell grows with the price": (
        rules.Config(trigger_pct=D("0.9"), min_notional=D(300)), D("0.74"), 100, +1),
    "guardrail buy grows as the price falls": (
        rules.Config(trigger_pct=D("0.9"), min_notional=D(300)), D("0.26"), 100, -1),
    "sell trimmed by the holdings": (
        rules.Config(guard_low=D(0), guard_high=D(1), min_notional=D(120)), D("0.01"), 100, +1),
    "whole shares, selling": (
        rules.Config(commission_rate=D("0.002"), **WHOLE), D("0.5"), 100, +1),
    "whole shares, buying near the high guardrail": (
        rules.Config(commission_rate=D("0.002"), **WHOLE), D("0.74"), 100, -1),
    "whole shares, cash for one share": (
        rules.Config(guard_low=D(0), guard_high=D(1), commission_rate=D("0.001"), **WHOLE),
        D(1), 100, -1),
    "whole shares, no shares yet": (
        rules.Config(trigger_pct=D("0.9"), **WHOLE), D(0), 3000, -1),
    "cash just above the minimum": (
        rules.Config(min_notional=D(100), commission_rate=D(0), guard_high=D(1)),
        D("0.989999"), 100, -1),
}


@pytest.mark.parametrize("name", sorted(CREEPS))
def test_prices_creeping_past_each_level(name):
    # A price that moves a hundredth of a percent at a time meets each level within a bar: a
    # fast path that waits one bar too long (or skips one it should not) differs from the
    # plain loop.
    cfg, weight, first, direction = CREEPS[name]
    n = 4000
    prices = np.round(first * (1 + direction * 1e-4) ** np.arange(n), 2)
    bars = Bars(prices, np.arange(n))
    setup = engine.Setup(start_weight=weight)
    fast = engine.run(bars, cfg, setup)
    plain = engine.run(bars, cfg, setup, fast=False)
    assert_same_run(fast, plain)
    assert sum(o.kind != "opening" for o in fast.orders) >= 1
    assert fast.evaluations < plain.evaluations / 5


def test_daily_cap_counts_orders_per_calendar_day():
    # Swings of 5 % on every bar, 4 bars a day, cap 2 (the opening counts on day 1).
    prices = [100, 105, 100, 105] * 5
    bars = Bars(prices, np.arange(20) // 4)
    cfg = rules.Config(max_orders_per_day=2, min_notional=D(0))
    fast = engine.run(bars, cfg, engine.Setup())
    assert_same_run(fast, engine.run(bars, cfg, engine.Setup(), fast=False))
    per_day = np.bincount([o.bar // 4 for o in fast.orders])
    assert list(per_day) == [2, 2, 2, 2, 2]
    assert [o.bar for o in fast.orders][:4] == [0, 1, 4, 5]


def test_dividend_on_the_first_bar_entitles_nothing():
    bars = Bars([100.0] * 5, np.arange(5) + 19000)
    first = data.Dividend(_date(19000), _date(19002), D(1))
    later = data.Dividend(_date(19001), _date(19001), D(1))
    r = engine.run(bars, rules.Config(withholding_tax_rate=D(0)), engine.Setup(),
                   [first, later])
    # Only the second: 1 per share held on day 19001, to 6 places.
    assert r.dividends == (r.qty * 1).quantize(rules.MONEY_PLACES)


def test_slippage_worsens_fills_and_commission_follows():
    bars = Bars([100.0, 90.0], [0, 1])
    cfg = rules.Config(trigger_pct=D("0.05"))
    r = engine.run(bars, cfg, engine.Setup(slippage_bps=D(10)))
    opening, buy = r.orders
    assert opening.price == D("100.1") and buy.price == D("90.09")
    assert buy.commission == (D("0.0001") * buy.qty * D("90.09")).quantize(D("0.000001"))
    assert r.anchor == D("90.09")


def test_slippage_never_overspends():
    # All in stock but a sliver: a buy sized at the bar price is trimmed to the cash at the
    # (worse) fill price.
    bars = Bars([100.0, 50.0], [0, 1])
    cfg = rules.Config(guard_low=D("0.9"), guard_high=D(1), min_notional=D(0))
    r = engine.run(bars, cfg, engine.Setup(start_weight=D("0.95"), slippage_bps=D(500)))
    assert r.cash >= 0
    assert len(r.orders) == 2 and r.orders[1].side == "BUY"


def test_zero_start_weight_lets_the_first_bar_decide():
    bars = Bars([100.0, 100.0], [0, 1])
    r = engine.run(bars, rules.Config(), engine.Setup(start_weight=D(0)))
    (o,) = r.orders
    assert (o.bar, o.side, o.kind) == (0, "BUY", "guardrail_rebalance")  # w = 0 < 0.25


def test_bad_setup_is_refused():
    with pytest.raises(engine.SetupError) as exc:
        engine.run(Bars([1.0], [0]), rules.Config(), engine.Setup(cash=D(0),
                                                                  start_weight=D(2)))
    assert set(exc.value.fields) == {"cash", "start_weight"}
    with pytest.raises(rules.RuleError):
        engine.run(Bars([1.0], [0]), rules.Config(trigger_pct=D(2)))
