"""Properties of the rules (docs/strategy.md#evaluation), checked on generated positions.

Deterministic (``derandomize=True``): CI sees the same examples on every run. Numbers are drawn
as Decimals with their stored precision: prices and money 6 dp, quantities 8 dp.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from positions.strategy.rules import (
    SIZINGS,
    Config,
    State,
    apply_fill,
    buy_to,
    evaluate,
    sell_to,
    trigger_size,
)

D = Decimal
PROPS = settings(max_examples=500, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def scaled(lo: int, hi: int, places: int) -> st.SearchStrategy[Decimal]:
    """Decimals lo..hi (in units of 10**-places) with exactly ``places`` decimal places."""
    return st.integers(lo, hi).map(lambda i: D(i).scaleb(-places))


prices = scaled(10_000, 2_000_000_000, 6)  # 0.01 .. 2000
quantities = st.one_of(scaled(0, 10_000 * 10**8, 8), st.integers(0, 2_000).map(D))
money = st.one_of(scaled(0, 10**6 * 10**6, 6), st.integers(0, 100_000).map(D))
receivables = st.one_of(st.just(D(0)), scaled(0, 10**5 * 10**6, 6))
moves = scaled(-6_000, 6_000, 4)  # anchor = price * (1 + move), -60 % .. +60 %


@st.composite
def configs(draw, *, min_notional_at_least: int = 0, sizing: str | None = None) -> Config:
    low = draw(st.one_of(st.just(0), st.integers(0, 6_000)))
    high = draw(st.integers(low + 1, 10_000))
    return Config(
        trigger_pct=draw(scaled(10, 3_000, 4)),  # 0.1 % .. 30 %
        rebalance_ratio=draw(scaled(1, 50_000, 4)),  # 0.0001 .. 5
        sizing=sizing or draw(st.sampled_from(SIZINGS)),
        fixed_fraction=draw(scaled(1, 10_000, 4)),  # (0, 1]
        guard_low=D(low).scaleb(-4),
        guard_high=D(high).scaleb(-4),
        min_notional=D(draw(st.one_of(st.just(min_notional_at_least),
                                      st.integers(max(min_notional_at_least, 1), 500)))),
        commission_rate=draw(st.one_of(st.just(D(0)), scaled(1, 100, 4))),  # 0 .. 1 %
        max_orders_per_day=5,
        fractional=draw(st.booleans()),
        qty_step=draw(st.one_of(st.none(), st.sampled_from(
            [D("0.00000001"), D("0.001"), D("0.01"), D("0.5"), D(1), D(5)]))),
    )


@st.composite
def cases(draw, *, min_notional_at_least: int = 0,
          sizing: str | None = None) -> tuple[State, Config, Decimal]:
    """A configuration, a state and a price with V > 0.

    Mostly built from a value and a stock weight chosen against the configuration's band
    (below, inside, above, the extremes) and an anchor chosen against its trigger (none, inside,
    beyond either bound), so that every branch is exercised; sometimes from independent
    amounts and an arbitrary anchor."""
    cfg = draw(configs(min_notional_at_least=min_notional_at_least, sizing=sizing))
    price = draw(prices)
    low, high = cfg.guard_low, cfg.guard_high
    if draw(st.integers(0, 4)):
        value = draw(scaled(10**5, 10**9, 2))  # 1 000 .. 10 000 000
        u = draw(scaled(0, 10_000, 4))
        inside = low + (high - low) * u
        w0 = draw(st.sampled_from([low * u, inside, inside, inside, high + (1 - high) * u,
                                   D(0), D(1)]))
        qty = (w0 * value / price).quantize(D("0.00000001"), rounding="ROUND_DOWN")
        if draw(st.booleans()):
            qty = qty.quantize(D(1), rounding="ROUND_DOWN")
        rest = value - qty * price
        share = draw(st.one_of(st.just(D(0)), scaled(0, 10_000, 4), scaled(9_000, 10_000, 4)))
        receivable = (share * rest).quantize(
            D("0.000001"), rounding="ROUND_DOWN")
        cash = (rest - receivable).quantize(D("0.000001"), rounding="ROUND_DOWN")
        tau = cfg.trigger_pct
        v = draw(scaled(0, 10_000, 4))
        # price = anchor * (1 + m): m beyond +-tau fires a trigger, inside does not.
        m = draw(st.sampled_from([tau * v, -tau * v, tau + v / 2, -(tau + (1 - tau) * v * 9 / 10),
                                  tau, -tau]))
        anchor = None if draw(st.integers(0, 5)) == 0 else (price / (1 + m)).quantize(
            D("0.000001"))
    else:
        qty = draw(quantities)
        cash = draw(money)
        receivable = draw(receivables)
        anchor = draw(st.one_of(st.none(), moves.map(lambda m: (price * (1 + m)).quantize(
            D("0.000001")))))
    if qty * price + cash + receivable <= 0:
        cash = D("1000.000000")
    if anchor is not None and anchor <= 0:
        anchor = price
    return State(qty, cash, receivable, anchor), cfg, price


def step_of(cfg: Config) -> Decimal:
    if cfg.qty_step is not None:
        return cfg.qty_step
    return D(1) if not cfg.fractional else D("0.00000001")


def expected_side(state: State, cfg: Config, price: Decimal) -> tuple[str | None, str | None]:
    """(side, trigger): the side the rules must choose before any trimming and the trigger that
    fires, by hand from docs/strategy.md#evaluation steps 2, 3 and 6."""
    trigger = None
    if state.anchor is not None:
        if price >= state.anchor * (1 + cfg.trigger_pct):
            trigger = "SELL"
        elif price <= state.anchor * (1 - cfg.trigger_pct):
            trigger = "BUY"
    sp = state.qty * price
    w = sp / (sp + state.cash + state.receivable)
    if w < cfg.guard_low:
        return "BUY", trigger
    if w > cfg.guard_high:
        return "SELL", trigger
    return trigger, trigger


