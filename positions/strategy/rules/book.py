"""Book arithmetic (docs/strategy.md#fills, #dividends, #splits): how a fill,
a dividend or a split changes a position's shares, cash, receivable and anchor, and the fill's
price and commission. The live books (positions) and the backtest's book both call these.
Decimal or float, like the rest of the rules. Pure: the standard library only."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

from positions.strategy.rules.config import BUY, SELL, Config, RuleError, is_number
from positions.strategy.rules.evaluate import params, round_qty
from positions.strategy.rules.explain import fmt_price, fmt_qty
from positions.strategy.rules.numbers import (
    MONEY_PLACES,
    MONEY_ZERO,
    ONE,
    QTY_PLACES,
    WIDE,
    dec,
    fround,
    money,
)

# A split's ratio k = new/old (new shares per old share): within these bounds and not 1, new
# and old whole numbers up to SPLIT_RATE_MAX in lowest terms (docs/strategy.md#splits).
SPLIT_RATIO_MIN = Decimal("0.0001")
SPLIT_RATIO_MAX = Decimal(1000)
SPLIT_RATE_MAX = 10000


# --------------------------------------------------------------------------------------------
# Fills (docs/strategy.md#fills) and dividends (docs/strategy.md#dividends)
# --------------------------------------------------------------------------------------------


def default_commission(cfg_or_rate, qty, price):
    """The default commission c*q*P to 6 dp; ``cfg_or_rate`` is a Config or the rate c."""
    rate = cfg_or_rate.commission_rate if isinstance(cfg_or_rate, Config) else cfg_or_rate
    if type(qty) is float or type(price) is float:
        return fround(float(rate) * (float(qty) * float(price)), 1e6)
    return money(dec(rate) * (qty * price))


def apply_cash_movement(*, cash, amount):
    """The cash an account holds after a movement of ``amount`` (docs/strategy.md#cash-movements:
    positive in, negative out), as stored (6 dp). Raises RuleError ``invalid_amount`` for zero,
    a non-finite number or more than 6 decimal places (a movement is never rounded), and
    ``insufficient_cash`` when the account would go below zero. Decimal or float."""
    if not is_number(amount) or not amount or (type(amount) is Decimal
                                                 and money(amount) != amount):
        raise RuleError("invalid_amount", f"A cash movement must be a non-zero amount with at "
                        f"most 6 decimal places, not {amount}.")
    new_cash = money(cash + amount)
    if new_cash < 0:
        raise RuleError("insufficient_cash", f"Taking {fmt_price(-amount)} out of "
                        f"{fmt_price(cash)} would leave {fmt_price(new_cash)}: less than zero.")
    return new_cash


def cash_after_buy(*, cash, qty, price, commission):
    """The cash a buy of ``qty`` at ``price`` with ``commission`` leaves, rounded as stored
    (6 dp): below zero means the buy is refused (``insufficient_cash``). Decimal or float."""
    return money(cash - qty * price - commission)


_BPS = Decimal("0.0001")
SLIPPAGE_BPS_MAX = Decimal(10000)  # slippage in basis points: 0 <= bps < 10000


def slipped_price(price, side: str, slippage_bps) -> Decimal:
    """A fill price worsened by ``slippage_bps`` basis points (up for a buy, down for a sell),
    to 6 places half-even, computed in Decimal (a float price enters as its shortest text)."""
    if not slippage_bps:
        return dec(price)
    f = dec(slippage_bps) * _BPS
    return (dec(price) * (ONE + f if side == BUY else ONE - f)).quantize(MONEY_PLACES)


def covered_qty(cfg: Config, side: str, qty, *, held, cash, price):
    """The largest quantity up to ``qty``, on the position's step, that the shares ``held``
    (a sell) or the ``cash`` with its commission at ``price`` (a buy) cover, judged as
    :func:`apply_fill` judges it; 0 when nothing does (docs/strategy.md#next-bar-fills: an order
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
    p = params(cfg, fl)
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
    """The balance change of a fill (docs/strategy.md#fills): (new_qty, new_cash), quantized to
    8 dp and 6 dp.

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
                f"Buying {fmt_qty(fill_qty)} at {fmt_price(price)} costs "
                f"{fmt_price(money(gross + commission))} including commission, more than the "
                f"cash {fmt_price(cash)}.",
            )
    else:
        if fill_qty > qty:
            raise RuleError(
                "insufficient_qty",
                f"Cannot sell {fmt_qty(fill_qty)} shares: only {fmt_qty(qty)} are held.",
            )
        new_qty = qty - fill_qty
        new_cash = money(cash + gross - commission)
        if new_cash < 0:
            raise RuleError(
                "insufficient_cash",
                f"The commission {fmt_price(commission)} exceeds the proceeds "
                f"{fmt_price(money(gross))} plus the cash {fmt_price(cash)}.",
            )
    if type(new_qty) is float:
        return fround(new_qty, 1e8), new_cash
    return dec(new_qty).quantize(QTY_PLACES, ROUND_DOWN, context=WIDE), new_cash


def avg_fill_price(*, avg, filled, price, qty) -> Decimal:
    """An order's average fill price after a fill of ``qty`` at ``price``, when ``filled``
    shares had filled at ``avg`` (None before the first): the value-weighted mean to 6 dp,
    half-even. The fill service and the ledger replay both call this."""
    previous_value = (avg or Decimal(0)) * filled
    return ((previous_value + price * qty) / (filled + qty)).quantize(MONEY_PLACES)


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
    return money(gross), money(gross * (1 - withholding_rate))



# --------------------------------------------------------------------------------------------
# Splits (docs/strategy.md#splits)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SplitResult:
    qty: Decimal  # S·k rounded down to the step
    cash: Decimal  # C + cash in lieu
    anchor: Decimal | None  # Pa / k (6 dp), None when there was none
    cash_in_lieu: Decimal  # the fraction cut off, paid at price_before / k (6 dp)


def _fraction(x) -> Fraction:
    """The exact value of a Fraction, int, Decimal or float (a float via its shortest text)."""
    if isinstance(x, (Fraction, int)):
        return Fraction(x)
    return Fraction(dec(x))


def _money_of(x: Fraction) -> Decimal:
    """An exact value on the 6-decimal money grid, half-even (one rounding, from the exact)."""
    return money(Decimal(round(x * 10**6)).scaleb(-6))


# A rate of a split's new:old text: ASCII digits, at most as many as SPLIT_RATE_MAX has and
# leading zeros.
_RATE_TEXT = re.compile(r"[0-9]{1,9}")
# The most digits, and the largest power of ten either way, a number stating a ratio may have:
# checked before it is made exact (Fraction(Decimal("1e99999999")) is a 10**99999999 integer,
# minutes of CPU).
_RATIO_DIGITS = 30
_RATIO_EXPONENT = 30


def _shown(value) -> str:
    """A value as a refusal quotes it: cut to 40 characters."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _ratio_number(number, value, example: str) -> Fraction:
    """The exact value of a number given as a ratio, refused (RuleError) before any arithmetic
    when its digits or its magnitude could not be a ratio's."""
    if isinstance(number, int):
        if number.bit_length() > 64:
            raise RuleError("invalid_ratio", f"ratio must be from {SPLIT_RATIO_MIN} to "
                            f"{SPLIT_RATIO_MAX} new shares per old share{example}.")
        return Fraction(number)
    if not number.is_finite():
        raise RuleError("invalid_ratio", f"ratio {_shown(value)} is not a split ratio{example}.")
    if number and not -_RATIO_EXPONENT <= number.adjusted() <= _RATIO_EXPONENT:
        raise RuleError("invalid_ratio", f"ratio must be from {SPLIT_RATIO_MIN} to "
                        f"{SPLIT_RATIO_MAX} new shares per old share{example}.")
    if len(number.as_tuple().digits) > _RATIO_DIGITS:
        raise RuleError("invalid_ratio", f"ratio has more than {_RATIO_DIGITS} digits: state "
                        f"the split exactly as new:old{example}.")
    return Fraction(number)


def split_ratio(value) -> Fraction:
    """A split's ratio k = new/old, exactly (docs/strategy.md#splits), from ``"new:old"``
    (whole numbers: ``"1:3"``), a Fraction, or a number that states it exactly (2, 0.5, 1.5,
    0.1; a float via its shortest text). new and old, in lowest terms, are whole numbers from 1
    to :data:`SPLIT_RATE_MAX`, k is within [SPLIT_RATIO_MIN, SPLIT_RATIO_MAX] and not 1.
    Raises RuleError ``invalid_ratio`` with a sentence saying why."""
    example = ' (new:old shares: "2:1" for 2-for-1, "1:3" for 1-for-3)'
    k = None
    if isinstance(value, str) and ":" in value:
        new, _, old = value.strip().partition(":")
        # ASCII digits, as many as a rate may have, before any int() (a 5,000-digit rate
        # would be a ValueError, a longer one seconds of CPU)
        if _RATE_TEXT.fullmatch(new.strip()) and _RATE_TEXT.fullmatch(old.strip()) \
                and int(old) > 0:
            k = Fraction(int(new), int(old))
    elif isinstance(value, Fraction):
        k = value
    elif not isinstance(value, bool) and is_number(value):
        k = _ratio_number(value if isinstance(value, int) else dec(value), value, example)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except ArithmeticError:
            number = None
        if number is not None and number.is_finite():
            k = _ratio_number(number, value, example)
    if k is None:
        raise RuleError("invalid_ratio", f"ratio {_shown(value)} is not a split ratio{example}.")
    if k.numerator > SPLIT_RATE_MAX or k.denominator > SPLIT_RATE_MAX:
        raise RuleError("invalid_ratio", f"ratio {_shown(value)} is not whole new and old "
                        f"shares up to "
                        f"{SPLIT_RATE_MAX}: state the split exactly as new:old{example}.")
    if not SPLIT_RATIO_MIN <= k <= SPLIT_RATIO_MAX:
        raise RuleError("invalid_ratio", f"ratio must be from {SPLIT_RATIO_MIN} to "
                        f"{SPLIT_RATIO_MAX} new shares per old share{example}.")
    if k == 1:
        raise RuleError("invalid_ratio", "ratio 1 changes nothing: a split has a ratio other "
                        "than 1.")
    return k


def split_ratio_error(value) -> str | None:
    """Why ``value`` cannot be a split's ratio (:func:`split_ratio`), or None."""
    try:
        split_ratio(value)
    except RuleError as exc:
        return exc.message
    return None


def split_ratio_text(k) -> str:
    """A ratio as its exact ``"new:old"`` text: ``"1:3"``, ``"2:1"``."""
    k = _fraction(k)
    return f"{k.numerator}:{k.denominator}"


def split_ratio_decimal(k) -> Decimal:
    """A ratio as a decimal number (exact when it is one, else to 8 decimals, half-even): the
    readable ``ratio`` beside the exact text."""
    k = _fraction(k)
    exact = Decimal(k.numerator) / Decimal(k.denominator)
    if Fraction(exact) == k:
        return exact.normalize() if exact == exact.to_integral() else exact
    return Decimal(round(k * 10**8)).scaleb(-8)


def split_qty(qty, ratio, step):
    """``qty`` × ``ratio`` rounded toward zero to a multiple of ``step`` (8 dp at most), from
    the exact product (``ratio`` a Fraction, or a number taken exactly): the shares a position
    holds, and an open order's remaining quantity, after a split."""
    k = _fraction(ratio)
    if not k > 0:
        raise RuleError("invalid_ratio", f"The split ratio must be greater than zero, not "
                        f"{ratio}.")
    step = dec(step)
    units = math.floor(_fraction(qty) * k / Fraction(step))
    return (units * step).quantize(QTY_PLACES, ROUND_DOWN, context=WIDE)


def apply_split(*, qty, cash, anchor, ratio, step, price_before) -> SplitResult:
    """A split of ``ratio`` (k = new/old, a Fraction or an exact number) new shares per old
    share: S ← S·k rounded down to ``step`` only (300 at 1:3 is exactly 100), the fraction cut
    off paid in cash at ``price_before`` / k (the last price before the effective date; None
    pays nothing, for a position with no fraction or no price), Pa ← Pa / k. Each computed
    exactly and rounded once. The value S·P + C is unchanged at the split-adjusted price apart
    from that rounding to cents."""
    k = _fraction(ratio)
    new_qty = split_qty(qty, k, step)
    fraction = _fraction(qty) * k - Fraction(new_qty)
    lieu = MONEY_ZERO
    if fraction > 0 and price_before is not None:
        lieu = _money_of(fraction * _fraction(price_before) / k)
    new_anchor = None if anchor is None else _money_of(_fraction(anchor) / k)
    if new_anchor is not None and not new_anchor > 0:
        new_anchor = None
    return SplitResult(new_qty, money(dec(cash) + lieu), new_anchor, lieu)


def split_adjusted_price(price, ratio) -> Decimal:
    """A price observed before splits of ``ratio`` (their product, exact) in the shares as they
    are after them: ``price`` / ``ratio`` on the 6-decimal price grid
    (docs/strategy.md#splits)."""
    return _money_of(_fraction(price) / _fraction(ratio))


# --------------------------------------------------------------------------------------------
# Dividends across splits (docs/strategy.md#dividends-across-splits)
# --------------------------------------------------------------------------------------------


def shares_entitled(opening_qty, moves) -> Decimal:
    """The shares held at the start of an ex-date in the ex-date's units: ``opening_qty``
    moved by ``moves`` in the order given, each ``("fill", side, qty)`` (a fill before the
    ex-date began) or ``("split", ratio, step)`` (a split that counts for the ex-date, through
    :func:`split_qty`). The caller chooses and orders the moves
    (:func:`positions.workflows.corporate_actions.entitlement`)."""
    shares = dec(opening_qty)
    for kind, a, b in moves:
        if kind == "split":
            shares = split_qty(shares, a, b)
        else:
            shares = shares + b if a == BUY else shares - b
    return shares
