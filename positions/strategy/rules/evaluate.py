"""Evaluation (docs/strategy.md#evaluation): from a position's state, its configuration and a
price, at most one proposal and always a reason. Also the guardrail arithmetic (step 5),
the trigger sizes (step 4), the choice of side (step 6, :func:`side_at`, which the ladder uses)
and the rounding of a quantity to the configured step (step 8).

:func:`evaluate` is type generic: the live service calls it with ``Decimal`` values, the backtest
may call it with ``float`` values for speed. When ``price`` is a ``float`` every other number is
converted to ``float`` and the trigger bounds get a 1e-12 relative slack so that an
exactly-at-the-bound price still triggers despite binary representation error.

Speed: per-configuration constants (1 +- tau, 1 + low*c, the rounding step, the percent strings
of the sentences, ...) are computed once per ``Config`` object and cached by identity; the
configuration is validated at the same time. The hot path is a handful of arithmetic operations,
inline quantizing, the result dataclasses built through their slot descriptors
(:func:`~positions.strategy.rules.numbers.fast_constructor`) and a few f-strings;
``evaluate(..., explain=False)`` skips the sentences altogether for a backtest that does not
show them. Pure: the standard library only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from positions.strategy.rules.config import BUY, SELL, SIZINGS, Config, RuleError, config_errors
from positions.strategy.rules.explain import (
    VERB,
    blocked_why,
    cap_phrase,
    fmt_price,
    fmt_qty,
    head,
    nothing_left,
    pct1,
    pct_cfg,
)
from positions.strategy.rules.numbers import (
    FLOAT_EPS,
    MONEY_PLACES,
    MONEY_ZERO,
    ONE,
    QTY_PLACES,
    WIDE,
    _floor,
    dec,
    fast_constructor,
    fround,
    money,
    qty_down,
)

# A proposal's kind, the cap that trimmed it, and the check that blocked it
# (docs/strategy.md#evaluation, steps 6, 7, 9).
KINDS = ("buy_trigger", "sell_trigger", "guardrail_rebalance")
TRIM_CAPS = ("guardrail_high", "guardrail_low", "cash", "holdings")
BLOCKS = ("below_min_notional", "daily_cap_reached", "open_order",
          "price_jump_unconfirmed")  # the last one set by the service (the price-jump guard)

_FLOAT_TRIGGER_SLACK = 1e-12  # relative slack on the float trigger bounds (inclusive bounds)


@dataclass(frozen=True, slots=True)
class State:
    """What a position holds: shares S, cash C, dividend receivable R and the anchor Pa."""

    qty: Decimal
    cash: Decimal
    receivable: Decimal
    anchor: Decimal | None


@dataclass(frozen=True, slots=True)
class Proposal:
    """One order the rules propose (docs/strategy.md#evaluation, step 10)."""

    side: str  # "BUY" | "SELL"
    qty: Decimal  # rounded final quantity (> 0)
    price: Decimal
    notional: Decimal  # qty*price, 6 dp
    commission: Decimal  # estimated c*qty*price, 6 dp
    kind: str  # "buy_trigger" | "sell_trigger" | "guardrail_rebalance"
    raw_qty: Decimal  # untrimmed, unrounded size (8 dp, toward zero)
    trimmed: bool
    trimmed_by: str | None  # "guardrail_high" | "guardrail_low" | "cash" | "holdings" | None
    post_trade_weight: Decimal  # stock weight after the trade incl. commission, 6 dp
    reason: str  # a sentence a person can read


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one evaluation: at most one proposal, always with a reason."""

    price: Decimal
    anchor: Decimal | None  # anchor used (= price when just set); None only for "no_value"
    anchor_set: bool  # True when the anchor was empty and became price
    value: Decimal  # V = S*P + C + R (6 dp)
    weight: Decimal | None  # w = S*P/V (6 dp), None when V <= 0
    proposal: Proposal | None  # actionable proposal (may be submitted now)
    blocked: Proposal | None  # a computed proposal a check blocked
    blocked_by: str | None  # "below_min_notional" | "daily_cap_reached" | "open_order"
    reason: str  # machine code of the outcome (the module docstring, docs/strategy.md#evaluation)
    message: str  # one readable sentence explaining the outcome
    trigger: str | None = None  # the trigger that fired ("BUY" | "SELL"), even when overruled


new_proposal = fast_constructor(Proposal)  # equal to Proposal(*args), cheaper
new_decision = fast_constructor(Decision)  # equal to Decision(*args), cheaper


# --------------------------------------------------------------------------------------------
# Per-configuration constants (cached)
# --------------------------------------------------------------------------------------------


class _Params:
    """Everything evaluate needs from a Config, precomputed in the right number type."""

    __slots__ = (
        "up", "down", "r", "sizing", "f", "low", "high", "min_notional", "c", "one_c",
        "bl", "bh", "sl", "sh", "step", "step_kind", "max_orders",
        "tau_s", "low_s", "high_s", "band_s", "step_s",
    )


_CACHE_D: dict[int, tuple[Config, _Params]] = {}
_CACHE_F: dict[int, tuple[Config, _Params]] = {}
_CACHE_MAX = 512


def params(cfg: Config, fl: bool) -> _Params:
    """The cached constants of ``cfg`` (keyed by identity; the entry keeps ``cfg`` alive, so an
    id cannot be reused while cached). Validates the configuration once."""
    cache = _CACHE_F if fl else _CACHE_D
    ent = cache.get(id(cfg))
    if ent is not None and ent[0] is cfg:
        return ent[1]
    errors = config_errors(cfg)
    if errors:
        raise RuleError("invalid_config", "Invalid configuration: " + " ".join(errors.values()))
    tau = dec(cfg.trigger_pct)
    c = dec(cfg.commission_rate)
    low = dec(cfg.guard_low)
    high = dec(cfg.guard_high)
    p = _Params()
    vals = {
        "up": ONE + tau,
        "down": ONE - tau,
        "r": dec(cfg.rebalance_ratio),
        "f": dec(cfg.fixed_fraction),
        "low": low,
        "high": high,
        "min_notional": dec(cfg.min_notional),
        "c": c,
        "one_c": ONE + c,
        "bl": ONE + low * c,
        "bh": ONE + high * c,
        "sl": ONE - low * c,
        "sh": ONE - high * c,
    }
    if cfg.qty_step is not None:
        step, p.step_kind = dec(cfg.qty_step), 2
        p.step_s = f"multiples of {fmt_qty(step)}"
    elif not cfg.fractional:
        step, p.step_kind = ONE, 1
        p.step_s = "whole shares"
    else:
        step, p.step_kind = QTY_PLACES, 0
        p.step_s = "8 decimal places"
    vals["step"] = step
    if fl:
        vals = {k: float(v) for k, v in vals.items()}
        vals["up"] *= 1.0 - _FLOAT_TRIGGER_SLACK
        vals["down"] *= 1.0 + _FLOAT_TRIGGER_SLACK
    for k, v in vals.items():
        setattr(p, k, v)
    p.sizing = SIZINGS.index(cfg.sizing)
    p.max_orders = cfg.max_orders_per_day
    p.tau_s = pct_cfg(tau)
    p.low_s = pct_cfg(low)
    p.high_s = pct_cfg(high)
    p.band_s = f"{p.low_s} %\u2013{p.high_s} %"
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[id(cfg)] = (cfg, p)
    return p


def qty_step(cfg: Config) -> Decimal:
    """The step quantities are rounded to: ``qty_step``, else 1 (whole shares), else 8 dp."""
    return params(cfg, False).step


# --------------------------------------------------------------------------------------------
# Guardrail arithmetic (docs/strategy.md#evaluation, step 5)
# --------------------------------------------------------------------------------------------


def buy_to(t, *, qty, cash, receivable, price, commission_rate):
    """Shares to buy to reach stock weight ``t`` from below, commission included:
    (t*V - S*P) / (P*(1 + t*c)). Unrounded; negative when the weight is already above ``t``."""
    sp = qty * price
    return (t * (sp + cash + receivable) - sp) / (price * (1 + t * commission_rate))


def sell_to(t, *, qty, cash, receivable, price, commission_rate):
    """Shares to sell to reach stock weight ``t`` from above, commission included:
    (S*P - t*V) / (P*(1 - t*c)). Unrounded; negative when the weight is already below ``t``."""
    sp = qty * price
    return (sp - t * (sp + cash + receivable)) / (price * (1 - t * commission_rate))


def weight_of(*, qty, cash, receivable, price):
    """(V, w): position value V = S*P + C + R and stock weight w = S*P/V, each to 6 dp;
    w is None when V <= 0."""
    sp = qty * price
    value = sp + cash + receivable
    if value <= 0:
        return money(value), None
    return money(value), money(sp / value)


# --------------------------------------------------------------------------------------------
# Evaluation (docs/strategy.md#evaluation)
# --------------------------------------------------------------------------------------------

_KIND_TRIGGER = {BUY: "buy_trigger", SELL: "sell_trigger"}


def _trigger(P, Pa, p: _Params) -> str | None:
    """The trigger that fires at price ``P`` against the anchor ``Pa`` (docs/strategy.md#evaluation,
    step 3: both bounds inclusive), or None."""
    if P >= Pa * p.up:
        return SELL
    if P <= Pa * p.down:
        return BUY
    return None


def _band(w, p: _Params) -> int:
    """Where the stock weight ``w`` is against the guardrails: -1 below the low one, 1 above the
    high one, 0 inside (docs/strategy.md#evaluation, step 6)."""
    if w < p.low:
        return -1
    if w > p.high:
        return 1
    return 0


def side_at(state: State, cfg: Config, price) -> str | None:
    """The side an evaluation at ``price`` takes before any cap, rounding or check
    (docs/strategy.md#evaluation, steps 1-3 and 6): a guardrail first, then the trigger; None when
    neither applies (no value, the anchor about to be set, no trigger inside the band). The
    same rules :func:`evaluate` decides with; Decimal or float like it."""
    p = params(cfg, type(price) is float)
    SP = state.qty * price
    V = SP + state.cash + state.receivable
    if V <= 0:
        return None
    band = _band(SP / V, p)
    if band:
        return BUY if band < 0 else SELL
    if state.anchor is None:  # the evaluation sets the anchor: no trigger fires on it
        return None
    return _trigger(price, state.anchor, p)


def evaluate(state: State, cfg: Config, price: Decimal, *, orders_today: int = 0,
             has_open_order: bool = False, explain: bool = True) -> Decision:
    """Evaluate a position at ``price`` (docs/strategy.md#evaluation): at most one proposal, a
    reason.

    ``orders_today``: orders already created for the position on the evaluation's trading day;
    ``has_open_order``: whether an order is still open. ``explain=False`` leaves the sentences
    (``Decision.message``, ``Proposal.reason``) empty and changes nothing else: for a backtest
    that does not show them. Works on Decimal or float inputs (the type of ``price`` decides;
    other inputs are converted to it). Raises RuleError ("invalid_config") for an invalid
    configuration and ("invalid_price") for a price <= 0."""
    P = price
    tp = type(P)
    S = state.qty
    C = state.cash
    R = state.receivable
    Pa = state.anchor
    if tp is float:
        fl = True
        if type(S) is not float:
            S = float(S)
        if type(C) is not float:
            C = float(C)
        if type(R) is not float:
            R = float(R)
        if Pa is not None and type(Pa) is not float:
            Pa = float(Pa)
    else:
        fl = False
        if tp is not Decimal:
            P = dec(P)
        if type(S) is not Decimal:
            S = dec(S)
        if type(C) is not Decimal:
            C = dec(C)
        if type(R) is not Decimal:
            R = dec(R)
        if Pa is not None and type(Pa) is not Decimal:
            Pa = dec(Pa)
    ent = (_CACHE_F if fl else _CACHE_D).get(id(cfg))
    p = ent[1] if ent is not None and ent[0] is cfg else params(cfg, fl)
    if not P > 0:
        raise RuleError("invalid_price", f"The price must be greater than zero, not {P}.")

    # 1. Value and weight.
    SP = S * P
    V = SP + C + R
    if V <= 0:
        return new_decision(P, Pa, False, money(V), None, None, None, None, "no_value",
                             f"Position value {fmt_price(money(V))} at price {fmt_price(P)} "
                             "is not positive: nothing to balance" if explain else "", None)
    w = SP / V
    if fl:  # V > 0 and w >= 0 here: no negative zero to tidy, so quantize inline
        value_q = fround(V, 1e6)
        weight_q = fround(w, 1e6)
    else:
        value_q = V.quantize(MONEY_PLACES, context=WIDE)
        weight_q = w.quantize(MONEY_PLACES, context=WIDE)

    # 2./3. Anchor and trigger.
    if Pa is None:
        Pa = P
        anchor_set = True
        trig = None
    else:
        anchor_set = False
        trig = _trigger(P, Pa, p)

    # 6. Side and size: the guardrails first, then the trigger.
    low = p.low
    high = p.high
    band = _band(w, p)
    if band < 0:
        side = BUY
        raw = (low * V - SP) / (P * p.bl)
        kind = "guardrail_rebalance"
        if trig is BUY:
            t = _trigger_size(p.sizing, BUY, Pa, P, V, C, S, p)
            if t >= raw:
                raw = t
                kind = "buy_trigger"
    elif band > 0:
        side = SELL
        raw = (SP - high * V) / (P * p.sh)
        kind = "guardrail_rebalance"
        if trig is SELL:
            t = _trigger_size(p.sizing, SELL, Pa, P, V, C, S, p)
            if t >= raw:
                raw = t
                kind = "sell_trigger"
    elif trig is not None:
        side = trig
        raw = _trigger_size(p.sizing, trig, Pa, P, V, C, S, p)
        kind = _KIND_TRIGGER[trig]
    else:
        if anchor_set:
            return new_decision(P, Pa, True, value_q, weight_q, None, None, None, "anchor_set",
                                 f"Anchor set to price {fmt_price(P)}; weight {pct1(w)} % is "
                                 f"inside the {p.band_s} band: no trade" if explain else "",
                                 None)
        return new_decision(P, Pa, False, value_q, weight_q, None, None, None, "no_trigger",
                             f"{head(P, Pa, False, p)}: no trigger; weight {pct1(w)} % is "
                             f"inside the {p.band_s} band" if explain else "", None)

    # The sentence so far: price against anchor, then the guardrail if it decides the side.
    if explain:
        text = head(P, Pa, anchor_set, p)
        if band:
            text += (f"; weight {pct1(w)} % is {'below' if band < 0 else 'above'} the "
                     f"{p.low_s if band < 0 else p.high_s} % guardrail")
            if trig is not None and trig is not side:
                text += f", overruling the {VERB[trig]} trigger"
    else:
        text = ""

    # 7. Caps: the guardrail on the far side, and cash or holdings. Never flip the side.
    if side is BUY:
        cap_g = (high * V - SP) / (P * p.bh)
        cap_x = C / (P * p.one_c)
        code_g = "guardrail_high"
        code_x = "cash"
    else:
        cap_g = (SP - low * V) / (P * p.sl)
        cap_x = S
        code_g = "guardrail_low"
        code_x = "holdings"
    if cap_x <= cap_g:  # on a tie the cash/holdings cap is the one named
        cap = cap_x
        cap_code = code_x
    else:
        cap = cap_g
        cap_code = code_g
    if cap <= 0:
        return new_decision(P, Pa, anchor_set, value_q, weight_q, None, None, None, cap_code,
                             f"{text}: no {VERB[side]}, {nothing_left(cap_code, p)}"
                             if explain else "", trig)
    if raw > cap:
        q = cap
        trimmed = True
        trimmed_by = cap_code
    else:
        q = raw
        trimmed = False
        trimmed_by = None

    # 8. Round toward zero; never past a cap.
    qr = _round_down(q, p, fl)
    if side is BUY and qr * P * p.one_c > C:  # guard against 28-digit / float division rounding
        qr = _round_down(qr - p.step, p, fl)
    if qr <= 0:
        return new_decision(P, Pa, anchor_set, value_q, weight_q, None, None, None,
                             "rounded_to_zero", f"{text}: {VERB[side]} "
                             f"{fmt_qty(qty_down(q))} shares rounds down to zero ({p.step_s})"
                             if explain else "", trig)

    # 10. The proposal.
    nq = qr * P  # exact in Decimal for an 8-dp quantity and a 6-dp price
    S2 = S + qr if side is BUY else S - qr
    if fl:
        notional = fround(nq, 1e6)
        k = fround(p.c * nq, 1e6)
        V2 = V - k
        w2 = fround(S2 * P / V2, 1e6) if V2 > 0 else 0.0
    else:
        notional = nq.quantize(MONEY_PLACES, context=WIDE)
        k = (p.c * nq).quantize(MONEY_PLACES, context=WIDE)
        V2 = V - k
        w2 = (S2 * P / V2).quantize(MONEY_PLACES, context=WIDE) if V2 > 0 else MONEY_ZERO
    if explain:
        verb = VERB[side]
        text += f": {verb} {fmt_qty(qr)} shares"
        if band and kind != "guardrail_rebalance":
            text += f" ({verb} trigger)"
        elif band:
            text += " to rebalance"
        if trimmed:
            text += f"; trimmed by {cap_phrase(cap_code, p)}"
    prop = new_proposal(side, qr, P, notional, k, kind, qty_down(raw), trimmed, trimmed_by, w2,
                         text)

    # 9. Checks that block a computed proposal.
    if nq < p.min_notional:
        code = "below_min_notional"
    elif orders_today >= p.max_orders:
        code = "daily_cap_reached"
    elif has_open_order:
        code = "open_order"
    else:
        return new_decision(P, Pa, anchor_set, value_q, weight_q, prop, None, None, kind, text,
                             trig)
    return new_decision(P, Pa, anchor_set, value_q, weight_q, None, prop, code, code,
                         f"{text}; blocked: {blocked_why(code, notional, p)}" if explain else "",
                         trig)


def _round_down(q, p: _Params, fl: bool):
    """A quantity toward zero to the configured step (docs/strategy.md#evaluation, step 8)."""
    step = p.step
    if fl:
        return fround(_floor(q / step + FLOAT_EPS) * step, 1e8)
    kind = p.step_kind
    if kind == 0:
        return q.quantize(QTY_PLACES, ROUND_DOWN)
    if kind == 1:
        return q.quantize(ONE, ROUND_DOWN).quantize(QTY_PLACES)
    return ((q / step).quantize(ONE, ROUND_DOWN) * step).quantize(QTY_PLACES, ROUND_DOWN)


def round_qty(cfg: Config, qty):
    """``qty`` rounded toward zero as evaluate rounds a proposal: to a multiple of ``qty_step``
    if set, else to whole shares if not ``fractional``, else to 8 dp. Decimal or float."""
    fl = type(qty) is float
    return _round_down(qty if fl else dec(qty), params(cfg, fl), fl)


def trigger_size(cfg: Config, side: str, *, qty, cash, receivable, anchor, price):
    """The unrounded trigger size in shares (docs/strategy.md#evaluation, step 4) for ``side``
    ("BUY" or "SELL"), whether or not the trigger fires: the same function :func:`evaluate` uses."""
    if side not in (BUY, SELL):
        raise RuleError("invalid_side", f"side must be BUY or SELL, not {side!r}.")
    p = params(cfg, type(price) is float)
    side = BUY if side == BUY else SELL
    value = qty * price + cash + receivable
    return _trigger_size(p.sizing, side, anchor, price, value, cash, qty, p)


def _trigger_size(sizing: int, side: str, Pa, P, V, C, S, p: _Params):
    """Trigger size in shares, >= 0 (docs/strategy.md#evaluation, step 4)."""
    if sizing == 0:  # proportional: |Pa/P - 1| * r * V/P
        return abs(Pa / P - 1) * p.r * V / P
    if sizing == 1:  # original: (Pa/P) * r * V/P
        return Pa / P * p.r * V / P
    if side is BUY:  # fixed_fraction: buy f*C/P, sell f*S
        return p.f * C / P
    return p.f * S
