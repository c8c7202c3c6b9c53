"""The backtest's ``fill: next_bar`` (docs/strategy.md#next-bar-fills): a proposal is placed on its
bar and fills at the next bar's price, trimmed or cancelled when the cash no longer covers it;
the daily cap counts orders by the day they were placed. Every expected number by hand."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.tests.test_backtest_engine import assert_same_run

D = Decimal
Q8 = D("0.00000001")
NEXT = engine.Setup(fill="next_bar")
# No commission, no minimum, no guardrails in the way: only the triggers act.
PLAIN = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0), guard_high=D(1))


def days(*prices, start="2024-01-01"):
    first = dt.date.fromisoformat(start)
    return data.series_from_points(
        [((first + dt.timedelta(days=i)).isoformat(), float(p)) for i, p in enumerate(prices)])


def rows(run):
    return [(o.bar, o.side, o.qty, o.price, o.kind) for o in run.orders]


def test_a_proposal_fills_at_the_next_bars_price():
    series = days(100, 96, 95, 99, 100)
    run = engine.run(series, PLAIN, NEXT)
    # bar 0: the opening purchase, buy_to(0.5) = 0.5 * 10000 / 100 = 50 shares at 100.
    # bar 1 (96 <= 97): buy |100/96 - 1| * 1.6667 * V / 96, V = 50 * 96 + 5000; fills at 95.
    q1 = ((D(100) / D(96) - 1) * D("1.6667") * D(9800) / D(96)).quantize(Q8, ROUND_DOWN)
    s1, c1 = 50 + q1, D(5000) - q1 * 95
    # bar 3 (99 >= 95 * 1.03): sell (1 - 95/99) * 1.6667 * V / 99, V = S*99 + C; fills at 100.
    q2 = ((1 - D(95) / D(99)) * D("1.6667") * (s1 * 99 + c1) / D(99)).quantize(Q8, ROUND_DOWN)
    assert rows(run) == [(0, "BUY", D(50), D(100), "opening"), (2, "BUY", q1, D(95), "buy_trigger"),
                         (4, "SELL", q2, D(100), "sell_trigger")]
    assert run.qty == s1 - q2
    assert run.cash == (c1 + q2 * 100).quantize(D("0.000001"))
    assert run.anchor == D(100) and run.cancelled == 0 and run.open_order is None
    # The same series filled on the same bar trades at 96 on bar 1 instead.
    same = engine.run(series, PLAIN, engine.Setup())
    assert same.orders[1].bar == 1 and same.orders[1].price == D(96)


def test_a_buy_the_cash_no_longer_covers_is_trimmed_at_the_fill():
    cfg = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0),
                       guard_high=D(1), sizing="original", rebalance_ratio=D(5))
    run = engine.run(days(100, 90, 95), cfg, NEXT)
    # bar 1 at 90: the cash cap 5000 / 90 = 55.55555555 shares is placed; at 95 that costs
    # 5277.78 > 5000, so it is trimmed to 5000 / 95 = 52.63157894 shares.
    assert rows(run)[1] == (2, "BUY", D("52.63157894"), D(95), "buy_trigger")
    assert run.cash == D("0.000001")  # 5000 - 52.63157894 * 95 = 0.0000007, to 6 places


def test_an_order_nothing_covers_any_more_is_cancelled():
    cfg = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0),
                       guard_high=D(1), sizing="original", rebalance_ratio=D(5),
                       fractional=False)
    # 100 of cash, no opening purchase: bar 0 sets the anchor; bar 1 at 90 places 1 share
    # (100 / 90 = 1.1); at 101 one share costs more than the cash: cancelled, nothing trades.
    run = engine.run(days(100, 90, 101), cfg, engine.Setup(cash=D(100), start_weight=D(0),
                                                           fill="next_bar"))
    assert run.orders == [] and run.cancelled == 1
    assert (run.qty, run.cash, run.anchor) == (0, D(100), D(100))


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "float"])
def test_an_order_open_over_a_split_is_multiplied_by_its_ratio(exact):
    """Placed the bar before a 2-for-1 split's effective date, it fills after the split at the
    split price: twice the shares, the same money (docs/strategy.md#splits: open orders'
    remaining quantity x k)."""
    setup = engine.Setup(fill="next_bar", splits=(("2024-01-03", D(2)),))
    run = engine.run(days(100, 96, 48, 48.5), PLAIN, setup, exact=exact)
    # bar 0: 50 shares at 100; bar 1 (96 <= 97): buy q1 = |100/96 - 1| * 1.6667 * 9800 / 96.
    q1 = ((D(100) / D(96) - 1) * D("1.6667") * D(9800) / D(96)).quantize(Q8, ROUND_DOWN)
    # bar 2: the split (100 shares, anchor 50), then the order, now 2 * q1, fills at 48.
    assert [(o.bar, o.side, D(str(o.qty)), D(str(o.price)), o.kind) for o in run.orders] == [
        (0, "BUY", D(50), D(100), "opening"), (2, "BUY", 2 * q1, D(48), "buy_trigger")]
    assert D(str(run.qty)) == 100 + 2 * q1
    assert D(str(run.cash)) == (D(5000) - 2 * q1 * 48).quantize(D("0.000001"))
    assert D(str(run.anchor)) == D(48) and run.cancelled == 0 and run.open_order is None


def test_an_order_open_over_a_split_rounds_down_to_whole_shares():
    cfg = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0),
                       guard_high=D(1), fractional=False)
    setup = engine.Setup(fill="next_bar", splits=(("2024-01-03", D("1.5")),))
    run = engine.run(days(100, 96, 64, 64.5), cfg, setup)
    # bar 0: 50 shares; bar 1: (100/96 - 1) * 1.6667 * 9800 / 96 = 7.09 -> 7 shares placed;
    # bar 2: 3-for-2: 75 shares, the order 7 x 1.5 = 10.5 -> 10 shares, filled at 64.
    assert rows(run)[1] == (2, "BUY", D(10), D(64), "buy_trigger")
    assert (run.qty, run.cash) == (D(85), D(5000) - 640)
    assert_same_run(engine.run(days(100, 96, 64, 64.5), cfg, setup, fast=False), run)


def test_an_order_placed_on_the_last_bar_stays_open():
    run = engine.run(days(100, 96), PLAIN, NEXT)
    assert len(run.orders) == 1  # the opening purchase only
    assert (run.open_order.bar, run.open_order.side) == (1, "BUY")
    assert run.qty == 50


def test_the_daily_cap_counts_orders_by_the_day_they_were_placed():
    cfg = rules.Config(commission_rate=D(0), min_notional=D(0), guard_low=D(0),
                       guard_high=D(1), max_orders_per_day=1)
    series = data.series_from_points([
        ("2024-01-01T09:30", 100.0),  # the opening purchase: day 1's one order
        ("2024-01-02T09:30", 96.0),  # buy placed: day 2's one order
        ("2024-01-03T09:30", 95.0),  # ... filled on day 3, which does not count it
        ("2024-01-03T10:00", 91.0),  # 91 <= 95 * 0.97: day 3 may still place one
        ("2024-01-03T10:30", 90.0),  # ... filled here
    ])
    run = engine.run(series, cfg, NEXT)
    assert [(o.bar, o.side) for o in run.orders] == [(0, "BUY"), (2, "BUY"), (4, "BUY")]
    assert [o.price for o in run.orders] == [D(100), D(95), D(90)]


def test_a_dividend_on_the_fill_bar_takes_effect_before_the_fill():
    series = days(100, 99, 104, 104)  # bar 2 sells (104 >= 103); the fill is on bar 3
    div = data.Dividend(dt.date(2024, 1, 4), dt.date(2024, 1, 20), D(1))  # ex on bar 3
    run = engine.run(series, PLAIN, NEXT, [div])
    sell = run.orders[-1]
    assert (sell.bar, sell.side) == (3, "SELL")
    # Entitlement: the 50 shares held before the fill, net of the 25 % withholding.
    assert run.receivable == D("37.500000")


@pytest.mark.parametrize("ticker", ["IBM", "MSFT"])
def test_next_bar_fast_path_equals_the_plain_loop(ticker):
    series, dividends = data.load_sample(ticker)
    for cfg in (rules.Config(), rules.Config(fractional=False, max_orders_per_day=1,
                                             trigger_pct=D("0.02"))):
        setup = engine.Setup(fill="next_bar", slippage_bps=D(5))
        fast = engine.run(series, cfg, setup, dividends)
        plain = engine.run(series, cfg, setup, dividends, fast=False)
        assert_same_run(fast, plain)
        assert len(fast.orders) > 20 and fast.evaluations < plain.evaluations
        same = engine.run(series, cfg, engine.Setup(slippage_bps=D(5)), dividends)
        assert rows(same) != rows(fast)


def test_an_unknown_fill_mode_is_refused():
    with pytest.raises(engine.SetupError) as exc:
        engine.run(days(100, 96), PLAIN, engine.Setup(fill="next_week"))
    assert "fill" in exc.value.fields
