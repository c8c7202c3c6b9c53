"""evaluate() against the formulas of docs/strategy.md#evaluation (steps 4 to 6), written out here
from the document and not through the module's helpers (trigger_size, buy_to, sell_to share
their code with evaluate, so comparing with them cannot catch a wrong formula)."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import event, given

from positions.strategy.rules import Config, State, evaluate
from positions.strategy.tests.test_rules_properties import PROPS, cases

D = Decimal


def spec_raw_size(state: State, cfg: Config, price: Decimal) -> tuple[str, Decimal] | None:
    """(side, untrimmed size) by docs/strategy.md#evaluation, or None when nothing is to be done."""
    S, C, R, Pa, P = state.qty, state.cash, state.receivable, state.anchor, price
    tau, r, f, c = cfg.trigger_pct, cfg.rebalance_ratio, cfg.fixed_fraction, cfg.commission_rate
    low, high = cfg.guard_low, cfg.guard_high
    V = S * P + C + R
    w = S * P / V
    trigger = None
    if Pa is not None:  # an empty anchor becomes P: no trigger on this evaluation
        if P >= Pa * (1 + tau):
            trigger = "SELL"
        elif P <= Pa * (1 - tau):
            trigger = "BUY"

    def trigger_shares(side: str) -> Decimal:  # step 4
        if cfg.sizing == "proportional":
            return abs(Pa / P - 1) * r * V / P
        if cfg.sizing == "original":
            return (Pa / P) * r * V / P
        return f * C / P if side == "BUY" else f * S

    if w < low:  # step 6, with buy_to / sell_to of step 5
        buy_to_low = (low * V - S * P) / (P * (1 + low * c))
        return "BUY", max(trigger_shares("BUY") if trigger == "BUY" else D(0), buy_to_low)
    if w > high:
        sell_to_high = (S * P - high * V) / (P * (1 - high * c))
        return "SELL", max(trigger_shares("SELL") if trigger == "SELL" else D(0), sell_to_high)
    if trigger is None:
        return None
    return trigger, trigger_shares(trigger)


def to_8dp(x: Decimal) -> Decimal:
    return x.quantize(D("0.00000001"), rounding=ROUND_DOWN)


@PROPS
@given(cases())
def test_the_untrimmed_size_is_the_documented_formula(case):
    state, cfg, price = case
    d = evaluate(state, cfg, price)
    prop = d.proposal or d.blocked
    expected = spec_raw_size(state, cfg, price)
    if prop is None:
        # nothing proposed: nothing to do, or a cap / the rounding left nothing
        assert expected is None or d.reason in (
            "guardrail_high", "guardrail_low", "cash", "holdings", "rounded_to_zero")
        return
    event(f"{cfg.sizing} {prop.kind}")
    side, size = expected
    assert prop.side == side
    # the 28-digit arithmetic of the module and of this test may differ in the last digit:
    # one unit of the 8th place either way
    assert abs(prop.raw_qty - to_8dp(size)) <= D("0.00000001"), (prop.raw_qty, size)


@pytest.mark.parametrize("price,side,raw", [
    # V = 100 x 97 + 10000 = 19700; |100/97 - 1| x 1.6667 x 19700/97
    #   = 3 x 1.6667 x 19700 / 97^2 = 98502.97 / 9409 = 10.468909554...
    (D(97), "BUY", D("10.46890955")),
    # V = 100 x 103 + 10000 = 20300; |100/103 - 1| x 1.6667 x 20300/103
    #   = 3 x 1.6667 x 20300 / 103^2 = 101502.03 / 10609 = 9.567539824...
    (D(103), "SELL", D("9.56753982")),
])
def test_proportional_size_by_hand(price, side, raw):
    state = State(D(100), D(10000), D(0), D(100))  # weight about 0.49: inside the band
    d = evaluate(state, Config(), price)
    assert d.proposal.side == side and d.proposal.kind == f"{side.lower()}_trigger"
    assert d.proposal.raw_qty == raw
    assert d.proposal.qty == raw  # not trimmed; 8 dp already


@pytest.mark.parametrize("kwargs,code,sentence", [
    ({"dps": D(0), "shares": D(1), "withholding_rate": D(0)}, "invalid_dps",
     "The dividend per share must be greater than zero, not 0."),
    ({"dps": D(1), "shares": D(-1), "withholding_rate": D(0)}, "invalid_shares",
     "Shares must be zero or more, not -1."),
    ({"dps": D(1), "shares": D(1), "withholding_rate": D(1)}, "invalid_withholding",
     "The withholding rate must be at least 0 and less than 1, not 1."),
])
def test_dividend_amounts_refuse_with_a_code_and_a_sentence(kwargs, code, sentence):
    """Found by bench/mutation.py: these refusals survived every mutation of their code."""
    from positions.strategy.rules import RuleError, dividend_amounts

    with pytest.raises(RuleError) as exc:
        dividend_amounts(**kwargs)
    assert (exc.value.code, exc.value.message) == (code, sentence)


def test_dividend_amounts_by_hand():
    from positions.strategy.rules import dividend_amounts

    # 137 shares x 0.4375 = 59.9375 gross; 15 % withheld -> 50.946875 net
    assert dividend_amounts(dps=D("0.4375"), shares=D(137), withholding_rate=D("0.15")) == (
        D("59.937500"), D("50.946875"))
