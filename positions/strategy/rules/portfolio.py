"""A portfolio's rebalance (docs/strategy.md#portfolios): when it is due and the cash it moves.

A portfolio holds positions with target weights w_i (sum at most 1) and unallocated cash F. Its
value is T = F + sum V_i, V_i = S_i*P_i + R_i + C_i. A rebalance moves cash only, never shares:
the desired cash of position i is c_i* = max(0, w_i*T - S_i*P_i - R_i); the desired unallocated
cash is f* = min(C, (1 - sum w)*T), C = F + sum C_i being all the cash; each position gets
c_i* * min(1, (C - f*) / sum c*) and F the rest.

Numbers: ``Decimal`` only, exact. A position's new cash is rounded DOWN to the money places
(6 dp) and F takes exactly the rest, so the cash is conserved to the last digit and no cash is
ever negative (F >= f* >= 0 because the positions never get more than C - f*). The live loop,
``manage.py rebalance`` and the portfolio backtest all call :func:`rebalance`. Pure: the
standard library only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from positions.strategy.rules.config import BOUNDS, REBALANCES, RuleError, is_number
from positions.strategy.rules.numbers import MONEY_PLACES, WIDE

ZERO = Decimal(0)
ONE = Decimal(1)
# The months a period spans: a period starts with the first session whose period key differs
# from the previous session's.
PERIOD_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


@dataclass(frozen=True, slots=True)
class Holding:
    """One position as the rebalance sees it: its target weight w_i, shares S_i at price P_i,
    receivable R_i (dividends declared, not yet paid) and cash C_i."""

    weight: Decimal
    qty: Decimal
    price: Decimal
    cash: Decimal
    receivable: Decimal = ZERO

    @property
    def value(self) -> Decimal:
        """V_i = S_i*P_i + R_i + C_i (unrounded)."""
        return WIDE.add(WIDE.add(WIDE.multiply(self.qty, self.price), self.receivable),
                        self.cash)


@dataclass(frozen=True, slots=True)
class Rebalance:
    """What a rebalance does: ``moves[i]`` is added to position i's cash (negative: cash goes
    back to the portfolio); ``cash[i]`` is position i's cash after it and ``free_cash`` the
    portfolio's unallocated cash after it. ``free_cash + sum(cash)`` equals the cash before,
    exactly."""

    free_cash: Decimal
    cash: tuple[Decimal, ...]
    moves: tuple[Decimal, ...]

    @property
    def turnover(self) -> Decimal:
        """The cash that changed hands: the sum of the moves' absolute values."""
        return sum((abs(m) for m in self.moves), ZERO)


def weight_error(weight, name: str = "target_weight") -> str | None:
    """Why ``weight`` cannot be one holding's target weight (target_weight's bounds), said of
    ``name`` (a backtest's ``portfolio.holdings[i].weight``, set: no "when set"), or None."""
    b = BOUNDS["target_weight"]
    if is_number(weight) and b.holds(weight):
        return None
    return b.sentence(name) if name == "target_weight" else dataclasses.replace(
        b, nullable=False).sentence(name)


def weights_error(weights: Iterable) -> str | None:
    """Why these target weights cannot be a portfolio's (each within target_weight's bounds,
    their sum at most 1), or None."""
    total = ZERO
    for w in weights:
        why = weight_error(w)
        if why:
            return why
        total += Decimal(repr(w)) if isinstance(w, float) else Decimal(w)
    if total > ONE:
        return f"The target weights sum to {total}; they must sum to at most 1."
    return None


def _check(free_cash: Decimal, holdings: Sequence[Holding]) -> None:
    why = weights_error([h.weight for h in holdings])
    if why:
        raise RuleError("invalid_weights", why)
    for name, v in [("free_cash", free_cash)] + [
            (f"{f} of holding {i}", getattr(h, f)) for i, h in enumerate(holdings)
            for f in ("qty", "price", "cash", "receivable")]:
        if not (isinstance(v, Decimal) and v.is_finite() and v >= 0):
            raise RuleError("invalid_portfolio", f"{name} must be a Decimal of at least 0.")