def fill(state: State, proposal) -> State:
    """Apply the proposal as a fill at its price with its estimated commission; the anchor
    becomes the fill price."""
    new_qty, new_cash = apply_fill(qty=state.qty, cash=state.cash, side=proposal.side,
                                   fill_qty=proposal.qty, price=proposal.price,
                                   commission=proposal.commission)
    return State(new_qty, new_cash, state.receivable, proposal.price)


def weight(state: State, price: Decimal) -> tuple[Decimal, Decimal]:
    value = state.qty * price + state.cash + state.receivable
    return value, state.qty * price / value


@PROPS
@given(cases())
def test_trimming_never_flips_the_side(case):
    state, cfg, price = case
    d = evaluate(state, cfg, price)
    side, trigger = expected_side(state, cfg, price)
    assert d.trigger == trigger
    prop = d.proposal or d.blocked
    if side is None:
        assert prop is None
        assert d.reason in ("no_trigger", "anchor_set")
        return
    if prop is None:
        # Only a cap at or below zero or the rounding can leave nothing to propose.
        assert d.reason in ("guardrail_high", "guardrail_low", "cash", "holdings",
                            "rounded_to_zero")
        assert (d.reason in ("guardrail_high", "cash")) == (side == "BUY") or (
            d.reason == "rounded_to_zero")
        return
    assert prop.side == side
    # A trigger's size is only used on the trigger's own side; an opposite one is overruled.
    assert prop.kind in ("guardrail_rebalance", f"{side.lower()}_trigger")
    if prop.kind != "guardrail_rebalance":
        assert trigger == side
    assert prop.qty > 0
    assert prop.qty <= prop.raw_qty
    assert prop.trimmed == (prop.trimmed_by is not None)
    if not prop.trimmed:  # only the rounding toward zero separates qty from the raw size
        assert prop.raw_qty - prop.qty < step_of(cfg)
    assert prop.trimmed_by in (None, "guardrail_high", "cash") if side == "BUY" else (
        prop.trimmed_by in (None, "guardrail_low", "holdings"))
    assert prop.qty % step_of(cfg) == 0


@PROPS
@given(cases())
def test_a_buy_never_costs_more_than_the_cash_and_a_sell_never_exceeds_holdings(case):
    state, cfg, price = case
    d = evaluate(state, cfg, price)
    prop = d.proposal or d.blocked
    if prop is None:
        return
    c = cfg.commission_rate
    if prop.side == "BUY":
        assert prop.qty * price * (1 + c) <= state.cash
    else:
        assert prop.qty <= state.qty
    # The estimated commission is c*q*P to 6 dp, and the fill is accepted.
    assert abs(prop.commission - c * prop.qty * price) <= D("0.0000005")
    after = fill(state, prop)
    assert after.qty >= 0 and after.cash >= 0


@PROPS
@given(cases())
def test_after_a_trade_the_weight_respects_the_caps(case):
    check_weight_after_trade(*case)


@PROPS
@given(cases(sizing="original"))
def test_after_an_aggressive_trimmed_trade_the_weight_is_inside_the_band(case):
    # "original" sizing is aggressive: most of its trigger trades are trimmed by a cap.
    check_weight_after_trade(*case)


