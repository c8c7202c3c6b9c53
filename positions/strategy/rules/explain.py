"""The sentences of the rules (docs/strategy.md#evaluation, step 10): every decision comes with
one a person can read, e.g. "Price 101.20 is 3.4 % below anchor 104.78 (trigger 3 %): buy 12.5
shares; trimmed by the 75 % guardrail". Percent appears only here; every number elsewhere is a
fraction. ``p`` below is the cached per-configuration constants of :mod:`.evaluate` (its
``*_s`` strings are made once per configuration). Pure: the standard library only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from positions.strategy.rules.config import BUY, SELL

_HUNDRED = Decimal(100)
_TENTH = Decimal("0.1")
VERB = {BUY: "buy", SELL: "sell"}


def pct_cfg(x: Decimal) -> str:
    """A configuration fraction as a percent string without trailing zeros: 0.03 -> '3'."""
    return format((x * _HUNDRED).normalize(), "f")


def fmt_price(x: Any) -> str:
    """A price or money amount for a sentence: at least 2 decimals, no trailing zeros beyond."""
    s = str(x)
    i = s.find(".")
    if i < 0:
        if "E" in s or "e" in s:
            return fmt_price(format(x, ".6f"))
        return s + ".00"
    if "E" in s or "e" in s:
        return fmt_price(format(x, ".6f"))
    s = s.rstrip("0")
    d = len(s) - i
    return s if d > 2 else s + "00"[: 3 - d]


def pct1(x: Any) -> str:
    """A fraction as a percent with one decimal (for sentences): 0.0342 -> '3.4'."""
    if type(x) is float:
        return f"{x * 100:.1f}"
    return str((x * _HUNDRED).quantize(_TENTH))


def fmt_qty(x: Any) -> str:
    """A quantity for a sentence, without trailing zeros: 12.50000000 -> '12.5'."""
    s = str(x)
    if "e" in s or "E" in s:
        s = format(x, ".8f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def cap_phrase(code: str, p) -> str:
    """The cap that trimmed a proposal, as a sentence names it."""
    if code == "guardrail_high":
        return f"the {p.high_s} % guardrail"
    if code == "guardrail_low":
        return f"the {p.low_s} % guardrail"
    if code == "cash":
        return "available cash"
    return "holdings"


def nothing_left(code: str, p) -> str:
    """Why a cap at or below zero leaves no proposal."""
    if code == "guardrail_high":
        return f"the weight is already at the {p.high_s} % guardrail"
    if code == "guardrail_low":
        return f"the weight is already at the {p.low_s} % guardrail"
    if code == "cash":
        return "there is no spendable cash"
    return "there are no shares to sell"


def head(P, Pa, anchor_set: bool, p) -> str:
    """The first clause of every evaluation sentence: the price against the anchor."""
    if anchor_set:
        return f"Anchor set to price {fmt_price(P)}"
    if Pa <= 0:
        return f"Price {fmt_price(P)} against anchor {fmt_price(Pa)} (trigger {p.tau_s} %)"
    d = P - Pa
    if d > 0:
        where = "above"
    elif d < 0:
        where = "below"
        d = -d
    else:
        return f"Price {fmt_price(P)} equals anchor {fmt_price(Pa)} (trigger {p.tau_s} %)"
    return (f"Price {fmt_price(P)} is {pct1(d / Pa)} % {where} anchor {fmt_price(Pa)} "
            f"(trigger {p.tau_s} %)")


def blocked_why(code: str, notional, p) -> str:
    """Why a check blocked a computed proposal (docs/strategy.md#evaluation, step 9)."""
    if code == "below_min_notional":
        return (f"notional {fmt_price(notional)} is below the minimum "
                f"{fmt_price(p.min_notional)}")
    if code == "daily_cap_reached":
        return f"the daily cap of {p.max_orders} orders is reached"
    return "an order is still open"
