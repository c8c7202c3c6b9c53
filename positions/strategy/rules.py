"""The volatility-balancing rules of docs/strategy.md: pure, deterministic, framework-free.

This module is the one implementation of the rules. The live service calls it with ``Decimal``
values; the backtest may call :func:`evaluate` with ``float`` values for speed. Only the standard
library is imported (no Django), so it runs in a test, a notebook or a backtest loop.

Numbers
    Quantities keep 8 decimal places and a computed quantity is rounded toward zero; money and
    prices keep 6 (``ROUND_HALF_EVEN``). Intermediate arithmetic is unrounded (default decimal
    context, 28 significant digits); only the reported values are quantized. Every ratio is a
    fraction; percent appears only inside human-readable sentences.

Floats
    :func:`evaluate` is type generic. When ``price`` is a ``float`` every other number (state and
    configuration) is converted to ``float`` and the rounding switches to
    ``floor(x / step + 1e-9) * step`` for quantities and ``round(x, 6)`` for money. The trigger
    bounds get a 1e-12 relative slack so that an exactly-at-the-bound price still triggers despite
    binary representation error.

Speed
    Per-configuration constants (1 +- tau, 1 + low*c, the rounding step, the percent strings of
    the sentences, ...) are computed once per ``Config`` object and cached by identity; the
    configuration is validated at the same time. The hot path is a handful of arithmetic
    operations, inline quantizing, the result dataclasses built through their slot descriptors
    (see ``_fast_constructor``) and a few f-strings; ``evaluate(..., explain=False)`` skips the
    sentences altogether for a backtest that does not show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "BLOCKS",
    "BUY",
    "KINDS",
    "MONEY_PLACES",
    "QTY_PLACES",
    "SELL",
    "SIZINGS",
    "TRIM_CAPS",
    "Config",
    "Decision",
    "Proposal",
    "RuleError",
    "State",
    "apply_fill",
    "buy_to",
    "config_errors",
    "covered_qty",
    "default_commission",
    "dividend_amounts",
    "evaluate",
    "fround",
    "round_qty",
    "sell_to",
    "slipped_price",
    "trigger_size",
    "weight_of",
]

QTY_PLACES = Decimal("0.00000001")  # quantities: 8 dp, computed qty rounded toward zero
MONEY_PLACES = Decimal("0.000001")  # money and prices: 6 dp (ROUND_HALF_EVEN)

SIZINGS = ("proportional", "original", "fixed_fraction")
# A proposal's kind, the cap that trimmed it, and the check that blocked it (strategy.md 6, 7, 9).
KINDS = ("buy_trigger", "sell_trigger", "guardrail_rebalance")
TRIM_CAPS = ("guardrail_high", "guardrail_low", "cash", "holdings")
BLOCKS = ("below_min_notional", "daily_cap_reached", "open_order",
          "price_jump_unconfirmed")  # the last one set by the service (positions.splits)

BUY = "BUY"
SELL = "SELL"

_ONE = Decimal(1)
_MONEY_ZERO = Decimal("0.000000")
# Rounding a result to its places must never fail, however large it is: the default context's
# 28 digits would raise InvalidOperation on a value the caller is about to refuse as too large
# for its column (a balance, a position value shown with its weight).
_WIDE = Context(prec=200, rounding=ROUND_HALF_EVEN)
_HUNDRED = Decimal(100)
_COMMISSION_LIMIT = Decimal("0.05")
MAX_PRICE_JUMP_LIMIT = Decimal(10)
# A split's ratio (new shares per old share): within these bounds and not 1.
SPLIT_RATIO_MIN = Decimal("0.0001")
SPLIT_RATIO_MAX = Decimal(1000)
_TENTH = Decimal("0.1")
_FLOAT_EPS = 1e-9  # float rounding toward zero: floor(x / step + eps) * step
_FLOAT_TRIGGER_SLACK = 1e-12  # relative slack on the float trigger bounds (inclusive bounds)


@dataclass(frozen=True, slots=True)
class Config:
    """Per-position strategy configuration (strategy.md, "State and configuration")."""

    trigger_pct: Decimal = Decimal("0.03")
    rebalance_ratio: Decimal = Decimal("1.6667")
    sizing: str = "proportional"
    fixed_fraction: Decimal = Decimal("0.10")
    guard_low: Decimal = Decimal("0.25")
    guard_high: Decimal = Decimal("0.75")
    min_notional: Decimal = Decimal("100")
    commission_rate: Decimal = Decimal("0.0001")
    max_orders_per_day: int = 5
    fractional: bool = True
    qty_step: Decimal | None = None
    withholding_tax_rate: Decimal = Decimal("0.25")
    max_price_jump: Decimal = Decimal("0.25")  # the price-jump guard (strategy.md)


@dataclass(frozen=True, slots=True)
class State:
    """What a position holds: shares S, cash C, dividend receivable R and the anchor Pa."""

    qty: Decimal
    cash: Decimal
    receivable: Decimal
    anchor: Decimal | None


@dataclass(frozen=True, slots=True)
class Proposal:
    """One order the rules propose (strategy.md, Flow B step 10)."""

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
    reason: str  # machine code of the outcome (see module docs / strategy.md)
    message: str  # one readable sentence explaining the outcome
    trigger: str | None = None  # the trigger that fired ("BUY" | "SELL"), even when overruled


class RuleError(Exception):
    """A refusal by the rules, with a stable machine ``code`` and a readable ``message``."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code


