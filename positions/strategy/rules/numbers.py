"""Numbers of the rules (docs/strategy.md#state-and-configuration): quantities keep 8 decimal
places and a computed quantity is rounded toward zero; money and prices keep 6
(``ROUND_HALF_EVEN``). Intermediate arithmetic is unrounded (default decimal context, 28
significant digits); only the reported values are quantized. Every ratio is a fraction.

Floats: the rules are type generic. When a price is a ``float`` the rounding becomes
``floor(x / step + 1e-9) * step`` for quantities and ``round(x, 6)`` for money (:func:`fround`,
bit for bit). Pure: the standard library only."""

from __future__ import annotations

import math
from dataclasses import fields
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

QTY_PLACES = Decimal("0.00000001")  # quantities: 8 dp, computed qty rounded toward zero
MONEY_PLACES = Decimal("0.000001")  # money and prices: 6 dp (ROUND_HALF_EVEN)

ONE = Decimal(1)
MONEY_ZERO = Decimal("0.000000")
# Rounding a result to its places must never fail, however large it is: the default context's
# 28 digits would raise InvalidOperation on a value the caller is about to refuse as too large
# for its column (a balance, a position value shown with its weight).
WIDE = Context(prec=200, rounding=ROUND_HALF_EVEN)
FLOAT_EPS = 1e-9  # float rounding toward zero: floor(x / step + eps) * step


def fast_constructor(cls):
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


def dec(x: Any) -> Decimal:
    """Exact-enough Decimal of a Decimal, int or float (floats via their shortest repr), or a
    Fraction (a split's ratio: its quotient to 200 digits)."""
    if type(x) is Decimal:
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    if isinstance(x, Fraction):
        if x.denominator == 1:  # a whole ratio (1: no split), exactly and at once
            return Decimal(x.numerator)
        return WIDE.divide(Decimal(x.numerator), Decimal(x.denominator))
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
    positions/strategy/tests/test_rules_fround.py compares both on ties, their neighbours and random
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


def money(x: Any) -> Any:
    """Money/price/weight rounding: 6 dp half-even (Decimal) or round(x, 6) (float)."""
    if type(x) is float:
        return fround(x, 1e6)
    x = x.quantize(MONEY_PLACES, context=WIDE)
    return MONEY_ZERO if not x and x.is_signed() else x


def qty_down(x: Any) -> Any:
    """A quantity to 8 dp toward zero (huge values that cannot be quantized are kept)."""
    if type(x) is float:
        return fround(_floor(x / 1e-8 + FLOAT_EPS) * 1e-8, 1e8) if x >= 0 else x
    try:
        return x.quantize(QTY_PLACES, ROUND_DOWN)
    except InvalidOperation:
        return x