def rebalance(free_cash: Decimal, holdings: Sequence[Holding]) -> Rebalance:
    """The cash moves of a rebalance (the module's rule). Raises ``RuleError`` when a weight is
    out of bounds, the weights sum to more than 1, or an amount is negative or not a Decimal."""
    _check(free_cash, holdings)
    add, sub, mul = WIDE.add, WIDE.subtract, WIDE.multiply
    C = free_cash
    T = free_cash
    for h in holdings:
        C = add(C, h.cash)
        T = add(T, h.value)
    wsum = sum((h.weight for h in holdings), ZERO)
    f_star = min(C, mul(sub(ONE, wsum), T))
    want = [max(ZERO, sub(sub(mul(h.weight, T), mul(h.qty, h.price)), h.receivable))
            for h in holdings]
    total = sum(want, ZERO)
    room = sub(C, f_star)  # >= 0: f* <= C
    cash = []
    for c in want:
        if total > room:  # scaled down by (C - f*) / sum c*
            c = WIDE.divide(mul(c, room), total)
        cash.append(c.quantize(MONEY_PLACES, ROUND_DOWN, context=WIDE))
    free = C
    for c in cash:
        free = sub(free, c)
    moves = tuple(sub(c, h.cash) for c, h in zip(cash, holdings, strict=True))
    return Rebalance(free, tuple(cash), moves)


def actual_weights(free_cash: Decimal, holdings: Sequence[Holding]) -> list[Decimal]:
    """Each position's share V_i / T of the portfolio's value (all 0 when T is 0)."""
    T = free_cash
    for h in holdings:
        T = WIDE.add(T, h.value)
    if not T:
        return [ZERO for _ in holdings]
    return [WIDE.divide(h.value, T) for h in holdings]


def period_key(rule: str, date: dt.date) -> tuple[int, int]:
    """The period ``date`` falls in under a periodic ``rule``: (year, month index // months)."""
    months = PERIOD_MONTHS[rule]
    return date.year, (date.month - 1) // months


def rebalance_due(rule: str, band: Decimal | None, last_date: dt.date | None, date: dt.date,
                  weights: Iterable[tuple[Decimal, Decimal]] = ()) -> bool:
    """Whether a portfolio with rebalance ``rule`` rebalances at a session of ``date``.

    Periodic rules (monthly, quarterly, yearly): ``date`` is the first session of its period,
    i.e. ``last_date`` (the previous session the portfolio was evaluated on; None: none, so not
    due) falls in an earlier period. ``band``: some (actual, target) pair of ``weights`` drifts
    by more than ``band`` (absolute). ``never``: never. Raises ``RuleError`` for an unknown
    rule or a band rule without a valid band."""
    errors = rule_errors(rule, band)
    if errors:
        raise RuleError("invalid_rebalance", " ".join(errors.values()))
    if rule == "never":
        return False
    if rule == "band":
        return any(abs(actual - target) > band for actual, target in weights)
    if last_date is None:
        return False
    return period_key(rule, date) > period_key(rule, last_date)


def rule_errors(rule: object, band: object) -> dict[str, str]:
    """Field -> sentence for an invalid rebalance rule: ``rule`` one of :data:`REBALANCES`;
    ``band`` within its bounds, required with "band" and refused without it."""
    errors: dict[str, str] = {}
    if not isinstance(rule, str) or rule not in REBALANCES:
        errors["rebalance"] = BOUNDS["rebalance"].sentence("rebalance")
    b = BOUNDS["rebalance_band"]
    if band is not None and (not is_number(band) or not b.holds(band)):
        errors["rebalance_band"] = b.sentence("rebalance_band")
    elif rule == "band" and band is None:
        errors["rebalance_band"] = "rebalance_band is required when rebalance is band."
    elif rule != "band" and band is not None and "rebalance" not in errors:
        errors["rebalance_band"] = "rebalance_band applies only when rebalance is band."
    return errors
