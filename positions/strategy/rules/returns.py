"""Returns over a span (docs/strategy.md#returns): the time-weighted return, the money-weighted
return (the XIRR of the flows) and the net flows, from a timeline of *marks*. Pure: the
standard library and numpy.

A :class:`Mark` is an instant with the value just before anything happened there (at the prices
known at that instant) and the cash that flowed in (+, a deposit, a transfer in, an opening) or
out (-) there. The first mark opens the span, the last closes it; a mark with no flow (a
session's close) only reports the value. The start value is the first mark's value after its
flow, the end value the last mark's value after its flow; the flows of the span are those of
the other marks and the last one.

- Time-weighted: the span is cut at every mark; each piece's return is (value just before the
  next mark) / (value just after the previous one) - 1, and the pieces are chain-linked. A
  mark without a flow cuts nothing that matters: the product telescopes. Exact ``Decimal``
  arithmetic (28 significant digits), not rounded here.
- Money-weighted: the annual rate r with V_start + sum F_k (1+r)^(-t_k/365) =
  V_end (1+r)^(-T/365), t_k and T in calendar days from the start. Found in floating point on
  the span's log growth z = ln(1+r)·T/365 in [-600, 600] (bracketed on a grid, then bisected
  to the double's resolution), so (1+r)^(T/365) is exact to about 1e-15 relative; reported as
  a ``Decimal`` rounded to :data:`RATE_PLACES`. Several rates can solve the equation when
  withdrawals and deposits alternate: the one nearest to zero is reported (its note names
  the others' count). Only roots rounding cannot have made count (:func:`_roots`), and
  flows whose sign changes once have one rate (Descartes): no note then. No rate: ``None``
  with a reason.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

ZERO = Decimal(0)
ONE = Decimal(1)
RATE_PLACES = Decimal("1e-10")  # returns are reported to 10 decimal places (fractions)
DAY = dt.timedelta(days=1)
YEAR_DAYS = 365
Z_LIMIT = 600.0  # |ln growth over the span| searched: e^600 fits a double with room to spare
MAX_RATE = 1e12  # an annual rate above this (10^14 %) is too large to state

# Why a figure is None (the machine codes beside the API's and the admin's sentences).
NO_SPAN = "empty_span"  # the span has no length: no rate per year
NOTHING_INVESTED = "nothing_invested"  # no value at the start and no flow: nothing to earn on
VALUE_FROM_NOTHING = "value_from_nothing"  # a piece starts at zero and ends above: no ratio
NEGATIVE_VALUE = "negative_value"  # a value below zero after a flow: no ratio
NO_RATE = "no_rate"  # no rate in the searched range solves the flows
RATE_TOO_LARGE = "rate_too_large"  # above MAX_RATE (a large move over a short span)

REASONS = {
    NO_SPAN: "The span has no length, so there is no rate per year.",
    NOTHING_INVESTED: "Nothing was invested over the span: no value at the start and no flow.",
    VALUE_FROM_NOTHING: "A period starts with a value of zero and ends above zero, so it has no "
                        "return.",
    NEGATIVE_VALUE: "A value below zero after a flow has no return.",
    NO_RATE: "No annual rate makes the flows and the end value agree.",
    RATE_TOO_LARGE: "The annual rate is too large to state (a large change over a short span).",
}


@dataclass(frozen=True, slots=True)
class Mark:
    """An instant of the timeline: the value just before any flow there, and the flow."""

    at: dt.datetime
    value: Decimal
    flow: Decimal = ZERO

    @property
    def after(self) -> Decimal:
        return self.value + self.flow


@dataclass(frozen=True, slots=True)
class Rate:
    """A return (a fraction) or ``None`` with the machine code of why (:data:`REASONS`)."""

    value: Decimal | None
    reason: str | None = None
    note: str | None = None  # e.g. "2 other rates also solve the flows"

    @property
    def sentence(self) -> str | None:
        return None if self.reason is None else REASONS[self.reason]


@dataclass(frozen=True, slots=True)
class Returns:
    start_value: Decimal
    end_value: Decimal
    net_flows: Decimal
    time_weighted: Rate
    money_weighted: Rate
    days: Decimal  # the span in calendar days


def net_flows(marks: Sequence[Mark]) -> Decimal:
    """The sum of the span's flows (those after the opening mark)."""
    return sum((m.flow for m in marks[1:]), ZERO)


