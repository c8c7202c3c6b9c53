"""The /v1/portfolios endpoints and the cash movements."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from events.models import EventType
from positions.filters import EventFilter
from positions.models import MONEY, Portfolio
from positions.performance import portfolio_performance
from positions.performance_api import performance_views
from positions.portfolios import selectors, services
from positions.serializers import EventSerializer
from positions.strategy import rules
from volbal.api import (
    MissingBeforeNotAllowed,
    StrictSerializer,
    TextField,
    idempotency_key_required,
    keyset_page,
    validate_filters,
)
from volbal.fields import DecimalOut, Number
from volbal.schema import PAGING, errors, idempotency_header, page_of, read_errors, write_errors

NOT_FOUND = errors((404, "portfolio_not_found"))
CASH_ERRORS = (400, "missing_idempotency_key or invalid_amount"), (
    409, "insufficient_cash or balance_out_of_range or idempotency_signature_mismatch")


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def cash_key(request) -> str:
    """A cash movement's Idempotency-Key, required: a retried request moves the cash once."""
    return idempotency_key_required(
        request, "A cash movement needs an Idempotency-Key header (1-255 printable characters) "
        "so a retry cannot move the cash twice.")


def bounded(name: str, **kw):
    """Portfolio field ``name`` with its bounds from the one table (rules.BOUNDS)."""
    return Number(**rules.field_kwargs(name), required=False, **kw)


class Amount(Number):
    def __init__(self, **kw):
        super().__init__(max_digits=MONEY["max_digits"], decimal_places=MONEY["decimal_places"],
                         **kw)


class PortfolioUpdateSerializer(StrictSerializer):
    name = TextField(max_length=services.NAME_MAX, required=False)
    rebalance = serializers.ChoiceField(
        choices=rules.REBALANCES, required=False,
        help_text="never (default), monthly, quarterly or yearly (at the first trade cycle of "
        "the period's first session), or band (when a weight drifts from its target by more "
        "than rebalance_band).")
    rebalance_band = bounded("rebalance_band",
                             help_text="Absolute weight drift, 0 < band < 1; required for band.")


class PortfolioCreateSerializer(PortfolioUpdateSerializer):
    name = TextField(max_length=services.NAME_MAX)
    cash = Amount(min_value=0, required=False,
                  help_text="Opening unallocated cash (not a deposit), ≥ 0; default 0.")


class CashSerializer(StrictSerializer):
    amount = Amount(help_text="Positive: a deposit; negative: a withdrawal.")


class TransferSerializer(StrictSerializer):
    # ``from`` is a Python keyword: the field is declared under its JSON name below
    to = serializers.CharField(max_length=32, help_text='"portfolio" or a position\'s id.')
    amount = Amount(gt=0)


TransferSerializer._declared_fields["from"] = serializers.CharField(
    max_length=32, help_text='"portfolio" (its unallocated cash) or a position\'s id.')


class HoldingSerializer(serializers.Serializer):
    id = serializers.CharField(source="position.id")
    ticker = serializers.CharField(source="position.ticker")
    qty = DecimalOut(source="position.qty")
    cash = DecimalOut(source="position.cash")
    price = DecimalOut(allow_null=True, help_text="The position's known price; null: none.")
    value = DecimalOut(allow_null=True, help_text="S·P + C + R; null without a known price.")
    target_weight = DecimalOut(allow_null=True)
    weight = DecimalOut(allow_null=True, help_text="value / the portfolio's value.")


