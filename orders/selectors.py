"""Reads of orders."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order
from orders.services import order_not_found


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
    from django.db import connection

    from orders.models import OPEN_STATUSES

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