def chain_factors(marks: Sequence[Mark]) -> list[Decimal] | str:
    """The growth factor 1 + r of each piece between consecutive marks (value just before the
    next / value just after the previous), or the reason there is none. A piece from zero to
    zero (an empty position) is 1: nothing was invested, nothing earned."""
    factors = []
    for prev, nxt in zip(marks, marks[1:], strict=False):
        start = prev.after
        if start < 0:
            return NEGATIVE_VALUE
        if start == 0:
            if nxt.value != 0:
                return VALUE_FROM_NOTHING
            factors.append(ONE)
            continue
        factors.append(nxt.value / start)
    return factors


def cumulative_time_weighted(marks: Sequence[Mark]) -> list[Rate]:
    """The time-weighted return from the first mark to each mark (the first: 0), chain-linked
    as :func:`time_weighted_return` does; once a piece has no return, every later one is None
    with its reason."""
    out = [Rate(ZERO)]
    growth = ONE
    failed: str | None = None
    for i in range(1, len(marks)):
        if failed is None:
            factors = chain_factors(marks[i - 1:i + 1])
            if isinstance(factors, str):
                failed = factors
            else:
                growth *= factors[0]
        out.append(Rate(None, failed) if failed else Rate(growth - ONE))
    return out


def time_weighted_return(marks: Sequence[Mark]) -> Rate:
    """The chain-linked time-weighted return over the marks (not annualised)."""
    if len(marks) < 2:
        return Rate(ZERO)
    return cumulative_time_weighted(marks)[-1]


def _elapsed(a: dt.datetime, b: dt.datetime) -> dt.timedelta:
    """The time elapsed from ``a`` to ``b``. Two aware datetimes in the same zone subtract by
    wall clock in Python (a 25-hour day across a DST change would count 24 hours), so aware
    ones are compared in UTC; naive ones are taken as they are."""
    if a.tzinfo is not None and b.tzinfo is not None:
        return b.astimezone(dt.UTC) - a.astimezone(dt.UTC)
    return b - a


def _days(a: dt.datetime, b: dt.datetime) -> float:
    """Calendar days elapsed from ``a`` to ``b``: elapsed seconds / 86400 (not wall clock)."""
    return _elapsed(a, b) / DAY


def _npv(z: float, terms: Sequence[tuple[float, float]]) -> float:
    """sum of amount·e^(-z·s) over ``terms`` (amount, s = t/T in [0, 1]); the root in z is the
    span's log growth. The investor's side: what went in (start value, flows) counts +, the
    end value -."""
    return math.fsum(a * math.exp(-z * s) for a, s in terms)


def _grid() -> list[float]:
    """Points of z from -Z_LIMIT to Z_LIMIT, dense near zero (10^-9 .. 600, 16 a decade)."""
    pos = [10 ** (k / 16) for k in range(-9 * 16, int(math.log10(Z_LIMIT) * 16) + 1)]
    pos.append(Z_LIMIT)
    return [-x for x in reversed(pos)] + [0.0] + pos


GRID = _grid()


def _bisect(lo: float, hi: float, f_lo: float, terms) -> float:
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        f_mid = _npv(mid, terms)
        if f_mid == 0:
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return (lo + hi) / 2


NOISE = 1e-12  # an NPV within this fraction of the money it sums (sum |a|·e^(-z·s)) is zero


