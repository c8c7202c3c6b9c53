"""Reads of orders, and of what a position's orders tell: its last fill (the known price a
position is valued and checked at), its open orders and its orders of the session."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum

from orders.models import OPEN_STATUSES, Fill, Order, Side
from positions.models import Position, Price
from positions.selectors import (
    PriceSource,
    has_splits,
    position_not_found,
    positions_of,
    split_adjusted,
)
from positions.strategy import rules
from volbal import clock
from volbal.errors import DomainError
from volbal.rows import count


def orders_for_position(*, position_id: str) -> QuerySet[Order]:
    return Order.objects.filter(position_id=position_id)


def order_get(*, owner, order_id: str) -> Order:
    """The caller's order with its fills, or 404 ``order_not_found``."""
    order = (
        Order.objects.filter(pk=order_id, position__owner=owner).prefetch_related("fills").first()
    )
    if order is None:
        raise order_not_found(order_id)
    return order


def positions_with_open_orders(position_ids) -> set[str]:
    """Which of these positions have an open order. On PostgreSQL one probe of the
    (position, status) index per position: a plan that stays right when the statistics lag
    behind a table that grew within the cycle (a plain ``position IN (...) AND status IN
    (...)`` was then planned as a scan of every open order, once per batch)."""
    ids = list(position_ids)
    if not ids:
        return set()
    if connection.vendor != "postgresql":
        return set(Order.objects.filter(position_id__in=ids, status__in=OPEN_STATUSES)
                   .values_list("position_id", flat=True))
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.id FROM unnest(%s::varchar[]) AS p(id) WHERE EXISTS (SELECT 1 FROM "
            f"{table} o WHERE o.position_id = p.id AND o.status = ANY(%s::varchar[]))",
            [ids, list(OPEN_STATUSES)])
        return {row[0] for row in cursor.fetchall()}


@dataclass(frozen=True)
class KnownPrice:
    """The latest known price of a position: the newer of its ticker's newest stored price and
    its own last fill, with when (the stored price's ``ts``, the fill's time) and which."""

    price: Decimal  # as the position uses it (split-adjusted)
    ts: dt.datetime
    source: str  # PriceSource.STORED or PriceSource.FILL
    observed: Decimal | None = None  # as stored or filled (the price-jump guard's reference)


def with_known_price(queryset: QuerySet[Position]) -> QuerySet[Position]:
    """Annotate what :func:`known_price` needs (the ticker's newest stored price and the
    position's last fill, each with its time) in the same query: a list costs no more."""
    stored = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts")
    fills = Fill.objects.filter(order__position_id=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(
        known_stored_price=Subquery(stored.values("price")[:1]),
        known_stored_ts=Subquery(stored.values("ts")[:1]),
        known_fill_price=Subquery(fills.values("price")[:1]),
        known_fill_ts=Subquery(fills.values("created_at")[:1]),
        known_has_splits=has_splits(),
    )


def known_price(position: Position) -> KnownPrice | None:
    """The position's latest known price, or None when there is neither a stored price nor a
    fill. Reads the annotations of :func:`with_known_price` when the position has them (the
    API's and the admin's lists), else one query. On a tie the fill wins (a trade is firmer
    than a quote). The price is split-adjusted (:func:`split_adjusted`): one more query only
    for a position with an applied split."""
    known = position
    if not hasattr(known, "known_stored_ts"):
        known = with_known_price(Position.objects.filter(pk=position.pk)).get()
    stored = (known.known_stored_price, known.known_stored_ts)
    fill = (known.known_fill_price, known.known_fill_ts)
    if fill[1] is not None and (stored[1] is None or fill[1] >= stored[1]):
        price, ts, source = fill[0], fill[1], PriceSource.FILL
    elif stored[1] is not None:
        price, ts, source = stored[0], stored[1], PriceSource.STORED
    else:
        return None
    observed = price
    if known.known_has_splits:
        price = split_adjusted(position=position, price=price, ts=ts)
    return KnownPrice(price=price, ts=ts, source=source, observed=observed)


def position_view(*, owner, position_id: str) -> Position:
    """The caller's position with its known price annotated (:func:`known_price`), or 404
    ``position_not_found``."""
    position = with_known_price(positions_of(owner=owner).filter(pk=position_id)).first()
    if position is None:
        raise position_not_found(position_id)
    return position


def order_not_found(order_id: str) -> DomainError:
    return DomainError("order_not_found", f"No order {order_id!r}.", status=404)


def orders_created_today(*, position: Position, today=None) -> int:
    """Orders created for the position in the session (the daily cap counts these)."""
    return count(Order, position_id=position.id, trading_day=today or clock.session_day())


def has_open_order(*, position: Position) -> bool:
    return Order.objects.filter(position=position, status__in=OPEN_STATUSES).exists()


def open_remaining(*, position: Position) -> dict[str, Decimal]:
    """What the position's open orders still have to fill, per side: ``{"BUY": q, "SELL": q}``
    (one query)."""
    left = F("qty") - F("filled_qty")
    totals = Order.objects.filter(position=position, status__in=OPEN_STATUSES).aggregate(
        BUY=Sum(left, filter=Q(side=Side.BUY)), SELL=Sum(left, filter=Q(side=Side.SELL)))
    return {side: totals[side] or Decimal(0) for side in Side.values}



@dataclass(frozen=True)
class Valuation:
    """A position valued at its latest known price (:func:`known_price`): the price, when and
    where it comes from, the value S·P + C + R and the stock weight S·P / V; all None (and
    source ``none``) when no price is known. The API and the admin show this one."""

    price: Decimal | None
    ts: dt.datetime | None
    source: str
    value: Decimal | None
    weight: Decimal | None


def position_valuation(position: Position) -> Valuation:
    """THE valuation of a position (:class:`Valuation`); reads the annotations of
    :func:`with_known_price` when the position has them (a list costs no more)."""
    known = known_price(position)
    if known is None:
        return Valuation(None, None, PriceSource.NONE, None, None)
    value, weight = rules.weight_of(qty=position.qty, cash=position.cash,
                                    receivable=position.dividend_receivable, price=known.price)
    return Valuation(known.price, known.ts, known.source, value, weight)
