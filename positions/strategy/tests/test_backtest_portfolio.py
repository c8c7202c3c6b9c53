"""Portfolio backtests (docs/backtests.md#portfolio-backtests): a portfolio that never
rebalances is the sum of its holdings' single backtests, to the last digit; a rebalancing one
moves cash only, by the rule, conserving it; the fixed-mix benchmark equals bt's
RunMonthly/WeighSpecified/Rebalance on the bundled samples."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine, metrics
from positions.strategy.backtest import portfolio as pf

D = Decimal


def holdings(spec):
    out = []
    for name, w in spec:
        s, d = data.load_sample(name)
        out.append(pf.Holding(name, s, D(w), tuple(d)))
    return out


@pytest.fixture(scope="module")
def three():
    return holdings([("IBM", "0.4"), ("MSFT", "0.3"), ("AAPL", "0.2")])


def test_never_is_the_sum_of_the_single_backtests_exactly(three):
    cash = D("100000")
    setup = engine.Setup(cash=cash)
    cfg = rules.Config()
    run = pf.simulate(three, cfg, setup, "never")
    assert run.rebalances == []
    total = run.free_cash
    assert run.free_cash == D("10000")  # 1 - 0.9 of the cash stays unallocated
    for i, h in enumerate(run.holdings):
        single = engine.run(h.series, cfg, dataclasses.replace(setup, cash=h.weight * cash),
                            h.dividends)
        assert run.runs[i].orders == single.orders
        assert (run.runs[i].qty, run.runs[i].cash, run.runs[i].receivable) == \
            (single.qty, single.cash, single.receivable)
        last = D(repr(float(h.series.prices[-1])))
        total += single.qty * last + single.cash + single.receivable
        eq, _w = metrics.equity_and_weight(h.series.prices, single)
        assert np.array_equal(run.holding_equity[i], eq)
    final = run.free_cash + sum(
        (r.qty * D(repr(float(h.series.prices[-1]))) + r.cash + r.receivable
         for h, r in zip(run.holdings, run.runs, strict=True)), D(0))
    assert final == total


def test_quarterly_rebalances_move_cash_only_and_conserve_it(three):
    setup = engine.Setup(cash=D("100000"))
    run = pf.simulate(three, rules.Config(), setup, "quarterly")
    dates = run.series.times.astype("datetime64[D]").astype(str)
    assert len(run.rebalances) == 52  # 2000-03-01 .. 2013-03-01: every quarter's first bar
    assert [dates[r.bar] for r in run.rebalances[:3]] == ["2000-04-03", "2000-07-03",
                                                          "2000-10-02"]
    free = setup.cash - sum((s.cash for s in run.setups), D(0))
    for r in run.rebalances:
        assert r.result.free_cash == free - sum(r.result.moves, D(0))  # exact
        assert r.result.free_cash >= 0 and all(c >= 0 for c in r.result.cash)
        free = r.result.free_cash
    assert run.free_cash == free
    # no order is a rebalance: the holdings trade by their rules, the cash moved
    assert {o.kind for r in run.runs for o in r.orders} <= {
        "opening", "buy_trigger", "sell_trigger", "guardrail_rebalance"}
    assert run.turnover > 0
    # the equity is the free cash plus the holdings' equity at every bar
    assert np.allclose(run.equity, run.free + np.sum(run.holding_equity, axis=0))


def test_band_rebalances_only_on_drift(three):
    run = pf.simulate(three, rules.Config(), engine.Setup(cash=D("100000")), "band",
                      D("0.05"))
    assert run.rebalances
    for r in run.rebalances:
        assert max(abs(w - h.weight) for w, h in zip(r.weights, run.holdings,
                                                     strict=True)) > D("0.05")


@pytest.mark.parametrize("spec, rule, band, code", [
    ([("IBM", "0.6"), ("MSFT", "0.5")], "never", None, "invalid_weights"),
    ([("IBM", "0")], "never", None, "invalid_weights"),
    ([("IBM", "0.5")], "weekly", None, "invalid_rebalance"),
    ([("IBM", "0.5")], "band", None, "invalid_rebalance"),
])
def test_bad_portfolios_are_refused(spec, rule, band, code):
    with pytest.raises(pf.PortfolioError) as e:
        pf.simulate(holdings(spec), rules.Config(), engine.Setup(), rule, band)
    assert e.value.code == code


def test_holdings_are_cut_to_their_common_bars():
    hs = pf.align(holdings([("GOOG", "0.5"), ("IBM", "0.5")]))
    assert len(hs[0].series) == len(hs[1].series)
    assert (hs[0].series.times == hs[1].series.times).all()
    assert str(hs[0].series.times[0])[:10] == "2004-08-19"  # GOOG's first day


@pytest.mark.parametrize("rule, band, fill", [
    ("monthly", None, "same_bar"), ("band", D("0.05"), "same_bar"),
    ("quarterly", None, "next_bar"), ("quarterly", None, "limit"),
])
def test_each_holding_is_its_single_backtest_with_the_rebalances_cash(three, rule, band, fill):
    """The holdings run side by side and meet at the rebalances; each one's run is exactly a
    single backtest given the same cash moves at the same bars (the engine's moves hook)."""
    setup = engine.Setup(cash=D("100000"), fill=fill)
    cfg = rules.Config()
    run = pf.simulate(three, cfg, setup, rule, band)
    assert run.rebalances
    for i, h in enumerate(run.holdings):
        moves = {r.bar: (lambda m: lambda book, j: m)(r.result.moves[i])
                 for r in run.rebalances}
        alone = engine.simulate(h.series, engine.Rules(), cfg, run.setups[i], h.dividends,
                                moves=moves)
        assert run.runs[i].orders == alone.orders
        assert (run.runs[i].qty, run.runs[i].cash, run.runs[i].receivable) == \
            (alone.qty, alone.cash, alone.receivable)


def test_a_holding_that_fails_stops_the_others_and_its_error_is_raised(three):
    """A holding whose run fails (here a split ratio the engine refuses) does not leave the
    others waiting at the next rebalance: its error comes out."""
    bad = dataclasses.replace(three[2], splits=(("2005-01-03", "0:1"),))
    with pytest.raises(engine.SetupError) as e:
        pf.simulate([three[0], three[1], bad], rules.Config(), engine.Setup(cash=D("100000")),
                    "monthly")
    assert "splits" in e.value.fields


@pytest.mark.parametrize("rule", ["never", "monthly"])
def test_one_holding_past_exact_arithmetic_is_the_single_backtests_setup_error(rule):
    """The second holding's thread meets a dividend past 28 significant digits while the first
    trades on (and, monthly, waits at the rebalances): the run stops with the single
    backtest's SetupError on cash, raised by no hang and no bare InvalidOperation."""
    msft, ibm = (dataclasses.replace(h, series=h.series.between("2012-01-01", None))
                 for h in holdings([("MSFT", "0.3"), ("IBM", "0.3")]))
    huge = data.make_dividend("2012-02-01", "2012-02-10", "999999999999999999", "dividends[0]")
    ibm = dataclasses.replace(ibm, dividends=(huge,))
    with pytest.raises(engine.SetupError) as exc:
        pf.simulate([msft, ibm], rules.Config(), engine.Setup(cash=D(10**9)), rule)
    assert exc.value.fields == {"cash": engine.TOO_LARGE}