def check_weight_after_trade(state: State, cfg: Config, price: Decimal) -> None:
    """A buy never ends above the high guardrail and a sell never below the low one; after a
    trade trimmed by a guardrail (or by holdings) the weight is inside [low, high]. Tolerance:
    one rounding step of shares (step*P*(1+c)/V') plus the 6-dp money rounding of the
    commission and of the cash (2e-6/V')."""
    d = evaluate(state, cfg, price)
    event(d.reason)
    prop = d.proposal or d.blocked
    if prop is None:
        return
    event(f"{prop.side} {prop.kind} trimmed_by={prop.trimmed_by}")
    after = fill(state, prop)
    value, w = weight(after, price)
    tol = (step_of(cfg) * price * (1 + cfg.commission_rate) + D("0.000002")) / value
    low, high = cfg.guard_low, cfg.guard_high
    if prop.side == "BUY":
        assert w <= high + tol
    else:
        assert w >= low - tol
    assert abs(w - prop.post_trade_weight) <= D("0.0000005") + D("0.000002") / value
    if prop.trimmed_by in ("guardrail_high", "guardrail_low", "holdings"):
        assert low - tol <= w <= high + tol
    elif prop.trimmed_by == "cash":
        # All the spendable cash is used: inside the band, or the band is out of reach because
        # most of the value is receivable; then less than one more step's cost is left.
        _, w_before = weight(state, price)
        assert w > w_before
        assert low - tol <= w or after.cash < step_of(cfg) * price * (
            1 + cfg.commission_rate) + D("0.000002")


@PROPS
@given(prices, quantities, money, receivables, moves, moves, configs())
def test_proportional_size_is_zero_at_the_anchor_and_grows_with_the_move(
        anchor, qty, cash, receivable, m1, m2, cfg):
    cfg = dataclasses.replace(cfg, sizing="proportional")
    a, b = sorted((abs(m1), abs(m2)))
    if qty == 0 and cash == 0 and receivable == 0:
        cash = D(1000)
    args = {"qty": qty, "cash": cash, "receivable": receivable, "anchor": anchor}
    for side in ("BUY", "SELL"):
        assert trigger_size(cfg, side, price=anchor, **args) == 0
    # Buy side (price falls by a <= b, at most 60 %): shares and notional grow with the fall.
    near, far = anchor * (1 - a), anchor * (1 - b)
    s_near = trigger_size(cfg, "BUY", price=near, **args)
    s_far = trigger_size(cfg, "BUY", price=far, **args)
    assert 0 <= s_near <= s_far
    assert s_near * near <= s_far * far
    # Sell side (price rises by a <= b, at most 60 %): shares and notional grow with the rise.
    # (Beyond +100 % the share count may shrink as V/P falls; the notional keeps growing.)
    near, far = anchor * (1 + a), anchor * (1 + b)
    s_near = trigger_size(cfg, "SELL", price=near, **args)
    s_far = trigger_size(cfg, "SELL", price=far, **args)
    assert 0 <= s_near <= s_far
    assert s_near * near <= s_far * far


@PROPS
@given(cases())
def test_evaluate_sizes_agree_with_the_public_formulas(case):
    """The raw size is trigger_size() for a trigger and buy_to(low) / sell_to(high) for a
    guardrail rebalance; a guardrail trim lands on buy_to(high) / sell_to(low) rounded down."""
    state, cfg, price = case
    d = evaluate(state, cfg, price)
    prop = d.proposal or d.blocked
    if prop is None:
        return
    amounts = {"qty": state.qty, "cash": state.cash, "receivable": state.receivable,
               "price": price}
    c = cfg.commission_rate
    if prop.kind == "guardrail_rebalance":
        size = (buy_to(cfg.guard_low, commission_rate=c, **amounts) if prop.side == "BUY"
                else sell_to(cfg.guard_high, commission_rate=c, **amounts))
    else:
        size = trigger_size(cfg, prop.side, anchor=state.anchor, **amounts)
    assert prop.raw_qty == size.quantize(D("0.00000001"), rounding=ROUND_DOWN)
    if prop.trimmed_by in ("guardrail_high", "guardrail_low"):
        cap = (buy_to(cfg.guard_high, commission_rate=c, **amounts) if prop.side == "BUY"
               else sell_to(cfg.guard_low, commission_rate=c, **amounts))
        step = step_of(cfg)
        assert cap - step < prop.qty <= cap


@PROPS
@given(cases(min_notional_at_least=1))
def test_evaluating_again_after_the_fill_proposes_nothing(case):
    """Filling the proposal at the same price moves the anchor there (no trigger) and brings
    the weight to the band up to less than one rounding step and 6-dp money rounding, which
    either rounds to zero or is far below any positive min_notional."""
    state, cfg, price = case
    d = evaluate(state, cfg, price)
    event(f"first: {d.reason}")
    if d.proposal is None:
        return
    again = evaluate(fill(state, d.proposal), cfg, price)
    assert again.proposal is None, again.message
    assert not again.anchor_set
