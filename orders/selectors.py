"""Reads of orders, and of what a position's orders tell: its last fill (the known price a
position is valued and checked at), its open orders and its orders of the session."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL

from events.webhooks.models import WebhookEndpoint
from orders.models import OPEN_STATUSES, Order, Side
from positions.models import Position
from positions.selectors import (
    PriceSource,
    latest_price,
    position_get,
    split_adjusted,
    stored_price_annotations,
)
from positions.strategy import rules
from volbal import clock
from volbal.errors import DomainError
from volbal.rows import Annotation, kept_cursor


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
    """Annotate what :func:`known_price` needs beyond the position's own columns (the ticker's
    newest stored price and its time) in the same query: a list costs no more. The SQL is
    :func:`positions.selectors.stored_price_annotations`', the one the submission's precompiled
    read uses."""
    return queryset.annotate(**{name: RawSQL(sql, (), output_field=field)
                                for name, sql, field in stored_price_annotations()})


def known_price(position: Position) -> KnownPrice | None:
    """The position's latest known price, or None when there is neither a stored price nor a
    fill: the newer of its ticker's newest stored price (the annotations of
    :func:`with_known_price` or :func:`positions.selectors.stored_price_annotations` when the
    position has them, else one indexed read) and its last fill (its own columns, kept by
    positions.books). On a tie the fill wins (a trade is firmer than a quote). The price is
    split-adjusted (:func:`split_adjusted`): one more query only for a price observed before
    the position's latest applied split."""
    if hasattr(position, "known_stored_ts"):
        stored = (position.known_stored_price, position.known_stored_ts)
    else:
        row = latest_price(ticker=position.ticker)
        stored = (None, None) if row is None else (row.price, row.ts)
    fill = (position.last_fill_price, position.last_fill_at)
    if fill[1] is not None and (stored[1] is None or fill[1] >= stored[1]):
        price, ts, source = fill[0], fill[1], PriceSource.FILL
    elif stored[1] is not None:
        price, ts, source = stored[0], stored[1], PriceSource.STORED
    else:
        return None
    return KnownPrice(price=split_adjusted(position=position, price=price, ts=ts), ts=ts,
                      source=source, observed=price)


def position_view(*, owner, position_id: str) -> Position:
    """The caller's position with its known price's stored part annotated (:func:`known_price`):
    one statement, or 404 ``position_not_found``."""
    return position_get(owner=owner, position_id=position_id,
                        annotate=stored_price_annotations())


@functools.cache
def submission_annotations() -> tuple[Annotation, ...]:
    """What a submission reads with the position it locks
    (:func:`orders.services.order_submit_for`): the stored part of its known price, and
    ``owner_listens``: whether its owner has an active webhook endpoint (without one, its
    commit wakes no delivery: :func:`events.services.events_unheard`)."""
    quote = connection.ops.quote_name
    endpoints = quote(WebhookEndpoint._meta.db_table)
    listens = (f"EXISTS (SELECT 1 FROM {endpoints} w WHERE w.{quote('owner_id')} = "
               f"{quote(Position._meta.db_table)}.{quote('owner_id')} AND w.{quote('active')})")
    return (*stored_price_annotations(),
            ("owner_listens", listens, WebhookEndpoint._meta.get_field("active")))


def order_not_found(order_id: str) -> DomainError:
    return DomainError("order_not_found", f"No order {order_id!r}.", status=404)


def _counted_sql() -> str:
    """The orders the daily cap counts, as SQL: every order but a rung with no fill (resting,
    or cancelled or replaced without trading: docs/brokers.md#resting-orders)."""
    quote = connection.ops.quote_name
    return f"NOT ({quote('rung')} IS NOT NULL AND {quote('filled_qty')} = 0)"


def orders_created_today(*, position: Position, today=None) -> int:
    """The orders of the position the daily cap counts in the session: every order created in
    it but a rung that has not filled (the backtest's cap counts the orders that traded). The
    one count of the cap: evaluation, ladder, resting rungs and submission."""
    return (Order.objects.filter(position_id=position.id,
                                 trading_day=today or clock.session_day())
            .exclude(rung__isnull=False, filled_qty=0).count())


def orders_created_today_many(position_ids, *, today: dt.date) -> dict[str, int]:
    """:func:`orders_created_today` of many positions at once (those with none are absent):
    one query. On PostgreSQL the ids go as one array parameter (a statement whose text does
    not grow with the batch, so it is parsed and prepared once, not per batch)."""
    ids = list(position_ids)
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        return dict(Order.objects.filter(position_id__in=ids, trading_day=today)
                    .exclude(rung__isnull=False, filled_qty=0)
                    .values("position_id").annotate(n=Count("id")).values_list("position_id", "n"))
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT position_id, COUNT(*) FROM {table} WHERE position_id = "
                       f"ANY(%s::varchar[]) AND trading_day = %s AND {_counted_sql()} "
                       "GROUP BY position_id",
                       [ids, today])
        return dict(cursor.fetchall())


def has_open_order(*, position: Position) -> bool:
    return Order.objects.filter(position=position, status__in=OPEN_STATUSES).exists()


@dataclass(frozen=True)
class OrderBook:
    """What a submission checks of a locked position's orders (:func:`order_book`)."""

    existing_id: str | None  # the order of the idempotency key, if any
    created_today: int  # the session's orders (the daily cap)
    open_remaining: dict[str, Decimal]  # {"BUY": q, "SELL": q} the open orders still commit


@functools.cache
def _order_book_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(Order._meta.db_table)
    left = f"{quote('qty')} - {quote('filled_qty')}"
    # the open statuses as literals: constants of the code, not data
    statuses = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
    return (f"SELECT (SELECT {quote('id')} FROM {table} WHERE {quote('position_id')} = %s AND "
            f"{quote('idempotency_key')} = %s), "
            f"(SELECT COUNT(*) FROM {table} WHERE {quote('position_id')} = %s AND "
            f"{quote('trading_day')} = %s AND {_counted_sql()}), "
            f"SUM({left}) FILTER (WHERE {quote('side')} = %s), "
            f"SUM({left}) FILTER (WHERE {quote('side')} = %s) "
            f"FROM {table} WHERE {quote('position_id')} = %s AND {quote('status')} IN ({statuses})")


def order_book(*, position: Position, idempotency_key: str | None, today: dt.date) -> OrderBook:
    """The order of ``idempotency_key`` on the position, its orders of the session ``today``
    and what its open orders still commit per side, in one statement (plain SQL, built once).
    The open sums read every open order of the position (the (position, status) index): a
    few ms at 20,000 open orders on PostgreSQL. The caller has locked the
    position, so no order of it changes meanwhile."""
    qty = Order._meta.get_field("qty")
    db = connections[DEFAULT_DB_ALIAS]  # once: each read through the proxy looks it up again
    cursor = kept_cursor(db)
    cursor.execute(_order_book_sql(), [
        position.id, idempotency_key, position.id,
        Order._meta.get_field("trading_day").get_db_prep_value(today, db),
        Side.BUY, Side.SELL, position.id])
    existing, today_count, buy, sell = cursor.fetchone()
    return OrderBook(existing, today_count,
                     {Side.BUY: _decimal(buy, qty, db), Side.SELL: _decimal(sell, qty, db)})


def _decimal(value, field, db) -> Decimal:
    """A sum of ``field`` as the ORM would give it (SQLite returns a float); none: 0."""
    if value is None:
        return Decimal(0)
    column = field.get_col(field.model._meta.db_table)
    for func in db.ops.get_db_converters(column) + field.get_db_converters(db):
        value = func(value, column, db)
    return value


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
