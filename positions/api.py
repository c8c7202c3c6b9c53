"""The /v1/positions endpoints."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from events.models import EventType
from events.selectors import events_for_position
from orders.serializers import (
    OrderAcceptedSerializer,
    OrderSerializer,
    OrderSubmitSerializer,
)
from orders.services import order_submit_for
from positions import selectors, services
from positions.filters import EventFilter, PositionFilter
from positions.serializers import (
    EventSerializer,
    PositionCreateSerializer,
    PositionSerializer,
    PositionUpdateSerializer,
)
from volbal.api import keyset_page, validate_filters
from volbal.errors import ApiError
from volbal.schema import COMMON, PAGING, READ_COMMON, errors, idempotency_header, page_of

NOT_FOUND = errors((404, "position_not_found"))


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PositionViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="List your positions",
        parameters=[
            OpenApiParameter("ticker", str, description="Exact ticker (case-insensitive)."),
            OpenApiParameter("created_after", str, description="ISO 8601 time, inclusive."),
            OpenApiParameter("created_before", str, description="ISO 8601 time, exclusive."),
            *PAGING,
        ],
        responses={
            200: page_of("PositionPage", {"positions": PositionSerializer(many=True)}),
            **READ_COMMON,
        },
    )
    def list(self, request):
        filterset = PositionFilter(
            request.query_params, queryset=selectors.positions_of(owner=request.user)
        )
        validate_filters(filterset)
        items, next_cursor = keyset_page(request, selectors.with_latest_price(filterset.qs))
        return Response(
            {"positions": PositionSerializer(items, many=True).data, "next": next_cursor}
        )

    @extend_schema(
        summary="Open a position",
        request=PositionCreateSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            201: PositionSerializer,
            200: PositionSerializer,
            **errors((409, "idempotency_signature_mismatch")),
            **COMMON,
        },
    )
    def create(self, request):
        data = _valid(PositionCreateSerializer, request)
        position = services.position_create(owner=request.user, **data)
        position = selectors.position_view(owner=request.user, position_id=position.id)
        return Response(PositionSerializer(position).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="A position", responses={200: PositionSerializer, **NOT_FOUND, **READ_COMMON}
    )
    def retrieve(self, request, pk=None):
        position = selectors.position_view(owner=request.user, position_id=pk)
        return Response(PositionSerializer(position).data)

    @extend_schema(
        summary="Change the strategy configuration",
        request=PositionUpdateSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            200: PositionSerializer,
            **NOT_FOUND,
            **errors((409, "idempotency_signature_mismatch")),
            **COMMON,
        },
    )
    def partial_update(self, request, pk=None):
        data = _valid(PositionUpdateSerializer, request)
        services.position_configure(owner=request.user, position_id=pk, changes=dict(data))
        position = selectors.position_view(owner=request.user, position_id=pk)
        return Response(PositionSerializer(position).data)

    @extend_schema(
        summary="The position's audit events, oldest first",
        parameters=[
            OpenApiParameter(
                "type",
                str,
                many=True,
                explode=True,
                enum=EventType.values,
                description="Only these event types.",
            ),
            OpenApiParameter("since", str, description="ISO 8601 time, inclusive."),
            OpenApiParameter("until", str, description="ISO 8601 time, exclusive."),
            *PAGING,
        ],
        responses={
            200: page_of(
                "EventPage",
                {"events": EventSerializer(many=True)},
                {"position_id": serializers.CharField()},
            ),
            **NOT_FOUND,
            **READ_COMMON,
        },
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        position = selectors.position_get(owner=request.user, position_id=pk)
        filterset = EventFilter(
            request.query_params, queryset=events_for_position(position_id=position.id)
        )
        validate_filters(filterset)
        items, next_cursor = keyset_page(request, filterset.qs, fields=("id",))
        return Response(
            {
                "position_id": position.id,
                "events": EventSerializer(items, many=True).data,
                "next": next_cursor,
            }
        )

    @extend_schema(
        methods=["GET"],
        summary="The position's orders, oldest first",
        parameters=PAGING,
        responses={
            200: page_of(
                "OrderPage",
                {"orders": OrderSerializer(many=True)},
                {"position_id": serializers.CharField()},
            ),
            **NOT_FOUND,
            **READ_COMMON,
        },
    )
    @extend_schema(
        methods=["POST"],
        summary="Submit an order (idempotent; Idempotency-Key required)",
        request=OrderSubmitSerializer,
        parameters=[idempotency_header(required=True)],
        responses={
            201: OrderAcceptedSerializer,
            200: OrderAcceptedSerializer,
            **NOT_FOUND,
            **errors(
                (400, "missing_idempotency_key"),
                (409, "idempotency_signature_mismatch or daily_order_cap_exceeded"),
            ),
            **COMMON,
        },
    )
    @action(detail=True, methods=["get", "post"])
    def orders(self, request, pk=None):
        if request.method == "GET":
            from orders.selectors import orders_for_position

            position = selectors.position_get(owner=request.user, position_id=pk)
            items, next_cursor = keyset_page(request, orders_for_position(position_id=position.id))
            return Response(
                {
                    "position_id": position.id,
                    "orders": OrderSerializer(items, many=True).data,
                    "next": next_cursor,
                }
            )
        key = request.headers.get("Idempotency-Key")
        if key is None:
            raise ApiError(
                "missing_idempotency_key",
                "Order submission needs an Idempotency-Key header (1-255 printable "
                "characters) so a retry cannot place a second order.",
            )
        data = _valid(OrderSubmitSerializer, request)
        order, created = order_submit_for(
            owner=request.user,
            position_id=pk,
            side=data["side"],
            qty=data["qty"],
            idempotency_key=key,
        )
        return Response(
            OrderAcceptedSerializer(order).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
