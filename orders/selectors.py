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
