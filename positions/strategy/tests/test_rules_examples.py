"""Worked examples of the rules (docs/strategy.md#evaluation, #fills, #dividends), one per branch.

Every expected number is computed by hand in this file from Decimal literals, following the
formulas of docs/strategy.md#evaluation; nothing is computed by the code under test. Defaults used
throughout:
tau = 0.03, r = 1.6667, c = 0.0001, band [0.25, 0.75], min_notional = 100, 5 orders a day.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

import pytest

from positions.strategy import rules
from positions.strategy.rules import (
    Config,
    Decision,
    Proposal,
    RuleError,
    State,
    apply_fill,
    buy_to,
    config_errors,
    default_commission,
    dividend_amounts,
    evaluate,
    round_qty,
    sell_to,
    weight_of,
)

D = Decimal
TAU = D("0.03")
R = D("1.6667")  # rebalance ratio r
C = D("0.0001")  # commission rate c
LOW = D("0.25")
HIGH = D("0.75")


def q8(x: Decimal) -> Decimal:
    """Quantity: 8 dp toward zero."""
    return x.quantize(D("0.00000001"), rounding=ROUND_DOWN)


def m6(x: Decimal) -> Decimal:
    """Money, price, weight: 6 dp half-even."""
    return x.quantize(D("0.000001"))


def whole(x: Decimal) -> Decimal:
    return x.to_integral_value(rounding=ROUND_DOWN)


def st(qty, cash, receivable="0", anchor=None) -> State:
    return State(D(qty), D(cash), D(receivable), None if anchor is None else D(anchor))


def trade(side, qty, price, *, S, V, raw, kind, trimmed_by=None, trigger=None):
    """The expected proposal numbers of a trade of ``qty`` at ``price``, by hand:
    notional q*P, commission c*q*P, post-trade weight (S +- q)*P / (V - commission)."""
    commission = m6(C * qty * price)
    s_after = S + qty if side == "BUY" else S - qty
    return {
        "side": side,
        "qty": qty,
        "notional": m6(qty * price),
        "commission": commission,
        "raw_qty": q8(raw),
        "kind": kind,
        "trimmed": trimmed_by is not None,
        "trimmed_by": trimmed_by,
        "post_trade_weight": m6(s_after * price / (V - commission)),
        "trigger": trigger,
    }


# Shared hand computations ------------------------------------------------------------------

# S=50, C=5000, Pa=100. At P=103: V = 50*103 + 5000 = 10150 (w = 5150/10150, inside the band).
SELL103_RAW = abs(D(100) / D(103) - 1) * R * D(10150) / D(103)  # proportional, ~4.78
# At P=97: V = 50*97 + 5000 = 9850 (w = 4850/9850).
BUY97_RAW = abs(D(100) / D(97) - 1) * R * D(9850) / D(97)  # proportional, ~5.23
# S=24, C=7600, P=100: V=10000, w=0.24 < 0.25: buy_to(0.25) = (2500 - 2400) / (100*(1+0.25c)).
SMALL_RAW = (LOW * D(10000) - D(2400)) / (D(100) * (1 + LOW * C))  # ~0.999975

EXAMPLES = [
    # 1. V <= 0: nothing to balance.
    pytest.param(
        st(0, 0), D(100), {}, {},
        {"reason": "no_value", "value": D("0.000000"), "weight": None, "anchor": None,
         "anchor_set": False},
        id="no_value",
    ),
    # 2. No anchor, all cash: anchor := P, no trigger, but w = 0 < 0.25 -> guardrail buy of
    #    buy_to(0.25) = (0.25*10000 - 0) / (100*(1 + 0.25c)) ~ 24.9994.
    pytest.param(
        st(0, 10000), D(100), {}, {},
        {"reason": "guardrail_rebalance", "anchor": D(100), "anchor_set": True,
         "value": D("10000.000000"), "weight": D("0.000000"),
         "proposal": trade("BUY", q8(LOW * D(10000) / (D(100) * (1 + LOW * C))), D(100),
                           S=D(0), V=D(10000), raw=LOW * D(10000) / (D(100) * (1 + LOW * C)),
                           kind="guardrail_rebalance")},
        id="no_anchor_all_cash_guardrail_buy",
    ),
    # 3. No anchor, inside the band: only the anchor is set.
    pytest.param(
        st(50, 5000), D(100), {}, {},
        {"reason": "anchor_set", "anchor": D(100), "anchor_set": True, "weight": D("0.500000"),
         "proposal": None, "blocked": None},
        id="no_anchor_in_band",
    ),
    # 4. Sell trigger exactly at the inclusive bound: 103 = 100*(1 + 0.03).
    pytest.param(
        st(50, 5000, anchor=100), D(103), {}, {},
        {"reason": "sell_trigger", "anchor": D(100), "anchor_set": False,
         "value": D("10150.000000"), "weight": m6(D(5150) / D(10150)),
         "proposal": trade("SELL", q8(SELL103_RAW), D(103), S=D(50), V=D(10150),
                           raw=SELL103_RAW, kind="sell_trigger", trigger="SELL")},
        id="sell_trigger_at_bound",
    ),
    # 5. Just inside the sell bound: no trigger.
    pytest.param(
        st(50, 5000, anchor=100), D("102.999999"), {}, {},
        {"reason": "no_trigger", "proposal": None, "blocked": None,
         "weight": m6(D(50) * D("102.999999") / (D(50) * D("102.999999") + D(5000)))},
        id="sell_just_inside",
    ),
    # 6. Buy trigger exactly at the inclusive bound: 97 = 100*(1 - 0.03).
    pytest.param(
        st(50, 5000, anchor=100), D(97), {}, {},
        {"reason": "buy_trigger",
         "proposal": trade("BUY", q8(BUY97_RAW), D(97), S=D(50), V=D(9850), raw=BUY97_RAW,
                           kind="buy_trigger", trigger="BUY")},
        id="buy_trigger_at_bound",
    ),
    # 7. Just inside the buy bound: no trigger.
    pytest.param(
        st(50, 5000, anchor=100), D("97.000001"), {}, {},
        {"reason": "no_trigger", "proposal": None},
        id="buy_just_inside",
    ),
    # 8. original sizing, buy: (Pa/P)*r*V/P = (100/97)*1.6667*9850/97 ~ 174.5, trimmed by
    #    buy_to(0.75) = (0.75*9850 - 50*97) / (97*(1 + 0.75c)) ~ 26.16.
    pytest.param(
        st(50, 5000, anchor=100), D(97), {"sizing": "original"}, {},
        {"reason": "buy_trigger",
         "proposal": trade(
             "BUY", q8((HIGH * D(9850) - D(50) * D(97)) / (D(97) * (1 + HIGH * C))), D(97),
             S=D(50), V=D(9850), raw=D(100) / D(97) * R * D(9850) / D(97), kind="buy_trigger",
             trimmed_by="guardrail_high", trigger="BUY")},
        id="original_buy_trimmed_guardrail_high",
    ),
    # 9. original sizing, sell: (100/103)*1.6667*10150/103 ~ 159.5, trimmed by
    #    sell_to(0.25) = (50*103 - 0.25*10150) / (103*(1 - 0.25c)) ~ 25.36 (< holdings 50).
    pytest.param(
        st(50, 5000, anchor=100), D(103), {"sizing": "original"}, {},
        {"reason": "sell_trigger",
         "proposal": trade(
             "SELL", q8((D(50) * D(103) - LOW * D(10150)) / (D(103) * (1 - LOW * C))), D(103),
             S=D(50), V=D(10150), raw=D(100) / D(103) * R * D(10150) / D(103),
             kind="sell_trigger", trimmed_by="guardrail_low", trigger="SELL")},
        id="original_sell_trimmed_guardrail_low",
    ),
    # 10. fixed_fraction buy: f*C/P = 0.10*5000/97.
    pytest.param(
        st(50, 5000, anchor=100), D(97), {"sizing": "fixed_fraction"}, {},
        {"reason": "buy_trigger",
         "proposal": trade("BUY", q8(D("0.10") * D(5000) / D(97)), D(97), S=D(50), V=D(9850),
                           raw=D("0.10") * D(5000) / D(97), kind="buy_trigger", trigger="BUY")},
        id="fixed_fraction_buy",
    ),
    # 11. fixed_fraction sell: f*S = 0.10*50 = 5.
    pytest.param(
        st(50, 5000, anchor=100), D(103), {"sizing": "fixed_fraction"}, {},
        {"reason": "sell_trigger",
         "proposal": trade("SELL", D("5.00000000"), D(103), S=D(50), V=D(10150),
                           raw=D("0.10") * D(50), kind="sell_trigger", trigger="SELL")},
        id="fixed_fraction_sell",
    ),
    # 12. Below the band, no trigger: S=10, C=9000, P=Pa=100, V=10000, w=0.1:
    #     buy_to(0.25) = (2500 - 1000) / (100*(1 + 0.25c)).
    pytest.param(
        st(10, 9000, anchor=100), D(100), {}, {},
        {"reason": "guardrail_rebalance", "weight": D("0.100000"),
         "proposal": trade(
             "BUY", q8((LOW * D(10000) - D(1000)) / (D(100) * (1 + LOW * C))), D(100),
             S=D(10), V=D(10000), raw=(LOW * D(10000) - D(1000)) / (D(100) * (1 + LOW * C)),
             kind="guardrail_rebalance")},
        id="below_band_no_trigger",
    ),
    # 13. Below the band with a sell trigger (P=103): the sell is overruled, buy to 0.25.
    #     V = 10*103 + 9000 = 10030.
    pytest.param(
        st(10, 9000, anchor=100), D(103), {}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "BUY", q8((LOW * D(10030) - D(1030)) / (D(103) * (1 + LOW * C))), D(103),
             S=D(10), V=D(10030), raw=(LOW * D(10030) - D(1030)) / (D(103) * (1 + LOW * C)),
             kind="guardrail_rebalance", trigger="SELL")},
        id="below_band_sell_trigger_overruled",
    ),
    # ... even when the (overruled) trigger size would be larger: original sizing gives
    #     (100/103)*1.6667*10030/103 ~ 157.6 > buy_to(0.25) ~ 14.34; still buy_to(0.25).
    pytest.param(
        st(10, 9000, anchor=100), D(103), {"sizing": "original"}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "BUY", q8((LOW * D(10030) - D(1030)) / (D(103) * (1 + LOW * C))), D(103),
             S=D(10), V=D(10030), raw=(LOW * D(10030) - D(1030)) / (D(103) * (1 + LOW * C)),
             kind="guardrail_rebalance", trigger="SELL")},
        id="below_band_larger_sell_trigger_overruled",
    ),
    # 14. Below the band with a larger buy trigger (P=90, V=9900): the trigger size wins.
    #     trigger (100/90 - 1)*1.6667*9900/90 ~ 20.37 > buy_to(0.25) ~ 17.50.
    pytest.param(
        st(10, 9000, anchor=100), D(90), {}, {},
        {"reason": "buy_trigger",
         "proposal": trade(
             "BUY", q8(abs(D(100) / D(90) - 1) * R * D(9900) / D(90)), D(90), S=D(10),
             V=D(9900), raw=abs(D(100) / D(90) - 1) * R * D(9900) / D(90), kind="buy_trigger",
             trigger="BUY")},
        id="below_band_larger_buy_trigger",
    ),
    # 15. Below the band with a smaller buy trigger (P=97, V=9970): the guardrail size wins.
    #     trigger (100/97 - 1)*1.6667*9970/97 ~ 5.30 < buy_to(0.25) ~ 15.70.
    pytest.param(
        st(10, 9000, anchor=100), D(97), {}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "BUY", q8((LOW * D(9970) - D(970)) / (D(97) * (1 + LOW * C))), D(97), S=D(10),
             V=D(9970), raw=(LOW * D(9970) - D(970)) / (D(97) * (1 + LOW * C)),
             kind="guardrail_rebalance", trigger="BUY")},
        id="below_band_smaller_buy_trigger",
    ),
    # 16. Above the band, no trigger: S=90, C=500, P=Pa=100, V=9500:
    #     sell_to(0.75) = (9000 - 0.75*9500) / (100*(1 - 0.75c)).
    pytest.param(
        st(90, 500, anchor=100), D(100), {}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "SELL", q8((D(9000) - HIGH * D(9500)) / (D(100) * (1 - HIGH * C))), D(100),
             S=D(90), V=D(9500), raw=(D(9000) - HIGH * D(9500)) / (D(100) * (1 - HIGH * C)),
             kind="guardrail_rebalance")},
        id="above_band_no_trigger",
    ),
    # 17. Above the band with a buy trigger (P=97, V=8730+500=9230): the buy is overruled.
    pytest.param(
        st(90, 500, anchor=100), D(97), {}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "SELL", q8((D(8730) - HIGH * D(9230)) / (D(97) * (1 - HIGH * C))), D(97),
             S=D(90), V=D(9230), raw=(D(8730) - HIGH * D(9230)) / (D(97) * (1 - HIGH * C)),
             kind="guardrail_rebalance", trigger="BUY")},
        id="above_band_buy_trigger_overruled",
    ),
    # ... even when the (overruled) trigger size would be larger: original sizing gives
    #     (100/97)*1.6667*9230/97 ~ 163.5 > sell_to(0.75) ~ 18.6; still sell_to(0.75).
    pytest.param(
        st(90, 500, anchor=100), D(97), {"sizing": "original"}, {},
        {"reason": "guardrail_rebalance",
         "proposal": trade(
             "SELL", q8((D(8730) - HIGH * D(9230)) / (D(97) * (1 - HIGH * C))), D(97),
             S=D(90), V=D(9230), raw=(D(8730) - HIGH * D(9230)) / (D(97) * (1 - HIGH * C)),
             kind="guardrail_rebalance", trigger="BUY")},
        id="above_band_larger_buy_trigger_overruled",
    ),
    # 18. Above the band with a larger sell trigger (P=130, V=11700+500=12200):
    #     trigger (1 - 100/130)*1.6667*12200/130 ~ 36.1 > sell_to(0.75) ~ 19.6.
    pytest.param(
        st(90, 500, anchor=100), D(130), {}, {},
        {"reason": "sell_trigger",
         "proposal": trade(
             "SELL", q8(abs(D(100) / D(130) - 1) * R * D(12200) / D(130)), D(130), S=D(90),
             V=D(12200), raw=abs(D(100) / D(130) - 1) * R * D(12200) / D(130),
             kind="sell_trigger", trigger="SELL")},
        id="above_band_larger_sell_trigger",
    ),
    # 19. Cash cap: S=0, C=1000, R=9000 (receivable not spendable), no anchor, w=0:
    #     buy_to(0.25) ~ 25 but q*P*(1+c) <= 1000 -> q <= 1000/(100*1.0001).
    pytest.param(
        st(0, 1000, receivable=9000), D(100), {}, {},
        {"reason": "guardrail_rebalance", "anchor_set": True,
         "proposal": trade(
             "BUY", q8(D(1000) / (D(100) * (1 + C))), D(100), S=D(0), V=D(10000),
             raw=LOW * D(10000) / (D(100) * (1 + LOW * C)), kind="guardrail_rebalance",
             trimmed_by="cash")},
        id="cash_cap",
    ),
    # 20. Holdings cap (low = 0): original sell of ~1430 shares; sell_to(0) = 10*103/103 = 10
    #     ties with holdings 10, and holdings is named. Sells every share.
    pytest.param(
        st(10, 90000, anchor=100), D(103), {"guard_low": D(0), "sizing": "original"}, {},
        {"reason": "sell_trigger",
         "proposal": trade("SELL", D("10.00000000"), D(103), S=D(10), V=D(91030),
                           raw=D(100) / D(103) * R * D(91030) / D(103), kind="sell_trigger",
                           trimmed_by="holdings", trigger="SELL")},
        id="holdings_cap_sell_all",
    ),
    # 21. Cap <= 0, guardrail high: w = 7500/10000 = 0.75 exactly, buy trigger (100 <= 104*0.97).
    pytest.param(
        st(75, 2500, anchor=104), D(100), {}, {},
        {"reason": "guardrail_high", "proposal": None, "blocked": None, "trigger": "BUY",
         "weight": D("0.750000")},
        id="cap_zero_guardrail_high",
    ),
    # 22. Cap <= 0, cash: no cash, only a receivable; buy trigger.
    pytest.param(
        st(50, 0, receivable=5000, anchor=104), D(100), {}, {},
        {"reason": "cash", "proposal": None, "blocked": None, "trigger": "BUY"},
        id="cap_zero_cash",
    ),
    # 23. Cap <= 0, holdings: low = 0, no shares, sell trigger (103 >= 100*1.03).
    pytest.param(
        st(0, 10000, anchor=100), D(103), {"guard_low": D(0)}, {},
        {"reason": "holdings", "proposal": None, "blocked": None, "trigger": "SELL"},
        id="cap_zero_holdings",
    ),
    # 24. Cap <= 0, guardrail low: w = 2500/10000 = 0.25 exactly, sell trigger (100 >= 97*1.03).
    pytest.param(
        st(25, 7500, anchor=97), D(100), {}, {},
        {"reason": "guardrail_low", "proposal": None, "blocked": None, "trigger": "SELL"},
        id="cap_zero_guardrail_low",
    ),
    # 25. Whole shares: the sell of ~4.78 becomes 4.
    pytest.param(
        st(50, 5000, anchor=100), D(103), {"fractional": False}, {},
        {"reason": "sell_trigger",
         "proposal": trade("SELL", q8(whole(SELL103_RAW)), D(103), S=D(50), V=D(10150),
                           raw=SELL103_RAW, kind="sell_trigger", trigger="SELL")},
        id="whole_shares_sell",
    ),
    pytest.param(
        st(50, 5000, anchor=100), D(97), {"fractional": False}, {},
        {"reason": "buy_trigger",
         "proposal": trade("BUY", q8(whole(BUY97_RAW)), D(97), S=D(50), V=D(9850), raw=BUY97_RAW,
                           kind="buy_trigger", trigger="BUY")},
        id="whole_shares_buy",
    ),
    # 26. qty_step 0.3: ~5.23 -> 17 steps = 5.1.
    pytest.param(
        st(50, 5000, anchor=100), D(97), {"qty_step": D("0.3")}, {},
        {"reason": "buy_trigger",
         "proposal": trade("BUY", q8(whole(BUY97_RAW / D("0.3")) * D("0.3")), D(97), S=D(50),
                           V=D(9850), raw=BUY97_RAW, kind="buy_trigger", trigger="BUY")},
        id="qty_step",
    ),
    # 27. Rounded to zero: whole shares, buy_to(0.25) ~ 0.999975 -> 0.
    pytest.param(
        st(24, 7600, anchor=100), D(100), {"fractional": False}, {},
        {"reason": "rounded_to_zero", "proposal": None, "blocked": None},
        id="rounded_to_zero",
    ),
    # 28. Below min notional: 0.99997500 * 100 = 99.9975 < 100; reported as blocked.
    pytest.param(
        st(24, 7600, anchor=100), D(100), {}, {},
        {"reason": "below_min_notional", "proposal": None, "blocked_by": "below_min_notional",
         "blocked": trade("BUY", q8(SMALL_RAW), D(100), S=D(24), V=D(10000), raw=SMALL_RAW,
                          kind="guardrail_rebalance")},
        id="below_min_notional",
    ),
    # ... and min notional comes first of the three checks.
    pytest.param(
        st(24, 7600, anchor=100), D(100), {}, {"orders_today": 5, "has_open_order": True},
        {"reason": "below_min_notional", "proposal": None, "blocked_by": "below_min_notional"},
        id="below_min_notional_first",
    ),
    # ... and min_notional 0 lets it through.
    pytest.param(
        st(24, 7600, anchor=100), D(100), {"min_notional": D(0)}, {},
        {"reason": "guardrail_rebalance", "blocked": None,
         "proposal": trade("BUY", q8(SMALL_RAW), D(100), S=D(24), V=D(10000), raw=SMALL_RAW,
                           kind="guardrail_rebalance")},
        id="min_notional_zero",
    ),
    # 29. Daily cap: 5 orders today (the maximum) blocks; 4 does not.
    pytest.param(
        st(50, 5000, anchor=100), D(103), {}, {"orders_today": 5},
        {"reason": "daily_cap_reached", "proposal": None, "blocked_by": "daily_cap_reached",
         "blocked": trade("SELL", q8(SELL103_RAW), D(103), S=D(50), V=D(10150),
                          raw=SELL103_RAW, kind="sell_trigger", trigger="SELL")},
        id="daily_cap_reached",
    ),
    pytest.param(
        st(50, 5000, anchor=100), D(103), {}, {"orders_today": 4},
        {"reason": "sell_trigger", "blocked": None, "blocked_by": None},
        id="daily_cap_not_reached",
    ),
    # ... and the daily cap comes before the open order.
    pytest.param(
        st(50, 5000, anchor=100), D(103), {}, {"orders_today": 5, "has_open_order": True},
        {"reason": "daily_cap_reached", "blocked_by": "daily_cap_reached"},
        id="daily_cap_before_open_order",
    ),
    # 30. Open order.
    pytest.param(
        st(50, 5000, anchor=100), D(103), {}, {"has_open_order": True},
        {"reason": "open_order", "proposal": None, "blocked_by": "open_order",
         "blocked": trade("SELL", q8(SELL103_RAW), D(103), S=D(50), V=D(10150),
                          raw=SELL103_RAW, kind="sell_trigger", trigger="SELL")},
        id="open_order",
    ),
]


def _check_proposal(actual: Proposal | None, expected: dict | None, price: Decimal) -> None:
    if expected is None:
        assert actual is None
        return
    assert actual is not None
    assert actual.price == price
    for key, value in expected.items():
        if key == "trigger":
            continue
        assert getattr(actual, key) == value, key
        if isinstance(value, Decimal):
            # Same exponent too: quantities 8 dp, money and weights 6 dp.
            assert getattr(actual, key).as_tuple().exponent == value.as_tuple().exponent, key


@pytest.mark.parametrize(("state", "price", "overrides", "kwargs", "expected"), EXAMPLES)
def test_evaluate_example(state, price, overrides, kwargs, expected):
    cfg = dataclasses.replace(Config(), **overrides)
    d = evaluate(state, cfg, price, **kwargs)
    assert isinstance(d, Decision)
    assert d.price == price
    assert d.reason == expected["reason"]
    assert d.message and d.message[0].isupper()
    for key, value in expected.items():
        if key in ("proposal", "blocked"):
            _check_proposal(getattr(d, key), value, price)
            if value is not None:
                assert d.trigger == value["trigger"]
        elif key != "reason":
            assert getattr(d, key) == value, key
    # Exactly one of: an actionable proposal, a blocked one, or none with a non-proposal reason.
    if d.proposal is not None:
        assert d.blocked is None and d.blocked_by is None
        assert d.reason == d.proposal.kind
        assert d.message == d.proposal.reason
    if d.blocked is not None:
        assert d.proposal is None and d.blocked_by == d.reason
        assert d.message.startswith(d.blocked.reason + "; blocked: ")


@pytest.mark.parametrize(("state", "price", "overrides", "kwargs", "expected"), EXAMPLES)
def test_float_inputs_agree_with_decimal(state, price, overrides, kwargs, expected):
    """The float path (for a fast backtest) reaches the same outcome, side and quantity, and the
    same notional to the cent."""
    cfg = dataclasses.replace(Config(), **overrides)
    dd = evaluate(state, cfg, price, **kwargs)
    fstate = State(float(state.qty), float(state.cash), float(state.receivable),
                   None if state.anchor is None else float(state.anchor))
    df = evaluate(fstate, cfg, float(price), **kwargs)
    assert isinstance(df.value, float)
    assert df.reason == dd.reason
    assert df.anchor_set == dd.anchor_set
    assert df.blocked_by == dd.blocked_by
    pd = dd.proposal or dd.blocked
    pf = df.proposal or df.blocked
    assert (pd is None) == (pf is None)
    if pd is not None:
        assert isinstance(pf.qty, float)
        assert pf.side == pd.side
        assert pf.kind == pd.kind
        assert pf.trimmed_by == pd.trimmed_by
        assert D(repr(pf.qty)) == pd.qty
        assert abs(D(repr(pf.notional)) - pd.notional) < D("0.01")
        assert abs(D(repr(pf.post_trade_weight)) - pd.post_trade_weight) <= D("0.000001")


@pytest.mark.parametrize(("state", "price", "overrides", "kwargs", "expected"), EXAMPLES)
def test_explain_false_changes_nothing_but_the_sentences(state, price, overrides, kwargs,
                                                          expected):
    cfg = dataclasses.replace(Config(), **overrides)
    full = evaluate(state, cfg, price, **kwargs)
    quiet = evaluate(state, cfg, price, explain=False, **kwargs)
    assert full.message
    blank = {"message": "",
             "proposal": full.proposal and dataclasses.replace(full.proposal, reason=""),
             "blocked": full.blocked and dataclasses.replace(full.blocked, reason="")}
    assert quiet == dataclasses.replace(full, **blank)


def test_float_and_decimal_agree_on_a_rounding_heavy_case():
    # Whole shares and a qty_step, float side by side with Decimal.
    for overrides in ({"fractional": False}, {"qty_step": D("0.05")}, {}):
        cfg = dataclasses.replace(Config(), **overrides)
        for price in ("61.37", "88.88", "113.456789", "150"):
            dd = evaluate(st("123.45678901", "4321.09", "12.5", "100"), cfg, D(price))
            df = evaluate(State(123.45678901, 4321.09, 12.5, 100.0), cfg, float(price))
            assert df.reason == dd.reason
            assert df.proposal.side == dd.proposal.side
            assert D(repr(df.proposal.qty)) == dd.proposal.qty


# Sentences ------------------------------------------------------------------------------------


def test_reason_sentence_reads_like_the_spec():
    d = evaluate(st(50, 5000, anchor="104.78"), Config(), D("101.20"))
    # V = 50*101.20 + 5000 = 10060; (104.78/101.20 - 1)*1.6667*10060/101.20 ~ 5.86
    qty = q8(abs(D("104.78") / D("101.20") - 1) * R * D(10060) / D("101.20"))
    assert d.proposal.qty == qty
    assert d.message == (
        f"Price 101.20 is 3.4 % below anchor 104.78 (trigger 3 %): buy {qty.normalize()} shares")


def test_trimmed_sentence_names_the_cap():
    d = evaluate(st(50, 5000, anchor=100), Config(sizing="original"), D(97))
    assert d.message.endswith("; trimmed by the 75 % guardrail")
    d = evaluate(st(0, 1000, receivable=9000), Config(), D(100))
    assert d.message.startswith("Anchor set to price 100.00; weight 0.0 % is below the 25 % "
                                "guardrail: buy ")
    assert d.message.endswith(" shares to rebalance; trimmed by available cash")


def test_blocked_and_no_trade_sentences():
    d = evaluate(st(24, 7600, anchor=100), Config(), D(100))
    assert d.message.endswith("; blocked: notional 99.9975 is below the minimum 100.00")
    d = evaluate(st(50, 5000, anchor=100), Config(), D(101))
    assert d.message == ("Price 101.00 is 1.0 % above anchor 100.00 (trigger 3 %): no trigger; "
                         "weight 50.2 % is inside the 25 %\u201375 % band")
    d = evaluate(st(75, 2500, anchor=104), Config(), D(100))
    assert d.message.endswith(": no buy, the weight is already at the 75 % guardrail")


# Errors of evaluate -------------------------------------------------------------------------


def test_evaluate_refuses_an_invalid_config_and_price():
    with pytest.raises(RuleError) as exc:
        evaluate(st(1, 1), Config(trigger_pct=D(0)), D(100))
    assert exc.value.code == "invalid_config"
    with pytest.raises(RuleError) as exc:
        evaluate(st(1, 1), Config(), D(0))
    assert exc.value.code == "invalid_price"


def test_fast_constructors_equal_the_dataclass_constructors():
    p_args = ("BUY", D(1), D(2), D(2), D("0.0002"), "buy_trigger", D(1), False, None, D("0.5"),
              "x")
    assert rules.new_proposal(*p_args) == Proposal(*p_args)
    d_args = (D(2), D(2), False, D(9), D("0.5"), Proposal(*p_args), None, None, "buy_trigger",
              "x", "BUY")
    made = rules.new_decision(*d_args)
    assert made == Decision(*d_args)
    assert hash(made) == hash(Decision(*d_args))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.reason = "other"


# Guardrail arithmetic and weights -----------------------------------------------------------


def test_buy_to_and_sell_to():
    # S=10, C=9000, P=100: V=10000.
    assert buy_to(LOW, qty=D(10), cash=D(9000), receivable=D(0), price=D(100),
                  commission_rate=C) == (D(2500) - D(1000)) / (D(100) * (1 + LOW * C))
    # S=90, C=500, P=100: V=9500.
    assert sell_to(HIGH, qty=D(90), cash=D(500), receivable=D(0), price=D(100),
                   commission_rate=C) == (D(9000) - D(7125)) / (D(100) * (1 - HIGH * C))


@pytest.mark.parametrize(("overrides", "qty", "expected"), [
    ({}, D("5.123456789"), D("5.12345678")),
    ({"fractional": False}, D("5.999"), D("5.00000000")),
    ({"qty_step": D("0.3")}, D("5.234"), D("5.10000000")),  # 17 * 0.3
    ({"qty_step": D("0.3"), "fractional": False}, D("0.299"), D("0E-8")),
    ({"fractional": False}, 5.999, 5.0),
    ({"qty_step": D("0.3")}, 5.234, 5.1),
])
def test_round_qty(overrides, qty, expected):
    got = round_qty(dataclasses.replace(Config(), **overrides), qty)
    assert got == expected and type(got) is type(expected)


def test_weight_of():
    assert weight_of(qty=D(50), cash=D(4000), receivable=D(1000), price=D(100)) == (
        D("10000.000000"), D("0.500000"))
    assert weight_of(qty=D(0), cash=D(0), receivable=D(0), price=D(100)) == (D("0.000000"), None)
    assert weight_of(qty=D(1), cash=D(2), receivable=D(0), price=D(1)) == (
        D("3.000000"), m6(D(1) / D(3)))


def test_default_commission():
    assert default_commission(Config(), D("12.5"), D("101.2")) == m6(C * D("12.5") * D("101.2"))
    assert default_commission(D("0.001"), D(3), D("33.333333")) == m6(
        D("0.001") * D(3) * D("33.333333"))


# Config validity ----------------------------------------------------------------------------

INVALID_CONFIGS = [
    ("trigger_pct", D(0)),
    ("trigger_pct", D(1)),
    ("trigger_pct", D("-0.01")),
    ("trigger_pct", "3 %"),
    ("trigger_pct", D("NaN")),
    ("rebalance_ratio", D(0)),
    ("rebalance_ratio", D("-1")),
    ("sizing", "martingale"),
    ("fixed_fraction", D(0)),
    ("fixed_fraction", D("1.01")),
    ("guard_low", D("-0.01")),
    ("guard_high", D("1.01")),
    ("min_notional", D("-1")),
    ("commission_rate", D("0.05")),
    ("commission_rate", D("-0.0001")),
    ("max_orders_per_day", 0),
    ("max_orders_per_day", True),
    ("fractional", "yes"),
    ("qty_step", D(0)),
    ("qty_step", D("-0.5")),
    ("qty_step", D("0.000000001")),
    ("withholding_tax_rate", D(1)),
    ("withholding_tax_rate", D("-0.01")),
]


@pytest.mark.parametrize(("field", "value"), INVALID_CONFIGS)
def test_config_errors_names_the_invalid_field(field, value):
    errors = config_errors(dataclasses.replace(Config(), **{field: value}))
    assert list(errors) == [field]
    assert field in errors[field] and errors[field].endswith(".")


@pytest.mark.parametrize(("low", "high"), [(D("0.5"), D("0.5")), (D("0.8"), D("0.75"))])
def test_config_errors_guard_low_must_be_below_guard_high(low, high):
    errors = config_errors(Config(guard_low=low, guard_high=high))
    assert set(errors) == {"guard_low", "guard_high"}


@pytest.mark.parametrize("overrides", [
    {},
    {"fixed_fraction": D(1), "guard_low": D(0), "guard_high": D(1), "commission_rate": D(0),
     "min_notional": D(0), "withholding_tax_rate": D(0), "qty_step": D("0.00000001")},
    {"trigger_pct": D("0.99"), "commission_rate": D("0.0499"), "max_orders_per_day": 1,
     "fractional": False, "qty_step": D(5), "withholding_tax_rate": D("0.99")},
    {"trigger_pct": 0.05, "guard_low": 0.1, "guard_high": 0.9},  # floats, for a float backtest
])
def test_config_errors_accepts_valid_configs(overrides):
    assert config_errors(dataclasses.replace(Config(), **overrides)) == {}


# Fills (docs/strategy.md#fills) --------------------------------------------------------------


def test_apply_fill_buy():
    # S=10, C=1000; buy 2 at 100.5 with commission 0.0201: C = 1000 - 201 - 0.0201.
    assert apply_fill(qty=D(10), cash=D(1000), side="BUY", fill_qty=D(2), price=D("100.5"),
                      commission=D("0.0201")) == (D("12.00000000"), D("798.979900"))


def test_apply_fill_sell():
    # S=10, C=1000; sell 3 at 99.123456 (297.370368) with commission 0.029737.
    assert apply_fill(qty=D(10), cash=D(1000), side="SELL", fill_qty=D(3),
                      price=D("99.123456"), commission=D("0.029737")) == (
        D("7.00000000"), D("1297.340631"))


def test_apply_fill_sell_all_shares():
    new_qty, new_cash = apply_fill(qty=D("12.34567891"), cash=D(0), side="SELL",
                                   fill_qty=D("12.34567891"), price=D(10), commission=D("0.01"))
    assert new_qty == 0 and new_qty.as_tuple().exponent == -8
    assert new_cash == m6(D("123.4567891") - D("0.01"))


def test_apply_fill_buy_with_all_the_cash():
    assert apply_fill(qty=D(0), cash=D("100.01"), side="BUY", fill_qty=D(1), price=D(100),
                      commission=D("0.01")) == (D("1.00000000"), D("0.000000"))


def test_apply_fill_refuses_selling_more_than_held():
    with pytest.raises(RuleError) as exc:
        apply_fill(qty=D(10), cash=D(1000), side="SELL", fill_qty=D("10.00000001"),
                   price=D(100), commission=D(0))
    assert exc.value.code == "insufficient_qty"
    assert exc.value.message


def test_apply_fill_refuses_buying_beyond_cash():
    # 10 * 100 + 0.1 = 1000.1 > 1000.
    with pytest.raises(RuleError) as exc:
        apply_fill(qty=D(0), cash=D(1000), side="BUY", fill_qty=D(10), price=D(100),
                   commission=D("0.1"))
    assert exc.value.code == "insufficient_cash"


def test_apply_fill_refuses_a_sell_whose_commission_exceeds_proceeds_and_cash():
    # proceeds 1 + cash 0.5 < commission 2.
    with pytest.raises(RuleError) as exc:
        apply_fill(qty=D(1), cash=D("0.5"), side="SELL", fill_qty=D(1), price=D(1),
                   commission=D(2))
    assert exc.value.code == "insufficient_cash"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"side": "HOLD"}, "invalid_side"),
    ({"fill_qty": D(0)}, "invalid_qty"),
    ({"price": D(0)}, "invalid_price"),
    ({"commission": D("-0.01")}, "invalid_commission"),
])
def test_apply_fill_refuses_inputs_outside_the_domain(kwargs, code):
    args = {"qty": D(1), "cash": D(1000), "side": "BUY", "fill_qty": D(1), "price": D(10),
            "commission": D(0), **kwargs}
    with pytest.raises(RuleError) as exc:
        apply_fill(**args)
    assert exc.value.code == code


# Dividends (docs/strategy.md#dividends) ------------------------------------------------------


def test_dividend_amounts():
    # 0.24 * 123.45678901 = 29.6296293624; net = that * 0.75 = 22.2222220218.
    assert dividend_amounts(dps=D("0.24"), shares=D("123.45678901"),
                            withholding_rate=D("0.25")) == (D("29.629629"), D("22.222222"))
    # No withholding; whole numbers.
    assert dividend_amounts(dps=D("1.5"), shares=D(100), withholding_rate=D(0)) == (
        D("150.000000"), D("150.000000"))
    # No shares: nothing.
    assert dividend_amounts(dps=D("1.5"), shares=D(0), withholding_rate=D("0.3")) == (
        D("0.000000"), D("0.000000"))


def test_dividend_amounts_rejects_bad_inputs():
    for kwargs in ({"dps": D(0)}, {"shares": D(-1)}, {"withholding_rate": D(1)}):
        args = {"dps": D(1), "shares": D(1), "withholding_rate": D(0), **kwargs}
        with pytest.raises(RuleError):
            dividend_amounts(**args)
