"""Reads of positions and prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from positions.models import MONEY, Position, Price
from positions.strategy.ladder import Ladder, ladder
from volbal.errors import DomainError
from volbal.rows import fetch_one


def position_not_found(position_id: str) -> DomainError:
    return DomainError("position_not_found", f"No position {position_id!r}.", status=404)


def positions_of(*, owner) -> QuerySet[Position]:
    return Position.objects.filter(owner=owner)


def position_get(*, owner, position_id: str, for_update: bool = False) -> Position:
    """The caller's position, or 404 ``position_not_found`` (another owner's looks absent).

    On every request's path, so read with :func:`volbal.rows.fetch_one`, not a queryset."""
    equal = {"id": position_id} if owner is None else {"id": position_id, "owner_id": owner.pk}
    position = fetch_one(Position, for_update=for_update, **equal)
    if position is None:
        raise position_not_found(position_id)
    return position


def latest_price(*, ticker: str) -> Price | None:
    return Price.objects.filter(ticker=ticker).order_by("-ts").first()


def with_latest_price(queryset: QuerySet[Position]) -> QuerySet[Position]:
    """Annotate ``latest_price`` (the newest stored price of each position's ticker): one query."""
    from django.db.models import OuterRef, Subquery

    latest = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts").values("price")[:1]
    return queryset.annotate(latest_price=Subquery(latest))


def position_view(*, owner, position_id: str) -> Position:
    """The caller's position with ``latest_price``, or 404 ``position_not_found``."""
    position = with_latest_price(positions_of(owner=owner).filter(pk=position_id)).first()
    if position is None:
        raise position_not_found(position_id)
    return position


@dataclass(frozen=True)
class PositionLadder:
    """A position's next-trigger ladder and what blocks it right now (the API and the admin)."""

    position: Position
    ladder: Ladder
    blocked_by: str | None  # "open_order" | "daily_cap_reached" | None


# The highest price a Price row holds (its column: 22 digits, 6 of them decimals).
PRICE_MAX = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.000001")


def position_ladder(*, owner, position_id: str | None = None,
                    position: Position | None = None) -> PositionLadder:
    """The ladder (strategy.md, "Live loop") of the caller's position: where the next buy and
    the next sell fire and what each would be. Read-only. ``blocked_by`` says whether the daily
    cap or an open order would block an order at any price now."""
    from orders.services import has_open_order, orders_created_today

    if position is None:
        position = position_get(owner=owner, position_id=position_id)
    lad = ladder(position.state(), position.config(), max_price=PRICE_MAX)
    blocked_by = None
    if has_open_order(position=position):
        blocked_by = "open_order"
    elif orders_created_today(position=position) >= position.max_orders_per_day:
        blocked_by = "daily_cap_reached"
    return PositionLadder(position=position, ladder=lad, blocked_by=blocked_by)
