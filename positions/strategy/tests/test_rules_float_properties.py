"""The rules on float inputs (the backtest's float mode and the sweeps run them), and the cash
cap after rounding (docs/strategy.md#evaluation, steps 7 and 8: a buy never costs more than the
cash; rounding never overshoots a cap).

Float rounding toward zero is ``floor(q / step + 1e-9) * step``: the 1e-9 absorbs binary
representation error, and so can lift a cash cap a hair below a whole step up to that step. The
proposal must then still be paid for by the cash. Deterministic, like test_rules_properties.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from positions.strategy.rules import Config, State, apply_fill, evaluate
from positions.strategy.tests.test_rules_properties import PROPS, cases, expected_side

D = Decimal
STEPS = {"whole shares": (False, None), "8 dp": (True, None), "0.01": (True, D("0.01")),
         "5": (True, D(5))}


def as_float(state: State, price: Decimal) -> tuple[State, float]:
    return State(float(state.qty), float(state.cash), float(state.receivable),
                 None if state.anchor is None else float(state.anchor)), float(price)


def cash_bound_config(step: str, commission_rate: Decimal) -> Config:
    """A buy trigger far larger than the cash ('original' sizing, r = 5) and a 100 % high
    guardrail: the cash is the cap that decides the quantity."""
    fractional, qty_step = STEPS[step]
    return Config(sizing="original", rebalance_ratio=D(5), guard_low=D("0.25"),
                  guard_high=D(1), min_notional=D(0), commission_rate=commission_rate,
                  fractional=fractional, qty_step=qty_step)


def assert_paid_for(state: State, cfg: Config, price) -> None:
    """Any proposal (actionable or blocked) a buyer's cash covers, the fill accepts it, and
    in float mode every number stays a float."""
    d = evaluate(state, cfg, price)
    prop = d.proposal or d.blocked
    if prop is None or prop.side != "BUY":
        return
    c = float(cfg.commission_rate) if type(price) is float else cfg.commission_rate
    assert prop.qty * prop.price * (1 + c) <= state.cash, (prop.qty, prop.price, state.cash)
    new_qty, new_cash = apply_fill(qty=state.qty, cash=state.cash, side="BUY",
                                   fill_qty=prop.qty, price=prop.price,
                                   commission=prop.commission)
    assert new_cash >= 0
    assert new_qty == (round(state.qty + prop.qty, 8) if type(price) is float
                       else state.qty + prop.qty)
    if type(price) is float:
        assert type(prop.qty) is float and type(new_cash) is float


@pytest.mark.parametrize("number", [float, D], ids=["float", "decimal"])
def test_one_share_costing_10001_is_not_proposed_with_cash_10000_999999(number):
    cfg = cash_bound_config("whole shares", D("0.0001"))
    state = State(number(0), number("10000.999999"), number(0), number(15000))
    d = evaluate(state, cfg, number(10000))
    # 10000.999999 / (10000 x 1.0001) = 0.9999999999 shares: nothing whole is affordable
    assert d.proposal is None and d.blocked is None
    assert d.reason == "rounded_to_zero"
    # a millionth more cash buys it
    d = evaluate(State(number(0), number("10001"), number(0), number(15000)), cfg,
                 number(10000))
    assert d.proposal.qty == 1 and d.proposal.trimmed_by == "cash"


@st.composite
def cash_a_hair_short(draw, number):
    """Cash for exactly n steps of shares at price P with commission, less a shortfall from
    nothing up to a few 1e-9 of a step's cost: the float rounding's blind spot."""
    step = draw(st.sampled_from(sorted(STEPS)))
    c = draw(st.sampled_from([D(0), D("0.0001"), D("0.0025"), D("0.01")]))
    cfg = cash_bound_config(step, c)
    unit = cfg.qty_step or (D(1) if not cfg.fractional else D("0.00000001"))
    price = D(draw(st.integers(1_000_000, 5_000_000_000))).scaleb(-6)  # 1 .. 5000
    n = draw(st.integers(1, 5_000))
    exact = n * unit * price * (1 + c)
    short = draw(st.sampled_from([0, D("1e-12"), D("1e-10"), D("5e-10"), D("1e-9"),
                                  D("3e-9")])) * unit * price * (1 + c)
    # cash is kept to 6 dp in both modes (the fills and dividends round it so)
    cash = (exact - short).quantize(D("0.000001"), rounding="ROUND_DOWN")
    if number is float:
        return cfg, State(0.0, float(cash), 0.0, float(price) * 1.5), float(price)
    return cfg, State(D(0), cash, D(0), (price * D("1.5")).quantize(D("0.000001"))), price


@PROPS
@given(cash_a_hair_short(float))
def test_float_buy_a_hair_short_of_a_whole_step_never_overdraws(case):
    cfg, state, price = case
    assert_paid_for(state, cfg, price)


@PROPS
@given(cash_a_hair_short(D))
def test_decimal_buy_a_hair_short_of_a_whole_step_never_overdraws(case):
    cfg, state, price = case
    assert_paid_for(state, cfg, price)


@PROPS
@given(cases())
def test_float_inputs_keep_the_caps_and_the_side(case):
    """The general cases of test_rules_properties, drawn again as floats: a buy the cash pays
    for (the fill accepts it), a sell within holdings, and the side
    docs/strategy.md#evaluation chooses."""
    state, cfg, price = case
    fstate, fprice = as_float(state, price)
    assert_paid_for(fstate, cfg, fprice)
    d = evaluate(fstate, cfg, fprice)
    prop = d.proposal or d.blocked
    if prop is None:
        return
    assert prop.qty > 0
    if prop.side == "SELL":
        assert prop.qty <= fstate.qty
    side, _ = expected_side(state, cfg, price)
    # Away from the trigger bounds (where the float path has a 1e-12 slack) the side is the
    # one the exact arithmetic chooses.
    if state.anchor is None or abs(price / state.anchor - 1 - cfg.trigger_pct) > D("1e-9") and (
            abs(price / state.anchor - 1 + cfg.trigger_pct) > D("1e-9")):
        assert prop.side == side