class PortfolioSerializer(serializers.Serializer):
    id = serializers.CharField(source="portfolio.id")
    name = serializers.CharField(source="portfolio.name")
    cash = DecimalOut(source="unallocated_cash", help_text="Unallocated cash F.")
    value = DecimalOut(allow_null=True,
                       help_text="T = F + Σ position values; null when one is unknown.")
    positions_cash = serializers.SerializerMethodField(
        help_text="Σ of the positions' cash (all the cash is cash + positions_cash).")
    target_weight_total = DecimalOut(source="target_total")
    rebalance = serializers.CharField(source="portfolio.rebalance")
    rebalance_band = DecimalOut(source="portfolio.rebalance_band", allow_null=True)
    last_rebalanced_on = serializers.DateField(source="portfolio.last_rebalanced_on",
                                               allow_null=True)
    created_at = serializers.DateTimeField(source="portfolio.created_at")
    positions = HoldingSerializer(source="holdings", many=True)

    def get_positions_cash(self, value) -> float:
        return value.cash - value.unallocated_cash


class MovementSerializer(serializers.Serializer):
    portfolio_id = serializers.CharField(allow_null=True)
    position_id = serializers.CharField(allow_null=True)
    amount = DecimalOut()
    cash = DecimalOut(help_text="The account's cash after the movement.")


class TransferOutSerializer(serializers.Serializer):
    transfer_id = serializers.CharField()
    portfolio_id = serializers.CharField()
    amount = DecimalOut()
    balances = serializers.DictField(child=DecimalOut(),
                                     help_text="Each account's cash after the transfer.")


def portfolio_body(owner, portfolio_id: str) -> dict:
    portfolio = selectors.portfolio_get(owner=owner, portfolio_id=portfolio_id)
    return PortfolioSerializer(selectors.portfolio_value(portfolio)).data


def cash_movement(request, move) -> Response:
    """A cash movement's request and answer (a position's or a portfolio's): the required
    key, the amount, then ``move(amount)``, the service, which returns the account moved."""
    cash_key(request)
    amount = _valid(CashSerializer, request)["amount"]
    account = move(amount)
    ids = ({"portfolio_id": account.id, "position_id": None} if isinstance(account, Portfolio)
           else {"portfolio_id": account.portfolio_id, "position_id": account.id})
    return Response({**ids, "amount": amount, "cash": account.cash},
                    status=status.HTTP_201_CREATED)


