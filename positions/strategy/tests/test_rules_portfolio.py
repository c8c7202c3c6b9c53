"""The portfolio rebalance rule (docs/strategy.md#portfolios): examples worked by hand, its
properties on generated portfolios (cash conserved to the last digit, never negative, targets
reached when the cash allows), and when a rebalance is due."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy.rules import BOUNDS, Config, config_errors, constraint_names
from positions.strategy.rules.config import RuleError
from positions.strategy.rules.portfolio import (
    Holding,
    actual_weights,
    rebalance,
    rebalance_due,
    rule_errors,
    weights_error,
)

D = Decimal
PROPS = settings(max_examples=500, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def test_worked_example_every_target_reachable():
    # F = 1000; A: 10 x 50 + 500 cash = 1000; B: 0 shares, 2000 cash. T = 4000.
    # Targets 0.5 / 0.25: c_A* = 2000 - 500 = 1500, c_B* = 1000 - 0 = 1000; f* = 0.25 x 4000 =
    # 1000; C = 3500, C - f* = 2500 = sum c*: A gets 1500, B 1000, F the rest, 1000.
    r = rebalance(D(1000), [Holding(D("0.5"), D(10), D(50), D(500)),
                            Holding(D("0.25"), D(0), D(10), D(2000))])
    assert r.cash == (D(1500), D(1000))
    assert r.free_cash == D(1000)
    assert r.moves == (D(1000), D(-1000))
    assert r.turnover == D(2000)


def test_worked_example_scaled_down_when_cash_is_short():
    # A holds 90 x 10 = 900 in shares, target 0.3 of T = 1000: it wants no cash (c_A* = 0).
    # B holds nothing, target 0.5: c_B* = 500; f* = min(C, 0.2 x 1000) = 100 and C = 100, so
    # C - f* = 0: B gets nothing, F keeps the 100 (no cash is conjured).
    r = rebalance(D(0), [Holding(D("0.3"), D(90), D(10), D(50)),
                         Holding(D("0.5"), D(0), D(10), D(50))])
    assert r.cash == (D(0), D(0))
    assert r.free_cash == D(100)
    # With 300 of free cash: T = 1300, f* = 0.2 x 1300 = 260, c_B* = 650 but only 400 - 260 =
    # 140 is left for the positions: B gets 140, A 0 (c_A* = 390 - 900 < 0).
    r = rebalance(D(300), [Holding(D("0.3"), D(90), D(10), D(50)),
                           Holding(D("0.5"), D(0), D(10), D(50))])
    assert r.cash == (D(0), D(140))
    assert r.free_cash == D(260)


def test_scaled_shares_round_down_and_the_free_cash_takes_the_rest():
    # Three positions wanting 100 each and 100 to share: each gets 33.333333, F 0.000001.
    r = rebalance(D(100), [Holding(D("0.3"), D(0), D(1), D(0))] * 3 + [])
    assert r.cash == (D("30.000000"),) * 3  # T = 100: c* = 30 each, f* = 10, all reachable
    r = rebalance(D(100), [Holding(D("0.3"), D(1), D(40), D(0))] * 3)  # T = 220, c* = 26 each
    assert r.cash == (D("26.000000"),) * 3 and r.free_cash == D(22)
    r = rebalance(D(100), [Holding(D("0.333333"), D(0), D(1), D(0)),
                           Holding(D("0.333333"), D(0), D(1), D(0)),
                           Holding(D("0.333334"), D(0), D(1), D(0))])
    assert r.cash == (D("33.333300"), D("33.333300"), D("33.333400"))
    assert r.free_cash == D(0)


def test_empty_portfolio_keeps_its_cash():
    r = rebalance(D("12.5"), [])
    assert r.free_cash == D("12.5") and r.cash == () and r.moves == ()


@pytest.mark.parametrize("weights, code", [
    ([D("0.6"), D("0.5")], "invalid_weights"),
    ([D("-0.1")], "invalid_weights"),
    ([D("1.5")], "invalid_weights"),
])
def test_bad_weights_are_refused(weights, code):
    with pytest.raises(RuleError) as e:
        rebalance(D(100), [Holding(w, D(0), D(1), D(0)) for w in weights])
    assert e.value.code == code
    assert weights_error(weights) is not None


def test_negative_cash_is_refused():
    with pytest.raises(RuleError) as e:
        rebalance(D(-1), [Holding(D("0.5"), D(0), D(1), D(0))])
    assert e.value.code == "invalid_portfolio"
    with pytest.raises(RuleError):
        rebalance(D(1), [Holding(D("0.5"), D(0), D(1), D(-1))])


def money(hi: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, hi * 10**6).map(lambda i: D(i).scaleb(-6))


holding = st.builds(
    lambda q, p, c, r: (q, p, c, r),
    st.integers(0, 10**6 * 10**8).map(lambda i: D(i).scaleb(-8)),  # qty, 8 dp
    st.integers(10_000, 5_000 * 10**6).map(lambda i: D(i).scaleb(-6)),  # price 0.01..5000
    money(10**6), st.one_of(st.just(D(0)), money(10**4)))


@st.composite
def portfolios(draw):
    parts = draw(st.lists(holding, min_size=0, max_size=6))
    # weights in basis points that sum to at most 1
    raw = draw(st.lists(st.integers(0, 10_000), min_size=len(parts), max_size=len(parts)))
    total = draw(st.integers(0, 10_000))
    s = sum(raw) or 1
    weights = [D(x * total // s).scaleb(-4) for x in raw]
    free = draw(money(10**6))
    return free, [Holding(w, q, p, c, r) for w, (q, p, c, r) in zip(weights, parts, strict=True)]


@PROPS
@given(portfolios())
def test_cash_is_conserved_exactly_and_never_negative(pf):
    free, holdings = pf
    r = rebalance(free, holdings)
    before = free + sum((h.cash for h in holdings), D(0))
    assert r.free_cash + sum(r.cash, D(0)) == before  # to the last digit
    assert r.free_cash >= 0 and all(c >= 0 for c in r.cash)
    assert all(c == c.quantize(D("0.000001")) for c in r.cash)
    assert [h.cash + m for h, m in zip(holdings, r.moves, strict=True)] == list(r.cash)
    # the portfolio's value is unchanged: only cash moved
    after = [Holding(h.weight, h.qty, h.price, c, h.receivable)
             for h, c in zip(holdings, r.cash, strict=True)]
    assert r.free_cash + sum((h.value for h in after), D(0)) == \
        free + sum((h.value for h in holdings), D(0))


@PROPS
@given(portfolios())
def test_targets_are_met_when_the_cash_allows(pf):
    free, holdings = pf
    r = rebalance(free, holdings)
    T = free + sum((h.value for h in holdings), D(0))
    wsum = sum((h.weight for h in holdings), D(0))
    want = [max(D(0), h.weight * T - h.qty * h.price - h.receivable) for h in holdings]
    C = free + sum((h.cash for h in holdings), D(0))
    f_star = min(C, (1 - wsum) * T)
    if sum(want, D(0)) <= C - f_star:
        # each position reaches its desired cash, rounded down to the micro
        assert all(D(0) <= w - c < D("0.000001") for w, c in zip(want, r.cash, strict=True))
        # and a rebalance of the rebalanced portfolio moves (almost) nothing
        again = rebalance(r.free_cash, [Holding(h.weight, h.qty, h.price, c, h.receivable)
                                        for h, c in zip(holdings, r.cash, strict=True)])
        assert again.turnover <= D("0.000001") * 2 * len(holdings)
    else:
        # the positions share C - f*: F keeps f* (up to the micros rounded away)
        assert f_star <= r.free_cash < f_star + D("0.000001") * (len(holdings) + 1)


def test_actual_weights():
    assert actual_weights(D(500), [Holding(D("0.5"), D(10), D(50), D(0))]) == [D("0.5")]
    assert actual_weights(D(0), [Holding(D("0.5"), D(0), D(50), D(0))]) == [D(0)]


@pytest.mark.parametrize("rule, last, date, due", [
    ("monthly", dt.date(2024, 1, 31), dt.date(2024, 2, 1), True),
    ("monthly", dt.date(2024, 2, 1), dt.date(2024, 2, 2), False),
    ("monthly", dt.date(2023, 12, 29), dt.date(2024, 1, 2), True),
    ("quarterly", dt.date(2024, 2, 29), dt.date(2024, 3, 1), False),
    ("quarterly", dt.date(2024, 3, 28), dt.date(2024, 4, 1), True),
    ("quarterly", dt.date(2023, 12, 29), dt.date(2024, 1, 2), True),
    ("yearly", dt.date(2024, 6, 28), dt.date(2024, 7, 1), False),
    ("yearly", dt.date(2023, 12, 29), dt.date(2024, 1, 2), True),
    ("monthly", None, dt.date(2024, 1, 2), False),  # the first session: nothing to compare
    ("never", dt.date(2023, 12, 29), dt.date(2024, 1, 2), False),
    ("monthly", dt.date(2024, 1, 5), dt.date(2024, 1, 5), False),  # a later bar, same session
])
def test_periodic_rebalance_is_due_at_the_first_session_of_a_period(rule, last, date, due):
    assert rebalance_due(rule, None, last, date) is due


def test_band_rebalance_is_due_when_a_weight_drifts_beyond_the_band():
    day = dt.date(2024, 1, 2)
    band = D("0.05")
    assert not rebalance_due("band", band, day, day, [(D("0.45"), D("0.4")), (D("0.3"), D("0.3"))])
    assert rebalance_due("band", band, day, day, [(D("0.450001"), D("0.4"))])
    assert rebalance_due("band", band, None, day, [(D("0.3"), D("0.4"))])


@pytest.mark.parametrize("rule, band, fields", [
    ("weekly", None, {"rebalance"}),
    ("band", None, {"rebalance_band"}),
    ("band", D(0), {"rebalance_band"}),
    ("band", D(1), {"rebalance_band"}),
    ("monthly", D("0.1"), {"rebalance_band"}),
    ("band", D("0.1"), set()),
    ("never", None, set()),
])
def test_rule_errors(rule, band, fields):
    assert set(rule_errors(rule, band)) == fields
    if fields:
        with pytest.raises(RuleError) as e:
            rebalance_due(rule, band, None, dt.date(2024, 1, 2))
        assert e.value.code == "invalid_rebalance"


def test_the_portfolio_fields_are_in_the_bounds_table_and_not_in_the_positions_constraints():
    assert BOUNDS["rebalance"].choices == ("never", "monthly", "quarterly", "yearly", "band")
    assert BOUNDS["rebalance_band"].model == "portfolio"
    assert "pfl_rebalance_valid" not in constraint_names()
    assert constraint_names("portfolio") == ["pfl_rebalance_valid", "pfl_band_range"]
    assert config_errors(Config()) == {}