def _roots(terms) -> list[float]:
    """Every root of the NPV in z that rounding cannot have made: the grid (:data:`GRID`,
    evaluated at once with numpy) is read as signs, a value within :data:`NOISE` of the money
    it sums counting as zero (neither sign). A change of sign between two points, with only
    such zeros between them, is one root, bisected with exact sums (:func:`_npv`); a run of
    zeros between points of one sign (or at an end of the grid) is one root where the NPV is
    smallest. So a flat stretch where every term rounds to the same sum is one root, not one
    per grid point."""
    amounts = np.array([a for a, _s in terms])
    shares = np.array([s for _a, s in terms])
    with np.errstate(over="ignore", invalid="ignore"):
        powers = np.exp(-np.outer(GRID, shares))
        grid = powers @ amounts
        scale = powers @ np.abs(amounts)
    values = [float(v) if math.isfinite(v) else _npv(z, terms) for z, v in zip(GRID, grid,
                                                                                 strict=True)]
    signs = [0 if math.isfinite(m) and abs(v) <= NOISE * m else (1 if v > 0 else -1)
             for v, m in zip(values, scale, strict=True)]
    roots = []
    last = None  # the index of the last point with a sign
    for i, sign in enumerate(signs + [None]):
        if sign == 0:
            continue
        run = range(0 if last is None else last + 1, len(GRID) if sign is None else i)
        if sign is not None and last is not None and sign != signs[last]:
            roots.append(_bisect(GRID[last], GRID[i], values[last], terms))
        elif len(run):  # zeros touched between one sign, or at an end: one root
            roots.append(GRID[min(run, key=lambda k: abs(values[k]))])
        last = i
    return roots


def sign_changes(terms) -> int:
    """The changes of sign of the amounts ordered by time (amounts at one time summed): by
    Descartes' rule of signs (which holds for real exponents) the NPV has at most that many
    roots, so with one change there is exactly one rate."""
    by_time: dict[float, float] = {}
    for a, s in terms:
        by_time[s] = by_time.get(s, 0.0) + a
    signs = [a > 0 for _s, a in sorted(by_time.items()) if a != 0]
    return sum(1 for x, y in zip(signs, signs[1:], strict=False) if x != y)


def money_weighted_return(marks: Sequence[Mark]) -> Rate:
    """The annual money-weighted return (XIRR) of the marks' span: see the module's
    docstring for the equation, the search and the precision."""
    if len(marks) < 2:
        return Rate(None, NO_SPAN)
    start, end = marks[0], marks[-1]
    span = _days(start.at, end.at)
    if span <= 0:
        return Rate(None, NO_SPAN)
    flows = [(float(m.flow), _days(start.at, m.at) / span) for m in marks[1:] if m.flow]
    if start.after == 0 and not flows:
        return Rate(None, NOTHING_INVESTED)
    terms = [(float(start.after), 0.0), *flows, (-float(end.after), 1.0)]
    roots = _roots(terms)
    if not roots:
        if end.after == 0 and all(a >= 0 for a, _s in terms[:-1]):
            return Rate(Decimal(-1).quantize(RATE_PLACES))  # all of it lost: (1 + r) = 0
        return Rate(None, NO_RATE)
    z = min(roots, key=abs)
    others = len(roots) - 1 if sign_changes(terms) > 1 else 0
    note = (f"{others} other rate(s) also solve the flows; the one nearest to zero is "
            "reported." if others else None)
    exponent = z * YEAR_DAYS / span
    if exponent > math.log1p(MAX_RATE):
        return Rate(None, RATE_TOO_LARGE)
    rate = math.expm1(exponent)
    return Rate(Decimal(repr(rate)).quantize(RATE_PLACES), None, note)


def returns_of(marks: Sequence[Mark]) -> Returns:
    """Every figure of the span the marks cover (at least one mark)."""
    if not marks:
        raise ValueError("returns_of needs at least one mark")
    return Returns(
        start_value=marks[0].after,
        end_value=marks[-1].after,
        net_flows=net_flows(marks),
        time_weighted=time_weighted_return(marks),
        money_weighted=money_weighted_return(marks),
        days=Decimal(repr(_days(marks[0].at, marks[-1].at))),
    )
