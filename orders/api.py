"""The /v1/orders endpoints."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from orders import selectors, services
from orders.serializers import (
    FillRequestSerializer,
    FillResultSerializer,
    OrderDetailSerializer,
    OrderSerializer,
)
from volbal.api import MissingBeforeNotAllowed
from volbal.schema import errors, idempotency_header, read_errors, write_errors

NOT_FOUND = errors((404, "order_not_found"))


class OrderViewSet(MissingBeforeNotAllowed, viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="An order with its fills",
        responses={200: OrderDetailSerializer, **NOT_FOUND, **read_errors()},
    )
    def retrieve(self, request, pk=None):
        return Response(
            OrderDetailSerializer(selectors.order_get(owner=request.user, order_id=pk)).data
        )

    @extend_schema(
        summary="Record an execution (a fill) of the order",
        request=FillRequestSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            200: FillResultSerializer,
            **NOT_FOUND,
            **write_errors(
                (
                    409,
                    "order_not_open or order_held_by_broker or fill_exceeds_order or "
                    "insufficient_qty or "
                    "insufficient_cash or balance_out_of_range or "
                    "idempotency_signature_mismatch",
                )
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def fill(self, request, pk=None):
        serializer = FillRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        order, position, fill = services.order_fill(
            owner=request.user,
            order_id=pk,
            price=data["price"],
            filled_qty=data["filled_qty"],
            commission=data.get("commission"),
        )
        return Response(
            FillResultSerializer(
                {
                    "order_id": order.id,
                    "status": order.status,
                    "filled_qty": order.filled_qty,
                    "remaining_qty": order.remaining_qty,
                    "avg_fill_price": order.avg_fill_price,
                    "position_id": position.id,
                    "position_qty": position.qty,
                    "position_cash": position.cash,
                    "anchor_price": position.anchor_price,
                    "fill": fill,
                }
            ).data
        )

    @extend_schema(
        summary="Cancel an open order",
        description="200: cancelled. 202: the order's broker holds it (Alpaca): the cancel is "
                    "requested (cancel_requested_at) and sent by the trade cycle; the order "
                    "ends when the broker reports it ended, with the fills it had until then.",
        request=None,
        parameters=[idempotency_header(required=False)],
        responses={
            200: OrderSerializer,
            202: OrderSerializer,
            **NOT_FOUND,
            **write_errors((409, "order_not_open or idempotency_signature_mismatch")),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        order, ended = services.order_cancel_request(owner=request.user, order_id=pk)
        return Response(OrderSerializer(order).data, status=200 if ended else 202)
