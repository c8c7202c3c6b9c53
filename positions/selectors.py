"""Reads of positions and prices."""

from __future__ import annotations

from django.db.models import QuerySet

from positions.models import Position, Price
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
