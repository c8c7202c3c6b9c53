"""The per-position strategy configuration and its bounds
(docs/strategy.md#state-and-configuration): :data:`BOUNDS` is the one declarative definition of
every field's bounds. :func:`config_errors` checks a ``Config`` against it; the API's serializer
fields and the database's check constraints are generated from it (``field_kwargs`` and
``constraint_lookups``), so a bound is changed here and nowhere else. Pure: the standard library
only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# The one definition of these enumerations: the models' choices (positions.models.Sizing,
# orders.models.Side) are built from them.
SIZINGS = ("proportional", "original", "fixed_fraction")
BUY = "BUY"
SELL = "SELL"
SIDES = (BUY, SELL)
# A portfolio's rebalance rule (docs/strategy.md#portfolios; rules.portfolio applies it).
REBALANCES = ("never", "monthly", "quarterly", "yearly", "band")

MAX_PRICE_JUMP_LIMIT = Decimal(10)
MAX_ORDERS_PER_DAY_LIMIT = 100000


@dataclass(frozen=True, slots=True)
class Config:
    """Per-position strategy configuration (docs/strategy.md#state-and-configuration)."""

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
    max_price_jump: Decimal = Decimal("0.25")  # docs/strategy.md#price-jump-guard


class RuleError(Exception):
    """A refusal by the rules, with a stable machine ``code`` and a readable ``message``."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(message or code)
        self.code = code
        self.message = message or code


# --------------------------------------------------------------------------------------------
# The bounds table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """The valid values of one configuration field.

    ``kind``: "decimal" (a number: Decimal, int or float), "int" (a whole number), "choice" (one
    of ``choices``) or "bool". ``low``/``high``: the bounds (None: unbounded), each inclusive or
    not. ``digits``/``decimals``: the stored column's size (max_digits, decimal_places);
    ``places_checked``: the rules themselves refuse more decimals than ``decimals`` (quantities
    are stored with 8). ``nullable``: None means "not set". ``below``: the field must be less
    than that other field. ``constraint``: the name of the database check constraint (fields
    sharing a name are checked by one constraint). ``model``: whose field it is ("position":
    the strategy's configuration; "portfolio": a portfolio's rebalance rule; "holding": a
    position's place in a portfolio), so each model's constraints are its own."""

    kind: str
    low: Any = None
    low_inclusive: bool = True
    high: Any = None
    high_inclusive: bool = True
    digits: int | None = None
    decimals: int | None = None
    choices: tuple = ()
    nullable: bool = False
    places_checked: bool = False
    below: str | None = None
    constraint: str | None = None
    model: str = "position"

    def sentence(self, name: str) -> str:
        """What the field must be, as the error sentence says it."""
        if self.kind == "choice":
            return f"{name} must be one of: " + ", ".join(self.choices) + "."
        if self.kind == "bool":
            return f"{name} must be true or false."
        lo, hi = self.low, self.high
        if self.kind == "int":
            rng = (f"from {lo} to {hi}" if hi is not None else f"{lo} or more")
            return f"{name} must be a whole number, {rng}."
        if lo is not None and hi is not None:
            if self.low_inclusive and self.high_inclusive:
                rng = f"between {lo} and {hi}"
            else:
                rng = (f"{'at least' if self.low_inclusive else 'greater than'} {lo} and "
                       f"{'at most' if self.high_inclusive else 'less than'} {hi}")
        elif lo is not None:
            rng = f"{lo} or more" if self.low_inclusive else f"greater than {lo}"
        else:
            rng = f"at most {hi}" if self.high_inclusive else f"less than {hi}"
        return f"{name} must be {rng}{' when set' if self.nullable else ''}."

    def holds(self, v: Any) -> bool:
        """Whether the (non-None) number ``v`` is within the bounds."""
        lo, hi = self.low, self.high
        if lo is not None and not (v >= lo if self.low_inclusive else v > lo):
            return False
        return hi is None or (v <= hi if self.high_inclusive else v < hi)


_RATIO = {"digits": 12, "decimals": 8}

BOUNDS: dict[str, Bound] = {
    "trigger_pct": Bound("decimal", 0, False, 1, False, **_RATIO,
                         constraint="pos_trigger_range"),
    "rebalance_ratio": Bound("decimal", 0, False, digits=16, decimals=8,
                             constraint="pos_ratio_pos"),
    "sizing": Bound("choice", choices=SIZINGS, constraint="pos_sizing_valid"),
    "fixed_fraction": Bound("decimal", 0, False, 1, True, **_RATIO,
                            constraint="pos_fraction_range"),
    "guard_low": Bound("decimal", 0, True, 1, True, **_RATIO, below="guard_high",
                       constraint="pos_guard_range"),
    "guard_high": Bound("decimal", 0, True, 1, True, **_RATIO, constraint="pos_guard_range"),
    "min_notional": Bound("decimal", 0, True, digits=22, decimals=6,
                          constraint="pos_min_notional_nonneg"),
    "commission_rate": Bound("decimal", 0, True, Decimal("0.05"), False, **_RATIO,
                             constraint="pos_commission_range"),
    "max_orders_per_day": Bound("int", 1, True, MAX_ORDERS_PER_DAY_LIMIT, True,
                                constraint="pos_cap_pos"),
    "fractional": Bound("bool"),
    "qty_step": Bound("decimal", 0, False, digits=24, decimals=8, nullable=True,
                      places_checked=True, constraint="pos_qty_step_pos"),
    "withholding_tax_rate": Bound("decimal", 0, True, 1, False, **_RATIO,
                                  constraint="pos_withholding_range"),
    "max_price_jump": Bound("decimal", 0, False, MAX_PRICE_JUMP_LIMIT, True, **_RATIO,
                            constraint="pos_max_price_jump_range"),
    # A portfolio's rule (docs/strategy.md#portfolios): the period, or "band" with the absolute
    # weight drift that triggers a rebalance; each position's target weight (sum at most 1,
    # rules.portfolio.weights_error).
    "rebalance": Bound("choice", choices=REBALANCES, model="portfolio",
                       constraint="pfl_rebalance_valid"),
    "rebalance_band": Bound("decimal", 0, False, 1, False, **_RATIO, nullable=True,
                            model="portfolio", constraint="pfl_band_range"),
    "target_weight": Bound("decimal", 0, True, 1, True, **_RATIO, nullable=True,
                           model="holding", constraint="pos_target_weight_range"),
}
CONFIG_FIELDS = tuple(f for f in Config.__slots__)


def field_kwargs(name: str) -> dict:
    """The bounds of field ``name`` as the API's field classes take them: ``max_digits``,
    ``decimal_places``, ``min_value``/``gt``, ``max_value``/``lt``, ``allow_null``,
    ``choices``."""
    b = BOUNDS[name]
    kw: dict[str, Any] = {}
    if b.digits is not None:
        kw["max_digits"], kw["decimal_places"] = b.digits, b.decimals
    if b.low is not None:
        kw["min_value" if b.low_inclusive else "gt"] = _value(b, b.low)
    if b.high is not None:
        kw["max_value" if b.high_inclusive else "lt"] = _value(b, b.high)
    if b.nullable:
        kw["allow_null"] = True
    if b.choices:
        kw["choices"] = b.choices
    return kw


def _value(b: Bound, v):
    return int(v) if b.kind == "int" else Decimal(v)


def constraint_lookups(constraint: str) -> list[tuple[str, str, Any]]:
    """The check constraint ``constraint`` as (field, lookup, value) terms that must all hold
    (lookup "gte", "gt", "lte", "lt", "in" or "lt_field": less than the field named by value);
    a nullable field's terms hold when it is null (``nullable_fields``)."""
    terms: list[tuple[str, str, Any]] = []
    for name, b in BOUNDS.items():
        if b.constraint != constraint:
            continue
        if b.choices:
            terms.append((name, "in", list(b.choices)))
        if b.low is not None:
            terms.append((name, "gte" if b.low_inclusive else "gt", _value(b, b.low)))
        if b.high is not None:
            terms.append((name, "lte" if b.high_inclusive else "lt", _value(b, b.high)))
        if b.below:
            terms.append((name, "lt_field", b.below))
    return terms


def constraint_names(model: str = "position") -> list[str]:
    """Every check constraint of ``model``'s fields in the table, in field order."""
    return list(dict.fromkeys(b.constraint for b in BOUNDS.values()
                              if b.constraint and b.model == model))


# --------------------------------------------------------------------------------------------
# Configuration validity
# --------------------------------------------------------------------------------------------


def is_number(v: Any) -> bool:
    """A finite Decimal, int or float (bool excluded)."""
    if isinstance(v, bool) or not isinstance(v, (Decimal, int, float)):
        return False
    if isinstance(v, Decimal):
        return v.is_finite()
    if isinstance(v, float):
        return math.isfinite(v)
    return True


def _places(v: Any) -> int:
    d = v if type(v) is Decimal else Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    return -d.normalize().as_tuple().exponent


def config_errors(cfg: Config) -> dict[str, str]:
    """Field name -> human sentence for every invalid field; empty dict when valid.

    The bounds of :data:`BOUNDS`, plus ``guard_low < guard_high`` (reported on both fields)."""
    errors: dict[str, str] = {}
    ok: dict[str, Any] = {}
    for name in CONFIG_FIELDS:
        b = BOUNDS[name]
        v = getattr(cfg, name)
        if v is None and b.nullable:
            continue
        if b.kind == "choice":
            if not isinstance(v, str) or v not in b.choices:
                errors[name] = b.sentence(name)
            continue
        if b.kind == "bool":
            if not isinstance(v, bool):
                errors[name] = b.sentence(name)
            continue
        if b.kind == "int":
            if isinstance(v, bool) or not isinstance(v, int) or not b.holds(v):
                errors[name] = b.sentence(name)
            continue
        if not is_number(v):
            errors[name] = f"{name} must be a number."
        elif not b.holds(v):
            errors[name] = b.sentence(name)
        elif b.places_checked and _places(v) > b.decimals:
            errors[name] = f"{name} must have at most {b.decimals} decimal places."
        else:
            ok[name] = v
            for other, ob in BOUNDS.items():  # checked once both fields are
                if ob.below == name and other in ok and not ok[other] < v:
                    low = ok[other]
                    errors[other] = f"{other} ({low}) must be less than {name} ({v})."
                    errors[name] = f"{name} ({v}) must be greater than {other} ({low})."
    return errors
