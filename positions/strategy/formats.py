"""How the strategy core writes a figure for a person or a table: percents, ratios, money,
days, a configuration fraction, a grid value, and the rounded numbers of the JSON documents
and the tables. One set, shared by the backtest's report, the research outputs and the
exports (:mod:`positions.strategy.export`). Pure: the standard library only."""

from __future__ import annotations

import math
from decimal import Decimal

NA = "n/a"  # a figure that is undefined (no trade, no volatility, ...)


def pct(x, digits: int = 2) -> str:
    """A fraction as a percent: 0.0342 -> '3.42 %' (``n/a`` for None)."""
    return NA if x is None else f"{x * 100:,.{digits}f} %"


def ratio(x) -> str:
    """A ratio with two decimals: 1.2345 -> '1.23'."""
    return NA if x is None else f"{x:,.2f}"


def turnover(x) -> str:
    """A turnover (traded value over the mean position value, per year): 1.5 -> '1.50x'."""
    return NA if x is None else ratio(x) + "x"


def money(x) -> str:
    """An amount with two decimals and thousands separators: 12345.6 -> '12,345.60'."""
    return NA if x is None else f"{float(x):,.2f}"


def days(x) -> str:
    """A duration in days: whole days from 10 on, two decimals below."""
    if x is None:
        return NA
    return f"{x:,.0f} d" if x >= 10 else f"{x:,.2f} d"


def fraction(x) -> str:
    """A configuration fraction as a percent for a sentence, as written: 0.03 -> '3 %'."""
    s = format((Decimal(str(x)) * 100).normalize(), "f")
    return f"{s} %"


def setting(v) -> str:
    """A grid or configuration value as a person writes it: Decimals without an exponent (or a
    trailing zero when whole), booleans lower case, None as 'none'."""
    if isinstance(v, Decimal):
        return format(v.normalize(), "f") if v == v.to_integral_value() else str(v)
    if v is None:
        return "none"
    return str(v).lower() if isinstance(v, bool) else str(v)


def number(x, places: int = 6):
    """A backtest figure as a JSON number: Decimals exactly (via their shortest float), ints and
    booleans as they are, floats rounded to ``places``; None where undefined or not finite."""
    if x is None:
        return None
    if isinstance(x, (bool, int)):
        return x
    if isinstance(x, Decimal):
        return float(x)
    x = float(x)
    if not math.isfinite(x):
        return None
    return round(x, places)


def rounded(x):
    """A research figure as a float rounded to 6 places (None for None or NaN)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def plain(v):
    """A grid value for JSON and tables: Decimals as floats, the rest as given."""
    if isinstance(v, Decimal):
        return float(v)
    return v
