"""Reads of portfolios: the owner's, and a portfolio valued at its positions' known prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from events.models import Event
from orders.selectors import position_valuation, with_known_price
from positions.models import Portfolio, Position
from positions.strategy.rules.numbers import money
from volbal.errors import DomainError
from volbal.rows import fetch_one


def portfolio_not_found(portfolio_id: str) -> DomainError:
    return DomainError("portfolio_not_found", f"No portfolio {portfolio_id!r}.", status=404)


def portfolios_of(*, owner) -> QuerySet[Portfolio]:
    return Portfolio.objects.filter(owner=owner)


def portfolio_get(*, owner, portfolio_id: str, for_update: bool = False) -> Portfolio:
    """The caller's portfolio, or 404 ``portfolio_not_found`` (another owner's looks absent;
    ``owner`` None: any owner's, for the commands and the trade cycle)."""
    equal = {"id": portfolio_id} if owner is None else {"id": portfolio_id,
                                                        "owner_id": owner.pk}
    portfolio = fetch_one(Portfolio, for_update=for_update, **equal)
    if portfolio is None:
        raise portfolio_not_found(portfolio_id)
    return portfolio


def events_of_portfolio(portfolio: Portfolio) -> QuerySet[Event]:
    """The portfolio's events (``Event.portfolio_id``), oldest first."""
    return Event.objects.filter(portfolio_id=portfolio.id).order_by("id")


def members(portfolio: Portfolio, *, for_update: bool = False) -> list[Position]:
    """The portfolio's positions in id order (the order rows are locked in), their known
    prices annotated."""
    qs = Position.objects.filter(portfolio_id=portfolio.id).order_by("id")
    if for_update:
        list(qs.select_for_update().values_list("id", flat=True))  # locks, in id order
    return list(with_known_price(qs))


def portfolio_values(portfolios: list[Portfolio]) -> list[PortfolioValue]:
    """:func:`portfolio_value` of each of ``portfolios`` (a page of a list), their members read
    in one query rather than one a portfolio."""
    of = {p.id: [] for p in portfolios}
    for position in with_known_price(Position.objects.filter(portfolio_id__in=list(of))
                                     .order_by("id")):
        of[position.portfolio_id].append(position)
    return [portfolio_value(p, of[p.id]) for p in portfolios]


@dataclass(frozen=True)
class Holding:
    """One position of a portfolio as valued: S·P + C + R at its known price (None when it
    holds shares and no price is known), its target and actual weight of T."""

    position: Position
    price: Decimal | None
    value: Decimal | None
    target_weight: Decimal | None
    weight: Decimal | None


@dataclass(frozen=True)
class PortfolioValue:
    """A portfolio valued: T = F + Σ V_i (None when a position's value is unknown), the
    unallocated cash F, all the cash C = F + Σ C_i, and its holdings."""

    portfolio: Portfolio
    value: Decimal | None
    unallocated_cash: Decimal
    cash: Decimal
    target_total: Decimal
    holdings: list[Holding]


def position_value(position: Position) -> tuple[Decimal | None, Decimal | None]:
    """(price, value) of a position at its known price: a position without shares is worth
    its cash and receivable at any price."""
    valuation = position_valuation(position)
    if valuation.value is None and position.qty == 0:
        return None, position.cash + position.dividend_receivable
    return valuation.price, valuation.value


def portfolio_value(portfolio: Portfolio, positions: list[Position] | None = None
                    ) -> PortfolioValue:
    """``portfolio`` valued at its positions' known prices (``positions``: its members as
    :func:`members` reads them, read here when None)."""
    positions = members(portfolio) if positions is None else positions
    priced = [(p, *position_value(p)) for p in positions]
    total = (None if any(v is None for _p, _price, v in priced)
             else portfolio.cash + sum((v for _p, _price, v in priced), Decimal(0)))
    holdings = [Holding(p, price, value, p.target_weight,
                        None if total is None or not total else money(value / total))
                for p, price, value in priced]
    return PortfolioValue(
        portfolio=portfolio, value=total, unallocated_cash=portfolio.cash,
        cash=portfolio.cash + sum((p.cash for p in positions), Decimal(0)),
        target_total=sum((p.target_weight or 0 for p in positions), Decimal(0)),
        holdings=holdings)

