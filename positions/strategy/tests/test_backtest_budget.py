"""The work a backtest asks for (positions.strategy.backtest.budget): the estimate the API
refuses a request by is what the engine really does at most, and the refusal names the limit."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from positions.strategy import rules
from positions.strategy.backtest import budget, data, engine


def minute_walk(bars: int, seed: int = 1) -> data.Series:
    t0 = np.datetime64("2020-01-01T09:30", "m")
    rng = np.random.default_rng(seed)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, bars)))
    return data.series_from_points([(str(t0 + i), Decimal(str(round(p, 4))))
                                    for i, p in enumerate(prices)])


@pytest.mark.parametrize("trigger", ["0.03", "0.002", "0.0001"])
@pytest.mark.parametrize("max_orders", [1, 5, 200])
def test_the_engine_never_evaluates_more_than_the_estimate(trigger, max_orders):
    series = minute_walk(6_000)  # a little over 4 days of minute bars
    cfg = rules.Config(trigger_pct=Decimal(trigger), min_notional=Decimal(0),
                       max_orders_per_day=max_orders)
    run = engine.run(series, cfg, engine.Setup())
    assert run.evaluations <= budget.expected_evaluations(series, max_orders)


def test_the_estimate_is_bars_capped_by_days_times_the_daily_cap():
    series = minute_walk(6_000)
    assert budget.expected_evaluations(series, 5) == 5 * 5  # 5 calendar days
    assert budget.expected_evaluations(series, 10_000) == 6_000


def test_the_problem_names_the_work_and_the_limit():
    series = minute_walk(6_000)
    assert budget.work_problem(series, 5, limit=25) is None
    problem = budget.work_problem(series, 5, runs=3, limit=25)
    assert "75 times" in problem and "at most 25 evaluations" in problem and "3 runs" in problem


def test_what_the_readme_says_makes_a_backtest_a_job():
    """README ("Jobs"): a bundled sample is daily, one evaluation a bar whatever the daily cap,
    within the default limit; a lower limit (1,000) makes IBM's 3,270 bars a job; 60 days of
    minute bars at 400 orders a day pass the default."""
    for ticker in data.SAMPLE_TICKERS:
        series, _ = data.load_sample(ticker)
        assert budget.expected_evaluations(series, 1) == len(series) <= 3270
        assert budget.work_problem(series, 10**6) is None
    ibm, _ = data.load_sample("IBM")
    assert "3,270 bars" in budget.work_problem(ibm, 5, limit=1000)
    minutes = data.series_from_points([
        (f"2020-{1 + d // 28:02d}-{1 + d % 28:02d}T{9 + (30 + m) // 60:02d}:{(30 + m) % 60:02d}",
         100 + m % 7) for d in range(60) for m in range(390)])
    assert len(minutes) == 23_400
    assert budget.work_problem(minutes, 5) is None  # 60 days x 5: 300
    assert budget.work_problem(minutes, 400) is not None  # min(23,400, 24,000)


def _counted(monkeypatch) -> list[int]:
    """Every rules.evaluate call from here on (the engine's and the ladder's searches)."""
    calls = [0]
    evaluate = rules.evaluate

    def counting(*args, **kwargs):
        calls[0] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(rules, "evaluate", counting)
    return calls


@pytest.mark.parametrize(("trigger", "max_orders"), [
    ("0.00000001", 100_000),  # a trade every bar: a new resting pair every bar
    ("0.03", 5), ("0.002", 1)])
def test_a_limit_run_never_evaluates_more_than_the_estimate(monkeypatch, trigger, max_orders):
    # an attacker's find: a 109-byte request made 534,525 evaluations (5.6 s) where the
    # estimate said 3,270, the resting pair's derivations uncounted
    daily, _ = data.load_sample("AAPL")
    for series in (daily, minute_walk(3_000)):
        cfg = rules.Config(trigger_pct=Decimal(trigger), min_notional=Decimal(0),
                           max_orders_per_day=max_orders)
        calls = _counted(monkeypatch)
        engine.run(series, cfg, engine.Setup(fill="limit", start_weight=Decimal("0.99")))
        expected = budget.expected_evaluations(series, max_orders, "limit")
        assert 0 < calls[0] <= expected, (trigger, max_orders, len(series))
        assert expected > budget.expected_evaluations(series, max_orders)


def test_a_hot_limit_backtest_on_a_sample_is_a_job_not_seconds_of_a_server_process():
    daily, _ = data.load_sample("AAPL")
    problem = budget.work_problem(daily, 100_000, fill="limit")
    assert "resting limit orders" in problem and "at most 20,000 evaluations" in problem
    assert budget.work_problem(daily, 100_000) is None  # market fills: one evaluation a bar


def test_a_run_s_resting_pair_derivations_stop_at_the_cap(monkeypatch):
    # a reviewer's find: one derivation of a fixed-fraction ladder just above min_notional on
    # whole shares took 2,491 evaluations, 14 x the estimate's 170, and the run 8,148 against
    # an estimate of 6,060: the estimate cannot bound it, the cap does as the run goes
    from positions.strategy import ladder

    cfg = rules.Config(sizing="fixed_fraction", fixed_fraction=Decimal("0.0101"),
                       min_notional=Decimal(100), fractional=False,
                       trigger_pct=Decimal("0.03"), max_orders_per_day=5)
    one = ladder.resting(rules.State(Decimal(5000), Decimal(10000), Decimal(0), Decimal(10)),
                         cfg)
    calls = _counted(monkeypatch)
    again = ladder.resting(rules.State(Decimal(5000), Decimal(10000), Decimal(0), Decimal(10)),
                           cfg)
    assert again.evaluations == one.evaluations == calls[0] > budget.LIMIT_EVALUATIONS_PER_CHANGE
    series = minute_walk(3_000)
    setup = engine.Setup(fill="limit", start_weight=Decimal("0.833"), cash=Decimal(60000))
    calls[0] = 0
    engine.run(series, cfg, setup)
    uncapped = calls[0]
    assert uncapped > budget.expected_evaluations(series, 5, "limit")
    calls[0] = 0
    with engine.evaluation_cap(1_000), pytest.raises(engine.WorkExceeded):
        engine.run(series, cfg, setup)
    assert calls[0] <= 1_000 + len(series) + one.evaluations  # its own, then one derivation
    with engine.evaluation_cap(10**9):  # far above: the same run, the same answer
        capped = engine.run(series, cfg, setup)
    plain = engine.run(series, cfg, setup)
    assert (capped.qty, capped.cash, len(capped.orders)) == (
        plain.qty, plain.cash, len(plain.orders))
