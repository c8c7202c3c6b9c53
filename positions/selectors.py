"""Reads of positions and prices."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import OuterRef, QuerySet, Subquery

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
    latest = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts").values("price")[:1]
    return queryset.annotate(latest_price=Subquery(latest))


class PriceSource:
    """Where a price came from (the ``price_source`` of a position and of an evaluation)."""

    REQUEST = "request"  # given in the evaluation's body
    STORED = "stored"  # the ticker's newest stored price (POST /v1/prices, import_prices)
    FILL = "fill"  # the position's last fill
    NONE = "none"  # no price known

    KNOWN = (STORED, FILL)
    ALL = (REQUEST, STORED, FILL, NONE)


@dataclass(frozen=True)
class KnownPrice:
    """The latest known price of a position: the newer of its ticker's newest stored price and
    its own last fill, with when (the stored price's ``ts``, the fill's time) and which."""

    price: Decimal
    ts: dt.datetime
    source: str  # PriceSource.STORED or PriceSource.FILL


def with_known_price(queryset: QuerySet[Position]) -> QuerySet[Position]:
    """Annotate what :func:`known_price` needs (the ticker's newest stored price and the
    position's last fill, each with its time) in the same query: a list costs no more."""
    from orders.models import Fill

    stored = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts")
    fills = Fill.objects.filter(order__position_id=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(
        known_stored_price=Subquery(stored.values("price")[:1]),
        known_stored_ts=Subquery(stored.values("ts")[:1]),
        known_fill_price=Subquery(fills.values("price")[:1]),
        known_fill_ts=Subquery(fills.values("created_at")[:1]),
    )


def known_price(position: Position) -> KnownPrice | None:
    """The position's latest known price, or None when there is neither a stored price nor a
    fill. Reads the annotations of :func:`with_known_price` when the position has them (the
    API's and the admin's lists), else one query. On a tie the fill wins (a trade is firmer
    than a quote)."""
    if not hasattr(position, "known_stored_ts"):
        position = with_known_price(Position.objects.filter(pk=position.pk)).get()
    stored = (position.known_stored_price, position.known_stored_ts)
    fill = (position.known_fill_price, position.known_fill_ts)
    if fill[1] is not None and (stored[1] is None or fill[1] >= stored[1]):
        return KnownPrice(price=fill[0], ts=fill[1], source=PriceSource.FILL)
    if stored[1] is not None:
        return KnownPrice(price=stored[0], ts=stored[1], source=PriceSource.STORED)
    return None


def position_view(*, owner, position_id: str) -> Position:
    """The caller's position with its known price annotated (:func:`known_price`), or 404
    ``position_not_found``."""
    position = with_known_price(positions_of(owner=owner).filter(pk=position_id)).first()
    if position is None:
        raise position_not_found(position_id)
    return position


@dataclass(frozen=True)
class PositionLadder:
    """A position's next-trigger ladder and what blocks it right now (the API and the admin)."""

    position: Position
    ladder: Ladder
    # "open_order" | "daily_cap_reached" | "price_jump_unconfirmed" | None
    blocked_by: str | None
    held_price: Price | None = None  # the latest price, when the price-jump guard holds it


# The highest price a Price row holds (its column: 22 digits, 6 of them decimals).
PRICE_MAX = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.000001")


def position_ladder(*, owner, position_id: str | None = None,
                    position: Position | None = None) -> PositionLadder:
    """The ladder (strategy.md, "Live loop") of the caller's position: where the next buy and
    the next sell fire and what each would be. Read-only. ``blocked_by`` says whether the daily
    cap, an open order or the price-jump guard would block an order at any price now: the
    guard holds the ticker's latest stored price (the one the trade cycle evaluates at) when
    :func:`positions.splits.price_jump_of`, the evaluation's own check, finds it an unconfirmed
    jump."""
    from orders.services import has_open_order, orders_created_today

    if position is None:
        position = position_get(owner=owner, position_id=position_id)
    lad = ladder(position.state(), position.config(), max_price=PRICE_MAX)
    blocked_by = None
    if has_open_order(position=position):
        blocked_by = "open_order"
    elif orders_created_today(position=position) >= position.max_orders_per_day:
        blocked_by = "daily_cap_reached"
    held = held_price(position)
    if held is not None and blocked_by is None:
        blocked_by = "price_jump_unconfirmed"
    return PositionLadder(position=position, ladder=lad, blocked_by=blocked_by, held_price=held)


def held_price(position: Position) -> Price | None:
    """The ticker's latest stored price when the price-jump guard holds it back for this
    position (an unconfirmed jump, as an evaluation at it finds), else None. Read-only: the
    alert is the evaluation's to record."""
    from positions.splits import price_jump_of

    stored = latest_price(ticker=position.ticker)
    if stored is None:
        return None
    jump = price_jump_of(position=position, price=stored.price, price_ts=stored.ts,
                         price_source=PriceSource.STORED)
    return None if jump is None else stored
