"""A portfolio as a picture (the admin's portfolio page): its allocation, target against
actual weight, drawn by the strategy's chart code (positions.strategy.export.charts)."""

from __future__ import annotations

import io
from decimal import Decimal

from positions.portfolios.selectors import PortfolioValue
from positions.strategy.export import charts
from positions.strategy.rules.numbers import money


def allocation_png(value: PortfolioValue) -> bytes:
    """The allocation picture of a valued portfolio: each position's target and actual
    weight, and the unallocated cash's (its target: what the targets leave)."""
    names = [f"{h.position.ticker} {h.position.id[-6:]}" for h in value.holdings]
    targets = [h.target_weight for h in value.holdings]
    actuals = [h.weight for h in value.holdings]
    names.append("unallocated cash")
    targets.append(max(Decimal(0), 1 - value.target_total))
    actuals.append(None if not value.value else money(value.unallocated_cash / value.value))
    buffer = io.BytesIO()
    charts.write_allocation_plot(buffer, names=names, targets=targets, actuals=actuals,
                                 title=f"{value.portfolio.name}: target and actual weights")
    return buffer.getvalue()