def _fast_constructor(cls):
    """A positional constructor for a frozen slotted dataclass that stores each field through
    its slot descriptor, skipping the frozen ``__setattr__`` detour of the generated
    ``__init__`` (about half the cost). The result is equal to ``cls(*args)``; the function is
    generated from ``fields(cls)`` so it follows any field added later."""
    names = [f.name for f in fields(cls)]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    o = _new(_cls)"]
    for i, name in enumerate(names):
        ns[f"_set{i}"] = getattr(cls, name).__set__
        lines.append(f"    _set{i}(o, {name})")
    lines.append("    return o")
    exec("\n".join(lines), ns)  # the same technique dataclasses uses for __init__
    return ns["make"]


_new_proposal = _fast_constructor(Proposal)
_new_decision = _fast_constructor(Decision)


# --------------------------------------------------------------------------------------------
# Configuration validity
# --------------------------------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    """A finite Decimal, int or float (bool excluded)."""
    if isinstance(v, bool) or not isinstance(v, (Decimal, int, float)):
        return False
    if isinstance(v, Decimal):
        return v.is_finite()
    if isinstance(v, float):
        return math.isfinite(v)
    return True


def config_errors(cfg: Config) -> dict[str, str]:
    """Field name -> human sentence for every invalid field; empty dict when valid.

    The validity table of strategy.md, plus ``guard_low < guard_high`` (reported on both fields)
    and ``qty_step`` having at most 8 decimal places (quantities are stored with 8)."""
    errors: dict[str, str] = {}

    def number(name: str) -> Any:
        v = getattr(cfg, name)
        if not _is_number(v):
            errors[name] = f"{name} must be a number."
            return None
        return v

    v = number("trigger_pct")
    if v is not None and not 0 < v < 1:
        errors["trigger_pct"] = "trigger_pct must be greater than 0 and less than 1."
    v = number("rebalance_ratio")
    if v is not None and not v > 0:
        errors["rebalance_ratio"] = "rebalance_ratio must be greater than 0."
    if not isinstance(cfg.sizing, str) or cfg.sizing not in SIZINGS:
        errors["sizing"] = "sizing must be one of: " + ", ".join(SIZINGS) + "."
    v = number("fixed_fraction")
    if v is not None and not 0 < v <= 1:
        errors["fixed_fraction"] = "fixed_fraction must be greater than 0 and at most 1."
    low = number("guard_low")
    if low is not None and not 0 <= low <= 1:
        errors["guard_low"] = "guard_low must be between 0 and 1."
        low = None
    high = number("guard_high")
    if high is not None and not 0 <= high <= 1:
        errors["guard_high"] = "guard_high must be between 0 and 1."
        high = None
    if low is not None and high is not None and not low < high:
        errors["guard_low"] = f"guard_low ({low}) must be less than guard_high ({high})."
        errors["guard_high"] = f"guard_high ({high}) must be greater than guard_low ({low})."
    v = number("min_notional")
    if v is not None and not v >= 0:
        errors["min_notional"] = "min_notional must be 0 or more."
    v = number("commission_rate")
    if v is not None and not 0 <= v < _COMMISSION_LIMIT:
        errors["commission_rate"] = "commission_rate must be at least 0 and less than 0.05."
    v = cfg.max_orders_per_day
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        errors["max_orders_per_day"] = "max_orders_per_day must be a whole number, 1 or more."
    if not isinstance(cfg.fractional, bool):
        errors["fractional"] = "fractional must be true or false."
    if cfg.qty_step is not None:
        v = number("qty_step")
        if v is not None:
            if not v > 0:
                errors["qty_step"] = "qty_step must be greater than 0 when set."
            elif _dec(v).normalize().as_tuple().exponent < -8:
                errors["qty_step"] = "qty_step must have at most 8 decimal places."
    v = number("withholding_tax_rate")
    if v is not None and not 0 <= v < 1:
        errors["withholding_tax_rate"] = "withholding_tax_rate must be at least 0 and less than 1."
    v = number("max_price_jump")
    if v is not None and not 0 < v <= MAX_PRICE_JUMP_LIMIT:
        errors["max_price_jump"] = "max_price_jump must be greater than 0 and at most 10."
    return errors