class PortfolioViewSet(MissingBeforeNotAllowed, performance_views("portfolio"), viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @extend_schema(summary="List your portfolios", parameters=PAGING,
                   responses={200: page_of("PortfolioPage",
                                           {"portfolios": PortfolioSerializer(many=True)}),
                              **read_errors()})
    def list(self, request):
        items, next_cursor = keyset_page(request, selectors.portfolios_of(owner=request.user))
        return Response({"portfolios": PortfolioSerializer(selectors.portfolio_values(items),
                                                           many=True).data,
                         "next": next_cursor})

    @extend_schema(summary="Open a portfolio", request=PortfolioCreateSerializer,
                   parameters=[idempotency_header(required=False)],
                   responses={201: PortfolioSerializer, 200: PortfolioSerializer,
                              **write_errors((409, "idempotency_signature_mismatch"))})
    def create(self, request):
        data = _valid(PortfolioCreateSerializer, request)
        portfolio = services.portfolio_create(owner=request.user, **data)
        return Response(portfolio_body(request.user, portfolio.id),
                        status=status.HTTP_201_CREATED)

    @extend_schema(summary="A portfolio: its value, unallocated cash and positions with their "
                   "target and actual weights",
                   responses={200: PortfolioSerializer, **NOT_FOUND, **read_errors()})
    def retrieve(self, request, pk=None):
        return Response(portfolio_body(request.user, pk))

    @extend_schema(summary="Rename a portfolio or change its rebalancing",
                   description="Its cash changes only by cash movements (`/cash`, "
                   "`/transfers`); positions join by their own PATCH (`portfolio`, "
                   "`target_weight`).",
                   request=PortfolioUpdateSerializer,
                   parameters=[idempotency_header(required=False)],
                   responses={200: PortfolioSerializer, **NOT_FOUND,
                              **write_errors((409, "idempotency_signature_mismatch"))})
    def partial_update(self, request, pk=None):
        data = _valid(PortfolioUpdateSerializer, request)
        services.portfolio_configure(owner=request.user, portfolio_id=pk, changes=dict(data))
        return Response(portfolio_body(request.user, pk))

    @extend_schema(
        summary="The portfolio's audit events, oldest first",
        description="Its own (`portfolio_created`, `portfolio_changed`, the movements of its "
        "unallocated cash) and its positions' cash movements and joins: a transfer between "
        "two positions appears once on each (the same `transfer_id`).",
        parameters=[OpenApiParameter("type", str, many=True, explode=True,
                                     enum=EventType.values, description="Only these types."),
                    OpenApiParameter("since", OpenApiTypes.DATETIME,
                                     description="ISO 8601 time, inclusive."),
                    OpenApiParameter("until", OpenApiTypes.DATETIME,
                                     description="ISO 8601 time, exclusive."),
                    *PAGING],
        responses={200: page_of("PortfolioEventPage", {"events": EventSerializer(many=True)},
                                {"portfolio_id": serializers.CharField()}),
                   **NOT_FOUND, **read_errors()})
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        portfolio = selectors.portfolio_get(owner=request.user, portfolio_id=pk)
        filterset = EventFilter(request.query_params,
                                queryset=selectors.events_of_portfolio(portfolio))
        validate_filters(filterset)
        items, next_cursor = keyset_page(request, filterset.qs, fields=("id",))
        return Response({"portfolio_id": portfolio.id,
                         "events": EventSerializer(items, many=True).data,
                         "next": next_cursor})

    @extend_schema(summary="Deposit to or withdraw from the unallocated cash (Idempotency-Key "
                   "required)",
                   description="`amount` > 0 deposits, < 0 withdraws; a withdrawal that would "
                   "leave less than zero is 409 `insufficient_cash` and moves nothing. "
                   "Recorded as `cash_deposited` / `cash_withdrawn`.",
                   request=CashSerializer, parameters=[idempotency_header(required=True)],
                   responses={201: MovementSerializer, 200: MovementSerializer, **NOT_FOUND,
                              **write_errors(*CASH_ERRORS)})
    @action(detail=True, methods=["post"])
    def cash(self, request, pk=None):
        return cash_movement(request, lambda amount: services.portfolio_cash_move(
            owner=request.user, portfolio_id=pk, amount=amount))

    @extend_schema(summary="Move cash between the portfolio's accounts (Idempotency-Key "
                   "required)",
                   description='`from` and `to`: `"portfolio"` (its unallocated cash) or the '
                   "id of one of its positions; `amount` > 0. Refused with 409 "
                   "`insufficient_cash` rather than overdrawn; 409 "
                   "`position_not_in_portfolio` for another portfolio's position. Recorded as "
                   "`cash_transferred` (reason `manual`).",
                   request=TransferSerializer, parameters=[idempotency_header(required=True)],
                   responses={201: TransferOutSerializer, 200: TransferOutSerializer,
                              **errors((404, "portfolio_not_found or position_not_found")),
                              **write_errors((400, "same_account"),
                                             (409, "position_not_in_portfolio"),
                                             *CASH_ERRORS)})
    @action(detail=True, methods=["post"])
    def transfers(self, request, pk=None):
        cash_key(request)
        data = _valid(TransferSerializer, request)
        transfer_id, balances = services.portfolio_transfer(
            owner=request.user, portfolio_id=pk, source=data["from"], target=data["to"],
            amount=data["amount"])
        return Response({"transfer_id": transfer_id, "portfolio_id": pk,
                         "amount": data["amount"], "balances": balances},
                        status=status.HTTP_201_CREATED)

    def performance_of(self, request, pk, **span):
        portfolio = selectors.portfolio_get(owner=request.user, portfolio_id=pk)
        return (portfolio.id, f"{portfolio.name} {portfolio.id}: value and time-weighted return",
                portfolio_performance(portfolio, **span))
