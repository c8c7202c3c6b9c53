"""The next-trigger ladder (docs/strategy.md#ladder): hand-computed rungs and the property that
evaluating at a rung gives its proposal while nothing fires strictly between the rungs."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy import rules
from positions.strategy.ladder import TICK, ladder
from positions.strategy.tests.test_rules_properties import cases

D = Decimal
MAX = D(10) ** 7
PROPS = settings(max_examples=300, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def test_trigger_rungs_at_the_anchor_bounds():
    """Inside the band the rungs are the triggers themselves: anchor 100, trigger 3 %."""
    state = rules.State(D(50), D(5000), D(0), D(100))
    lad = ladder(state, rules.Config())
    assert lad.buy.price == D("97.000000") and lad.sell.price == D("103.000000")
    # proportional: |Pa/P - 1| * r * V / P; V = 50 * 103 + 5000 = 10150
    raw = (D(100) / D(103) - 1).copy_abs() * D("1.6667") * D(10150) / D(103)
    assert lad.sell.proposal.qty == raw.quantize(D("0.00000001"), "ROUND_DOWN")
    assert lad.sell.proposal.side == "SELL" and lad.sell.proposal.kind == "sell_trigger"
    assert lad.buy.proposal.side == "BUY" and lad.buy.proposal.kind == "buy_trigger"


def test_min_notional_pushes_the_sell_rung_past_the_trigger():
    """A small rebalance ratio: at 103 the sell is below the 100 minimum; it first reaches it
    where (1 - 100/P) * 0.1 * (50 P + 5000) = 100, i.e. P = 10 + sqrt(10100) = 110.49875..."""
    state = rules.State(D(50), D(5000), D(0), D(100))
    cfg = rules.Config(rebalance_ratio=D("0.1"))
    lad = ladder(state, cfg)
    assert D("110.4987") < lad.sell.price < D("110.4989")
    assert lad.sell.proposal.notional >= 100
    before = rules.evaluate(state, cfg, lad.sell.price - TICK)
    assert before.proposal is None and before.blocked_by == "below_min_notional"


def test_guardrail_rung_without_an_anchor():
    """No anchor: only the guardrails can fire. 10 shares and 1000 cash, band 25-75 %: the
    weight passes 75 % where 10 P = 3 * 1000, P = 300; the sell must reach 100 of notional."""
    state = rules.State(D(10), D(1000), D(0), None)
    cfg = rules.Config(commission_rate=D(0))
    lad = ladder(state, cfg)
    assert lad.sell.price > D(300)
    assert lad.sell.proposal.kind == "guardrail_rebalance"
    assert rules.evaluate(state, cfg, lad.sell.price - TICK).proposal is None
    # buys: weight under 25 % where 10 P < (1000 + 10 P) / 4, P < 33.33...
    assert lad.buy.price < D("33.333334")
    assert lad.buy.proposal.side == "BUY"


def test_no_shares_no_sell_rung():
    state = rules.State(D(0), D(10000), D(0), D(100))
    lad = ladder(state, rules.Config(guard_low=D(0)), max_price=MAX)
    assert lad.sell is None
    assert lad.buy.price == D("97.000000")


def test_invalid_configuration_is_refused():
    state = rules.State(D(1), D(1000), D(0), D(100))
    try:
        ladder(state, rules.Config(trigger_pct=D(2)))
    except rules.RuleError as exc:
        assert exc.code == "invalid_config"
    else:
        raise AssertionError("an invalid configuration must be refused")


def _fires(state, cfg, price):
    return rules.evaluate(state, cfg, price).proposal


@PROPS
@given(cases(), st.lists(st.integers(1, 10**6 - 1), min_size=8, max_size=8))
def test_ladder_property(case, fractions):
    """At a rung, evaluate gives exactly that proposal; one tick beyond it toward the other
    rung, and at any price strictly between the rungs, nothing fires."""
    state, cfg, _ = case
    lad = ladder(state, cfg, max_price=MAX)
    lo = lad.buy.price if lad.buy else D(0)
    hi = lad.sell.price if lad.sell else MAX + TICK
    assert lo < hi
    for rung in (lad.buy, lad.sell):
        if rung is None:
            continue
        assert _fires(state, cfg, rung.price) == rung.proposal
        assert rung.proposal.side == rung.side
    probes = {lo + TICK, hi - TICK}
    probes |= {(lo + (hi - lo) * D(f) / 10**6).quantize(TICK, "ROUND_DOWN") for f in fractions}
    for p in sorted(probes):
        if lo < p < hi and p > 0:
            got = _fires(state, cfg, p)
            assert got is None, (p, lad, got)


@PROPS
@given(cases(min_notional_at_least=50))
def test_ladder_property_with_a_real_minimum(case):
    """The same with a minimum notional that bites: walk the whole gap on a coarse grid."""
    state, cfg, _ = case
    lad = ladder(state, cfg, max_price=MAX)
    lo = lad.buy.price if lad.buy else D(0)
    hi = lad.sell.price if lad.sell else MAX + TICK
    for rung in (lad.buy, lad.sell):
        if rung is not None:
            assert _fires(state, cfg, rung.price) == rung.proposal
    span = min(hi, lo * 4 + 1000) - lo
    for i in range(1, 64):
        p = (lo + span * i / 64).quantize(TICK, "ROUND_DOWN")
        if lo < p < hi:
            assert _fires(state, cfg, p) is None, (p, lad)


def test_ladder_ignores_the_daily_cap_and_open_orders():
    """The ladder is where the next order fires once nothing blocks it: same answer whatever
    the blocks are (they are reported beside it by the API)."""
    state = rules.State(D(50), D(5000), D(0), D(100))
    cfg = dataclasses.replace(rules.Config(), max_orders_per_day=1)
    assert ladder(state, cfg) == ladder(state, rules.Config(max_orders_per_day=7))


def test_no_shares_buys_at_every_price_up_to_where_the_target_is_one_step():
    """The rung of ~2.5e11 reported for a position with no shares is no search
    error: with no shares the weight is 0 at every price, under the 25 % guardrail, so the
    rules buy at any price until the guardrail's target (2,500 of its 10,000 cash, less the
    commission) is less than one step of 10^-8 shares. The rung is marked ``always``."""
    state = rules.State(D(0), D(10000), D(0), D(100))
    lad = ladder(state, rules.Config())
    assert lad.buy.always and lad.sell is None
    assert D("2.49e11") < lad.buy.price < D("2.5e11")
    assert lad.buy.proposal.qty == D("0.00000001")
    assert _fires(state, rules.Config(), lad.buy.price + TICK) is None
    for p in (D("0.01"), D(97), D(100), D(150), D(10) ** 6, lad.buy.price):
        assert _fires(state, rules.Config(), p).side == "BUY"
    whole = rules.Config(fractional=False)  # one whole share: the target is reached at 2,500
    lad = ladder(state, whole)
    assert lad.buy.always and D(2499) < lad.buy.price < D(2500)
    assert lad.buy.proposal.qty == 1
    # A trigger rung is not marked: 50 shares and cash, inside the band.
    lad = ladder(rules.State(D(50), D(5000), D(0), D(100)), rules.Config())
    assert not lad.buy.always and not lad.sell.always


def test_no_cash_sells_at_every_price_from_the_minimum_notional():
    """Shares but no cash: the weight is 1 at every price, over the 75 % guardrail; the sell
    (a quarter of the 50 shares) fires wherever it reaches the 100 minimum: 100 / 12.5 = 8."""
    state = rules.State(D(50), D(0), D(0), D(100))
    lad = ladder(state, rules.Config(commission_rate=D(0)))
    assert lad.sell.always and lad.buy is None
    assert lad.sell.price == D("8.000000") and lad.sell.proposal.qty == D("12.5")


def _no_shares_or_no_cash(case, kind):
    state, cfg, price = case
    if kind == "no shares":
        state = dataclasses.replace(state, qty=D(0), cash=max(state.cash, D(1)))
    else:
        state = dataclasses.replace(state, cash=D(0), receivable=D(0), qty=max(state.qty, D(1)))
    return state, cfg, price


@PROPS
@given(cases(), st.sampled_from(["no shares", "no cash"]),
       st.lists(st.integers(1, 10**6 - 1), min_size=8, max_size=8))
def test_ladder_property_with_no_shares_or_no_cash(case, kind, fractions):
    """The ladder property on states with no shares or no cash, over the default grid up to
    10^12 (where a no-share buy rung lies): at a rung evaluate gives exactly its proposal, and
    nothing fires strictly between the rungs."""
    state, cfg, _ = _no_shares_or_no_cash(case, kind)
    top = D(10) ** 12
    lad = ladder(state, cfg, max_price=top)
    lo = lad.buy.price if lad.buy else D(0)
    hi = lad.sell.price if lad.sell else top + TICK
    assert lo < hi
    for rung in (lad.buy, lad.sell):
        if rung is not None:
            assert _fires(state, cfg, rung.price) == rung.proposal
    probes = {lo + TICK, hi - TICK}
    probes |= {(lo + (hi - lo) * D(f) / 10**6).quantize(TICK, "ROUND_DOWN") for f in fractions}
    for p in sorted(probes):
        if lo < p < hi and p > 0:
            assert _fires(state, cfg, p) is None, (p, lad)