# --------------------------------------------------------------------------------------------
# Number helpers
# --------------------------------------------------------------------------------------------


def _dec(x: Any) -> Decimal:
    """Exact-enough Decimal of a Decimal, int or float (floats via their shortest repr)."""
    if type(x) is Decimal:
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(x)


_floor = math.floor


def fround(x: float, scale: float) -> float:
    """``round(x, 6)`` (``scale`` 1e6) or ``round(x, 8)`` (1e8) of a float, bit for bit, at
    about half the cost (the float mode's hot path rounds ~11 times an evaluation).

    ``round`` answers the double nearest to N / 10^n, N the integer nearest to the exact
    x * 10^n (ties to even). y = x * scale is that product rounded to a double; rounding is
    monotonic and every half-integer below 2^52 is a double, so y lies in the same closed
    interval [N - 1/2, N + 1/2] as the exact product. Unless y is itself a half-integer (then
    ``round`` decides the tie), N is the integer nearest to y, and N / scale is the double
    nearest to N / 10^n (IEEE division is correctly rounded; N and scale are exact). For
    |y| >= 4e15, a zero result (its sign) and non-finite x, ``round`` itself answers.
    positions/tests/test_rules_fround.py compares both on ties, their neighbours and random
    values."""
    y = x * scale
    if -4e15 < y < 4e15:
        f = _floor(y)
        d = y - f  # exact for |y| >= 1; below, rounded monotonically (0.5 is a double)
        if d != 0.5:
            if d > 0.5:
                f += 1
            if f:
                return f / scale
    return round(x, 6 if scale == 1e6 else 8)


def _money(x: Any) -> Any:
    """Money/price/weight rounding: 6 dp half-even (Decimal) or round(x, 6) (float)."""
    if type(x) is float:
        return fround(x, 1e6)
    x = x.quantize(MONEY_PLACES, context=_WIDE)
    return _MONEY_ZERO if not x and x.is_signed() else x


def _qty_down(x: Any) -> Any:
    """A quantity to 8 dp toward zero (huge values that cannot be quantized are kept)."""
    if type(x) is float:
        return fround(_floor(x / 1e-8 + _FLOAT_EPS) * 1e-8, 1e8) if x >= 0 else x
    try:
        return x.quantize(QTY_PLACES, ROUND_DOWN)
    except InvalidOperation:
        return x


def _pct_cfg(x: Decimal) -> str:
    """A configuration fraction as a percent string without trailing zeros: 0.03 -> '3'."""
    return format((x * _HUNDRED).normalize(), "f")


def _fmt_price(x: Any) -> str:
    """A price or money amount for a sentence: at least 2 decimals, no trailing zeros beyond."""
    s = str(x)
    i = s.find(".")
    if i < 0:
        if "E" in s or "e" in s:
            return _fmt_price(format(x, ".6f"))
        return s + ".00"
    if "E" in s or "e" in s:
        return _fmt_price(format(x, ".6f"))
    s = s.rstrip("0")
    d = len(s) - i
    return s if d > 2 else s + "00"[: 3 - d]


