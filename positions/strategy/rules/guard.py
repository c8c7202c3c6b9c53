"""The price-jump guard (docs/strategy.md#price-jump-guard): a price further than
``max_price_jump`` from the ticker's previous price, with no split explaining it, is held back
until an operator confirms it. Pure: the standard library only."""

from __future__ import annotations

from decimal import Decimal

from positions.strategy.rules.numbers import ONE, dec


def price_jump(*, previous: Decimal, price: Decimal, max_jump: Decimal,
               ratio: Decimal = ONE) -> Decimal | None:
    """The relative move of ``price`` from ``previous`` / ``ratio`` (the previous price adjusted
    for the splits effective since it) when it exceeds ``max_jump``, else None."""
    move = dec(price) / (dec(previous) / dec(ratio)) - ONE
    return move if abs(move) > dec(max_jump) else None