def _pct1(x: Any) -> str:
    """A fraction as a percent with one decimal (for sentences): 0.0342 -> '3.4'."""
    if type(x) is float:
        return f"{x * 100:.1f}"
    return str((x * _HUNDRED).quantize(_TENTH))


def _fmt_qty(x: Any) -> str:
    """A quantity for a sentence, without trailing zeros: 12.50000000 -> '12.5'."""
    s = str(x)
    if "e" in s or "E" in s:
        s = format(x, ".8f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


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


def _params(cfg: Config, fl: bool) -> _Params:
    """The cached constants of ``cfg`` (keyed by identity; the entry keeps ``cfg`` alive, so an
    id cannot be reused while cached). Validates the configuration once."""
    cache = _CACHE_F if fl else _CACHE_D
    ent = cache.get(id(cfg))
    if ent is not None and ent[0] is cfg:
        return ent[1]
    errors = config_errors(cfg)
    if errors:
        raise RuleError("invalid_config", "Invalid configuration: " + " ".join(errors.values()))
    tau = _dec(cfg.trigger_pct)
    c = _dec(cfg.commission_rate)
    low = _dec(cfg.guard_low)
    high = _dec(cfg.guard_high)
    p = _Params()
    vals = {
        "up": _ONE + tau,
        "down": _ONE - tau,
        "r": _dec(cfg.rebalance_ratio),
        "f": _dec(cfg.fixed_fraction),
        "low": low,
        "high": high,
        "min_notional": _dec(cfg.min_notional),
        "c": c,
        "one_c": _ONE + c,
        "bl": _ONE + low * c,
        "bh": _ONE + high * c,
        "sl": _ONE - low * c,
        "sh": _ONE - high * c,
    }
    if cfg.qty_step is not None:
        step, p.step_kind = _dec(cfg.qty_step), 2
        p.step_s = f"multiples of {_fmt_qty(step)}"
    elif not cfg.fractional:
        step, p.step_kind = _ONE, 1
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
    p.tau_s = _pct_cfg(tau)
    p.low_s = _pct_cfg(low)
    p.high_s = _pct_cfg(high)
    p.band_s = f"{p.low_s} %\u2013{p.high_s} %"
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[id(cfg)] = (cfg, p)
    return p


# --------------------------------------------------------------------------------------------
# Guardrail arithmetic (strategy.md, Flow B step 5)
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
        return _money(value), None
    return _money(value), _money(sp / value)


# --------------------------------------------------------------------------------------------
# Evaluation (strategy.md, Flow B)
# --------------------------------------------------------------------------------------------

_KIND_TRIGGER = {BUY: "buy_trigger", SELL: "sell_trigger"}
_VERB = {BUY: "buy", SELL: "sell"}


def _cap_phrase(code: str, p: _Params) -> str:
    if code == "guardrail_high":
        return f"the {p.high_s} % guardrail"
    if code == "guardrail_low":
        return f"the {p.low_s} % guardrail"
    if code == "cash":
        return "available cash"
    return "holdings"


def _nothing_left(code: str, p: _Params) -> str:
    if code == "guardrail_high":
        return f"the weight is already at the {p.high_s} % guardrail"
    if code == "guardrail_low":
        return f"the weight is already at the {p.low_s} % guardrail"
    if code == "cash":
        return "there is no spendable cash"
    return "there are no shares to sell"


def _head(P, Pa, anchor_set: bool, p: _Params) -> str:
    """The first clause of every evaluation sentence: the price against the anchor."""
    if anchor_set:
        return f"Anchor set to price {_fmt_price(P)}"
    if Pa <= 0:
        return f"Price {_fmt_price(P)} against anchor {_fmt_price(Pa)} (trigger {p.tau_s} %)"
    d = P - Pa
    if d > 0:
        where = "above"
    elif d < 0:
        where = "below"
        d = -d
    else:
        return f"Price {_fmt_price(P)} equals anchor {_fmt_price(Pa)} (trigger {p.tau_s} %)"
    return (f"Price {_fmt_price(P)} is {_pct1(d / Pa)} % {where} anchor {_fmt_price(Pa)} "
            f"(trigger {p.tau_s} %)")


def evaluate(state: State, cfg: Config, price: Decimal, *, orders_today: int = 0,
             has_open_order: bool = False, explain: bool = True) -> Decision:
    """Evaluate a position at ``price`` (strategy.md, Flow B): at most one proposal, a reason.

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
            P = _dec(P)
        if type(S) is not Decimal:
            S = _dec(S)
        if type(C) is not Decimal:
            C = _dec(C)
        if type(R) is not Decimal:
            R = _dec(R)
        if Pa is not None and type(Pa) is not Decimal:
            Pa = _dec(Pa)
    ent = (_CACHE_F if fl else _CACHE_D).get(id(cfg))
    p = ent[1] if ent is not None and ent[0] is cfg else _params(cfg, fl)
    if not P > 0:
        raise RuleError("invalid_price", f"The price must be greater than zero, not {P}.")

    # 1. Value and weight.
    SP = S * P
    V = SP + C + R
    if V <= 0:
        return _new_decision(P, Pa, False, _money(V), None, None, None, None, "no_value",
                             f"Position value {_fmt_price(_money(V))} at price {_fmt_price(P)} "
                             "is not positive: nothing to balance" if explain else "", None)
    w = SP / V
    if fl:  # V > 0 and w >= 0 here: no negative zero to tidy, so quantize inline
        value_q = fround(V, 1e6)
        weight_q = fround(w, 1e6)
    else:
        value_q = V.quantize(MONEY_PLACES, context=_WIDE)
        weight_q = w.quantize(MONEY_PLACES, context=_WIDE)

    # 2./3. Anchor and trigger.
    if Pa is None:
        Pa = P
        anchor_set = True
        trig = None
    else:
        anchor_set = False
        if P >= Pa * p.up:
            trig = SELL
        elif P <= Pa * p.down:
            trig = BUY
        else:
            trig = None

    # 6. Side and size: the guardrails first, then the trigger.
    low = p.low
    high = p.high
    band = 0
    if w < low:
        side = BUY
        band = -1
        raw = (low * V - SP) / (P * p.bl)
        kind = "guardrail_rebalance"
        if trig is BUY:
            t = _trigger_size(p.sizing, BUY, Pa, P, V, C, S, p)
            if t >= raw:
                raw = t
                kind = "buy_trigger"
    elif w > high:
        side = SELL
        band = 1
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
            return _new_decision(P, Pa, True, value_q, weight_q, None, None, None, "anchor_set",
                                 f"Anchor set to price {_fmt_price(P)}; weight {_pct1(w)} % is "
                                 f"inside the {p.band_s} band: no trade" if explain else "",
                                 None)
        return _new_decision(P, Pa, False, value_q, weight_q, None, None, None, "no_trigger",
                             f"{_head(P, Pa, False, p)}: no trigger; weight {_pct1(w)} % is "
                             f"inside the {p.band_s} band" if explain else "", None)

    # The sentence so far: price against anchor, then the guardrail if it decides the side.
    if explain:
        text = _head(P, Pa, anchor_set, p)
        if band:
            text += (f"; weight {_pct1(w)} % is {'below' if band < 0 else 'above'} the "
                     f"{p.low_s if band < 0 else p.high_s} % guardrail")
            if trig is not None and trig is not side:
                text += f", overruling the {_VERB[trig]} trigger"
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
        return _new_decision(P, Pa, anchor_set, value_q, weight_q, None, None, None, cap_code,
                             f"{text}: no {_VERB[side]}, {_nothing_left(cap_code, p)}"
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
        return _new_decision(P, Pa, anchor_set, value_q, weight_q, None, None, None,
                             "rounded_to_zero", f"{text}: {_VERB[side]} "
                             f"{_fmt_qty(_qty_down(q))} shares rounds down to zero ({p.step_s})"
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
        notional = nq.quantize(MONEY_PLACES, context=_WIDE)
        k = (p.c * nq).quantize(MONEY_PLACES, context=_WIDE)
        V2 = V - k
        w2 = (S2 * P / V2).quantize(MONEY_PLACES, context=_WIDE) if V2 > 0 else _MONEY_ZERO
    if explain:
        verb = _VERB[side]
        text += f": {verb} {_fmt_qty(qr)} shares"
        if band and kind != "guardrail_rebalance":
            text += f" ({verb} trigger)"
        elif band:
            text += " to rebalance"
        if trimmed:
            text += f"; trimmed by {_cap_phrase(cap_code, p)}"
    prop = _new_proposal(side, qr, P, notional, k, kind, _qty_down(raw), trimmed, trimmed_by, w2,
                         text)

    # 9. Checks that block a computed proposal.
    if nq < p.min_notional:
        code = "below_min_notional"
    elif orders_today >= p.max_orders:
        code = "daily_cap_reached"
    elif has_open_order:
        code = "open_order"
    else:
        return _new_decision(P, Pa, anchor_set, value_q, weight_q, prop, None, None, kind, text,
                             trig)
    return _new_decision(P, Pa, anchor_set, value_q, weight_q, None, prop, code, code,
                         f"{text}; blocked: {_blocked_why(code, notional, p)}" if explain else "",
                         trig)


def _blocked_why(code: str, notional, p: _Params) -> str:
    if code == "below_min_notional":
        return (f"notional {_fmt_price(notional)} is below the minimum "
                f"{_fmt_price(p.min_notional)}")
    if code == "daily_cap_reached":
        return f"the daily cap of {p.max_orders} orders is reached"
    return "an order is still open"


def _round_down(q, p: _Params, fl: bool):
    """A quantity toward zero to the configured step (strategy.md, Flow B step 8)."""
    step = p.step
    if fl:
        return fround(_floor(q / step + _FLOAT_EPS) * step, 1e8)
    kind = p.step_kind
    if kind == 0:
        return q.quantize(QTY_PLACES, ROUND_DOWN)
    if kind == 1:
        return q.quantize(_ONE, ROUND_DOWN).quantize(QTY_PLACES)
    return ((q / step).quantize(_ONE, ROUND_DOWN) * step).quantize(QTY_PLACES, ROUND_DOWN)


def round_qty(cfg: Config, qty):
    """``qty`` rounded toward zero as evaluate rounds a proposal: to a multiple of ``qty_step``
    if set, else to whole shares if not ``fractional``, else to 8 dp. Decimal or float."""
    fl = type(qty) is float
    return _round_down(qty if fl else _dec(qty), _params(cfg, fl), fl)


def trigger_size(cfg: Config, side: str, *, qty, cash, receivable, anchor, price):
    """The unrounded trigger size in shares (strategy.md, Flow B step 4) for ``side`` ("BUY" or
    "SELL"), whether or not the trigger fires: the same function :func:`evaluate` uses."""
    if side not in (BUY, SELL):
        raise RuleError("invalid_side", f"side must be BUY or SELL, not {side!r}.")
    p = _params(cfg, type(price) is float)
    side = BUY if side == BUY else SELL
    value = qty * price + cash + receivable
    return _trigger_size(p.sizing, side, anchor, price, value, cash, qty, p)


def _trigger_size(sizing: int, side: str, Pa, P, V, C, S, p: _Params):
    """Trigger size in shares, >= 0 (strategy.md, Flow B step 4)."""
    if sizing == 0:  # proportional: |Pa/P - 1| * r * V/P
        return abs(Pa / P - 1) * p.r * V / P
    if sizing == 1:  # original: (Pa/P) * r * V/P
        return Pa / P * p.r * V / P
    if side is BUY:  # fixed_fraction: buy f*C/P, sell f*S
        return p.f * C / P
    return p.f * S


# --------------------------------------------------------------------------------------------
# Fills (strategy.md, Flow C) and dividends (Flow D)
# --------------------------------------------------------------------------------------------


def default_commission(cfg_or_rate, qty, price):
    """The default commission c*q*P to 6 dp; ``cfg_or_rate`` is a Config or the rate c."""
    rate = cfg_or_rate.commission_rate if isinstance(cfg_or_rate, Config) else cfg_or_rate
    if type(qty) is float or type(price) is float:
        return fround(float(rate) * (float(qty) * float(price)), 1e6)
    return _money(_dec(rate) * (qty * price))


def cash_after_buy(*, cash, qty, price, commission):
    """The cash a buy of ``qty`` at ``price`` with ``commission`` leaves, rounded as stored
    (6 dp): below zero means the buy is refused (``insufficient_cash``). Decimal or float."""
    return _money(cash - qty * price - commission)


_BPS = Decimal("0.0001")
SLIPPAGE_BPS_MAX = Decimal(10000)  # slippage in basis points: 0 <= bps < 10000


def slipped_price(price, side: str, slippage_bps) -> Decimal:
    """A fill price worsened by ``slippage_bps`` basis points (up for a buy, down for a sell),
    to 6 places half-even, computed in Decimal (a float price enters as its shortest text)."""
    if not slippage_bps:
        return _dec(price)
    f = _dec(slippage_bps) * _BPS
    return (_dec(price) * (_ONE + f if side == BUY else _ONE - f)).quantize(MONEY_PLACES)


def covered_qty(cfg: Config, side: str, qty, *, held, cash, price):
    """The largest quantity up to ``qty``, on the position's step, that the shares ``held``
    (a sell) or the ``cash`` with its commission at ``price`` (a buy) cover, judged as
    :func:`apply_fill` judges it; 0 when nothing does (strategy.md, "Next-bar fills": an order
    whose price moved is trimmed to what the cash or shares cover, rounded down as usual).
    Decimal or float, like the other functions here."""
    if side == SELL:
        return qty if qty <= held else round_qty(cfg, held)

    def over(x):
        k = default_commission(cfg, x, price)
        return cash_after_buy(cash=cash, qty=x, price=price, commission=k) < 0

    if not over(qty):
        return qty
    fl = type(qty) is float
    p = _params(cfg, fl)
    q = min(qty, round_qty(cfg, cash / (price * p.one_c)))
    for _ in range(8):
        if not q > 0 or not over(q):
            return q
        smaller = round_qty(cfg, q - p.step)
        if not smaller < q:  # floats: the step is finer than q's resolution
            smaller = round_qty(cfg, q * (1 - 1e-12))
        q = smaller
    return q if q > 0 and not over(q) else 0


def apply_fill(*, qty, cash, side: str, fill_qty, price, commission):
    """Strategy.md Flow C balance change: (new_qty, new_cash), quantized to 8 dp and 6 dp.

    buy: S += q, C -= q*Pf + k; sell: S -= q, C += q*Pf - k. Raises RuleError with code
    "insufficient_qty" for a sell of more than held and "insufficient_cash" when cash (as stored,
    6 dp) would go below zero; "invalid_side", "invalid_qty", "invalid_price",
    "invalid_commission" for inputs outside the domain. Works on Decimal or float."""
    if side not in (BUY, SELL):
        raise RuleError("invalid_side", f"side must be BUY or SELL, not {side!r}.")
    if not fill_qty > 0:
        raise RuleError("invalid_qty", f"The fill quantity must be greater than zero, not "
                        f"{fill_qty}.")
    if not price > 0:
        raise RuleError("invalid_price", f"The fill price must be greater than zero, not {price}.")
    if not commission >= 0:
        raise RuleError("invalid_commission", f"The commission must be zero or more, not "
                        f"{commission}.")
    gross = fill_qty * price
    if side == BUY:
        new_qty = qty + fill_qty
        new_cash = cash_after_buy(cash=cash, qty=fill_qty, price=price, commission=commission)
        if new_cash < 0:
            raise RuleError(
                "insufficient_cash",
                f"Buying {_fmt_qty(fill_qty)} at {_fmt_price(price)} costs "
                f"{_fmt_price(_money(gross + commission))} including commission, more than the "
                f"cash {_fmt_price(cash)}.",
            )
    else:
        if fill_qty > qty:
            raise RuleError(
                "insufficient_qty",
                f"Cannot sell {_fmt_qty(fill_qty)} shares: only {_fmt_qty(qty)} are held.",
            )
        new_qty = qty - fill_qty
        new_cash = _money(cash + gross - commission)
        if new_cash < 0:
            raise RuleError(
                "insufficient_cash",
                f"The commission {_fmt_price(commission)} exceeds the proceeds "
                f"{_fmt_price(_money(gross))} plus the cash {_fmt_price(cash)}.",
            )
    if type(new_qty) is float:
        return fround(new_qty, 1e8), new_cash
    return _dec(new_qty).quantize(QTY_PLACES, ROUND_DOWN, context=_WIDE), new_cash


def dividend_amounts(*, dps, shares, withholding_rate):
    """(gross, net), each to 6 dp: gross = dps*shares, net = gross*(1 - rate), both from the
    exact product. Raises RuleError for dps <= 0, shares < 0 or a rate outside [0, 1)."""
    if not dps > 0:
        raise RuleError("invalid_dps", f"The dividend per share must be greater than zero, not "
                        f"{dps}.")
    if not shares >= 0:
        raise RuleError("invalid_shares", f"Shares must be zero or more, not {shares}.")
    if not 0 <= withholding_rate < 1:
        raise RuleError("invalid_withholding", "The withholding rate must be at least 0 and less "
                        f"than 1, not {withholding_rate}.")
    gross = dps * shares
    return _money(gross), _money(gross * (1 - withholding_rate))


# --------------------------------------------------------------------------------------------
# Splits and the price-jump guard (strategy.md, "Splits" and "Price-jump guard")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SplitResult:
    qty: Decimal  # S·k rounded down to the step
    cash: Decimal  # C + cash in lieu
    anchor: Decimal | None  # Pa / k (6 dp), None when there was none
    cash_in_lieu: Decimal  # the fraction cut off, paid at price_before / k (6 dp)


def split_ratio_error(ratio) -> str | None:
    """Why ``ratio`` cannot be a split's ratio, or None (the one definition of its bounds)."""
    if not _is_number(ratio) or not SPLIT_RATIO_MIN <= _dec(ratio) <= SPLIT_RATIO_MAX:
        return (f"ratio must be a number from {SPLIT_RATIO_MIN} to {SPLIT_RATIO_MAX} (new "
                "shares per old share: 2 for 2-for-1, 0.1 for 1-for-10).")
    if _dec(ratio) == _ONE:
        return "ratio 1 changes nothing: a split has a ratio other than 1."
    return None


def qty_step(cfg: Config) -> Decimal:
    """The step quantities are rounded to: ``qty_step``, else 1 (whole shares), else 8 dp."""
    return _params(cfg, False).step


def split_qty(qty: Decimal, ratio: Decimal, step: Decimal) -> Decimal:
    """``qty`` × ``ratio`` rounded toward zero to a multiple of ``step`` (8 dp at most): the
    shares a position holds, and an open order's remaining quantity, after a split."""
    if not ratio > 0:
        raise RuleError("invalid_ratio", f"The split ratio must be greater than zero, not "
                        f"{ratio}.")
    exact, step = _dec(qty) * _dec(ratio), _dec(step)
    return ((exact / step).quantize(_ONE, ROUND_DOWN, context=_WIDE) * step).quantize(
        QTY_PLACES, ROUND_DOWN, context=_WIDE)


def apply_split(*, qty: Decimal, cash: Decimal, anchor: Decimal | None, ratio: Decimal,
                step: Decimal, price_before: Decimal | None) -> SplitResult:
    """A split of ``ratio`` new shares per old share: S ← S·k rounded down to ``step``, the
    fraction paid in cash at ``price_before`` / k (the last price before the effective date;
    None pays nothing, for a position with no fraction or no price), Pa ← Pa / k. The value
    S·P + C is unchanged at the split-adjusted price apart from that rounding to cents."""
    new_qty = split_qty(qty, ratio, step)
    fraction = _dec(qty) * _dec(ratio) - new_qty
    lieu = _MONEY_ZERO
    if fraction > 0 and price_before is not None:
        lieu = _money(fraction * _dec(price_before) / _dec(ratio))
    new_anchor = None if anchor is None else _money(_dec(anchor) / _dec(ratio))
    if new_anchor is not None and not new_anchor > 0:
        new_anchor = None
    return SplitResult(new_qty, _money(_dec(cash) + lieu), new_anchor, lieu)


def split_adjusted_price(price: Decimal, ratio: Decimal) -> Decimal:
    """A price observed before splits of ``ratio`` (their product) in the shares as they are
    after them: ``price`` / ``ratio`` on the 6-decimal price grid (strategy.md, "Splits")."""
    return _money(_dec(price) / _dec(ratio))


def price_jump(*, previous: Decimal, price: Decimal, max_jump: Decimal,
               ratio: Decimal = _ONE) -> Decimal | None:
    """The relative move of ``price`` from ``previous`` / ``ratio`` (the previous price adjusted
    for the splits effective since it) when it exceeds ``max_jump``, else None."""
    move = _dec(price) / (_dec(previous) / _dec(ratio)) - _ONE
    return move if abs(move) > _dec(max_jump) else None
