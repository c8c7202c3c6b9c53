"""The /v1/positions endpoints."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from events.models import ALERT_TYPES, EventType
from events.selectors import events_for_position
from orders.selectors import orders_for_position, position_view, with_known_price
from orders.serializers import (
    OrderAcceptedSerializer,
    OrderSerializer,
    OrderSubmitSerializer,
)
from orders.services import order_submit_for
from positions import selectors, services
from positions.dividends import dividend_announce
from positions.filters import AlertFilter, EventFilter, PositionFilter
from positions.performance import position_performance
from positions.performance_api import performance_views
from positions.portfolios import services as portfolio_services
from positions.portfolios.api import CashSerializer, MovementSerializer, cash_movement
from positions.serializers import (
    DividendAnnounceSerializer,
    DividendSerializer,
    EvaluateRequestSerializer,
    EvaluationSerializer,
    EventSerializer,
    LadderSerializer,
    PositionCreateSerializer,
    PositionSerializer,
    PositionUpdateSerializer,
    PriceConfirmedSerializer,
    PriceConfirmSerializer,
    PriceInSerializer,
    PriceSerializer,
    RestingOrdersSerializer,
    SplitRecordSerializer,
    SplitSerializer,
    not_configurable,
)
from positions.splits import price_confirm
from positions.workflows import evaluation
from positions.workflows.corporate_actions import split_announce
from volbal import clock
from volbal.api import (
    MissingBeforeNotAllowed,
    idempotency_key_required,
    keyset_page,
    validate_filters,
)
from volbal.errors import ApiError
from volbal.renderers import decimal_text as fmt
from volbal.schema import (
    PAGING,
    errors,
    idempotency_header,
    one_or_many,
    page_of,
    read_errors,
    write_errors,
)

NOT_FOUND = errors((404, "position_not_found"))
MAX_PRICES = 10_000
TIME = OpenApiTypes.DATETIME


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _required_key(request, what: str) -> str:
    """The request's Idempotency-Key, or 400 ``missing_idempotency_key``: a write that places
    an order must be safe to retry."""
    return idempotency_key_required(
        request, f"{what} needs an Idempotency-Key header (1-255 printable characters) so a "
        "retry cannot place a second order.")


def evaluation_body(result: evaluation.Evaluation) -> dict:
    position = result.position
    if result.decision is None:
        return {
            "position_id": position.id,
            "price": None,
            "price_source": result.price_source,
            "price_ts": None,
            "anchor_price": position.anchor_price,
            "anchor_set": False,
            "value": None,
            "weight": None,
            "proposals": [],
            "blocked": [],
            "reason": result.reason,
            "message": result.message,
            "order_id": None,
        }
    return {
        "position_id": position.id,
        "price_source": result.price_source,
        "price_ts": result.price_ts,
        **evaluation.decision_payload(result.decision),
        "order_id": result.order.id if result.order is not None else None,
    }


def resting_body(result: evaluation.PositionResting) -> dict:
    return {"position_id": result.position.id, "order_type": result.position.order_type,
            "broker": result.position.broker,
            "orders": OrderSerializer(result.orders, many=True).data,
            "ladder": [{"side": r.side, "qty": r.qty, "limit_price": r.limit,
                        "trigger_price": r.rung, "kind": r.kind} for r in result.rungs],
            "message": result.message}


def ladder_body(result: evaluation.PositionLadder) -> dict:
    position, lad = result.position, result.ladder

    def rung(r):
        if r is None:
            return None
        if r.always:  # no one price: the guardrail fires at every price (strategy/ladder.py)
            return {"price": None, "always": True, "proposal": None}
        return {"price": r.price, "always": False,
                "proposal": evaluation.proposal_payload(r.proposal)}

    parts = []
    if lad.buy is not None and lad.buy.always:
        parts.append("with no shares the position is under its low guardrail at every price: "
                     "it buys at any price (no shares: the guardrail buy fires wherever it comes "
                     "to at least one step of shares and the minimum notional)")
    elif lad.buy is not None:
        parts.append(f"the next buy ({fmt(lad.buy.proposal.qty)} shares) fires at "
                     f"{fmt(lad.buy.price)} or below")
    else:
        parts.append("no price buys")
    if lad.sell is not None and lad.sell.always:
        parts.append("with no cash it is over its high guardrail at every price: it sells at "
                     "any price (no cash: the guardrail sell fires wherever it comes to at least "
                     "one step of shares and the minimum notional)")
    elif lad.sell is not None:
        parts.append(f"the next sell ({fmt(lad.sell.proposal.qty)} shares) at "
                     f"{fmt(lad.sell.price)} or above")
    else:
        parts.append("no price sells")
    message = "; ".join(parts)
    message = message[0].upper() + message[1:] + "."
    if result.blocked_by == "open_order":
        message += " An order is still open: nothing fires until it is filled or cancelled."
    elif result.blocked_by == "daily_cap_reached":
        message += " Today's order cap is reached: nothing fires before the next trading day."
    elif result.blocked_by == "price_jump_unconfirmed":
        held = result.held_price
        message += (f" The latest price {fmt(held.price)} ({held.ts.isoformat()}) is an "
                    "unconfirmed jump: nothing is submitted until an operator confirms it "
                    "(POST /v1/prices/confirm) or records the split.")
    return {
        "position_id": position.id,
        "anchor_price": position.anchor_price,
        "buy": rung(lad.buy),
        "sell": rung(lad.sell),
        "blocked_by": result.blocked_by,
        "message": message,
    }


class PositionViewSet(MissingBeforeNotAllowed, performance_views("position"), viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="List your positions",
        parameters=[
            OpenApiParameter("ticker", str, description="Exact ticker (case-insensitive)."),
            OpenApiParameter("created_after", TIME, description="ISO 8601 time, inclusive."),
            OpenApiParameter("created_before", TIME, description="ISO 8601 time, exclusive."),
            *PAGING,
        ],
        responses={
            200: page_of("PositionPage", {"positions": PositionSerializer(many=True)}),
            **read_errors(),
        },
    )
    def list(self, request):
        filterset = PositionFilter(
            request.query_params, queryset=selectors.positions_of(owner=request.user)
        )
        validate_filters(filterset)
        items, next_cursor = keyset_page(request, with_known_price(filterset.qs))
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
            **errors((404, "portfolio_not_found")),
            **write_errors((409, "idempotency_signature_mismatch or target_weights_exceed_one")),
        },
    )
    def create(self, request):
        data = _valid(PositionCreateSerializer, request)
        position = portfolio_services.position_open(owner=request.user, **data)
        position = position_view(owner=request.user, position_id=position.id)
        return Response(PositionSerializer.represent(position), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="A position", responses={200: PositionSerializer, **NOT_FOUND, **read_errors()}
    )
    def retrieve(self, request, pk=None):
        position = position_view(owner=request.user, position_id=pk)
        return Response(PositionSerializer.represent(position))

    @extend_schema(
        summary="Change the strategy configuration",
        description="Only the strategy fields: the books (`qty`, `cash`, "
        "`dividend_receivable`, `anchor_price`) are not configuration and answer 400 "
        "`not_configurable` with what to do instead (orders and their fills; cash movements, "
        "`POST /v1/positions/{id}/cash`). `portfolio` and `target_weight` put the position in "
        "a portfolio (null leaves it); the target weights of a portfolio sum to at most 1 (409 "
        "`target_weights_exceed_one`).",
        request=PositionUpdateSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            200: PositionSerializer,
            **errors((404, "position_not_found or portfolio_not_found")),
            **write_errors((400, "not_configurable"),
                          (409, "idempotency_signature_mismatch or target_weights_exceed_one "
                           "or position_in_other_portfolio or membership_conflict")),
        },
    )
    def partial_update(self, request, pk=None):
        books = not_configurable(request.data)
        if books:
            raise ApiError("not_configurable", " ".join(books.values()), fields=books)
        data = _valid(PositionUpdateSerializer, request)
        portfolio_services.position_update(owner=request.user, position_id=pk,
                                           changes=dict(data))
        position = position_view(owner=request.user, position_id=pk)
        return Response(PositionSerializer.represent(position))

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
            OpenApiParameter(
                "alert", str, enum=["true", "false"],
                description="`true`: only alerts (" + ", ".join(sorted(ALERT_TYPES))
                + "); `false`: only the other events.",
            ),
            OpenApiParameter("since", TIME, description="ISO 8601 time, inclusive."),
            OpenApiParameter("until", TIME, description="ISO 8601 time, exclusive."),
            *PAGING,
        ],
        responses={
            200: page_of(
                "EventPage",
                {"events": EventSerializer(many=True)},
                {"position_id": serializers.CharField()},
            ),
            **NOT_FOUND,
            **read_errors(),
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
            **read_errors(),
        },
    )
    @extend_schema(
        methods=["POST"],
        summary="Submit an order (idempotent; Idempotency-Key required)",
        description="An order that could never fill is refused with 409 and creates nothing "
        "(it counts toward no daily cap, and its key is not remembered): a `SELL` of more than "
        "the shares held less what open sells still have to fill is `insufficient_qty`; a "
        "`BUY` whose cost (with the default commission) at the latest known price (the newer "
        "of the ticker's newest stored price and the position's last fill), added to what "
        "open buys still have to fill, exceeds the cash is `insufficient_cash`. With no price "
        "known a buy cannot be costed: it is accepted, and its fill is judged like any fill.",
        request=OrderSubmitSerializer,
        parameters=[idempotency_header(required=True)],
        responses={
            201: OrderAcceptedSerializer,
            200: OrderAcceptedSerializer,
            **NOT_FOUND,
            **write_errors(
                (400, "missing_idempotency_key"),
                (409, "idempotency_signature_mismatch or daily_order_cap_exceeded or "
                 "insufficient_qty or insufficient_cash"),
            ),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def orders(self, request, pk=None):
        if request.method == "GET":
            position = selectors.position_get(owner=request.user, position_id=pk)
            items, next_cursor = keyset_page(request, orders_for_position(position_id=position.id))
            return Response(
                {
                    "position_id": position.id,
                    "orders": OrderSerializer(items, many=True).data,
                    "next": next_cursor,
                }
            )
        key = _required_key(request, "Order submission")
        data = _valid(OrderSubmitSerializer, request)
        order, created = order_submit_for(
            owner=request.user,
            position_id=pk,
            side=data["side"],
            qty=data["qty"],
            idempotency_key=key,
            time_in_force=data["time_in_force"],
        )
        return Response(
            OrderAcceptedSerializer(order).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Evaluate the position: what the strategy would do now, and why",
        description='Body `{"price": P}`; without a price the ticker\'s latest stored price is '
        "used; with neither, 200 with no proposals and reason `no_price`. `proposals` holds only "
        "what may be submitted now; a computed proposal that a check blocks is under `blocked`. "
        '`"submit": true` also submits the proposal as an order, through the same checks as '
        "order submission; it then requires an `Idempotency-Key` (400 "
        "`missing_idempotency_key` without one), which makes the whole evaluation replayable. "
        "Without `submit` the key is optional.",
        request=EvaluateRequestSerializer,
        parameters=[idempotency_header(required=False)],
        responses={
            200: EvaluationSerializer,
            **NOT_FOUND,
            **write_errors(
                (400, "missing_idempotency_key"),
                (409, "idempotency_signature_mismatch or daily_order_cap_exceeded or "
                 "insufficient_qty or insufficient_cash or qty_out_of_range")),
        },
    )
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        data = _valid(EvaluateRequestSerializer, request)
        key = None
        if data["submit"]:
            key = _required_key(request, 'An evaluation with "submit": true')
        result = evaluation.position_evaluate(
            owner=request.user, position_id=pk, price=data.get("price"), submit=data["submit"],
            idempotency_key=key)
        return Response(evaluation_body(result))

    @extend_schema(
        summary="The next-trigger ladder: where the next buy and the next sell fire",
        description="From the position's state alone (shares, cash, receivable, anchor and "
        "strategy fields): the highest price at or below which the next buy fires and the "
        "lowest at or above which the next sell fires, each with the proposal evaluating there "
        "gives (after the caps, the rounding and the minimum notional). At any price strictly "
        "between the two, nothing fires. `blocked_by` names an open order, the day's cap or a "
        "latest price the price-jump guard holds, which block at every price. A side beyond "
        "its guardrail at every price (no shares, no cash) is `always`, with no price.",
        responses={200: LadderSerializer, **NOT_FOUND, **read_errors()},
    )
    @action(detail=True, methods=["get"])
    def ladder(self, request, pk=None):
        return Response(ladder_body(evaluation.position_ladder(owner=request.user,
                                                              position_id=pk)))

    def performance_of(self, request, pk, **span):
        position = selectors.position_get(owner=request.user, position_id=pk)
        return (position.id, f"{position.ticker} {position.id}: value and time-weighted return",
                position_performance(position, **span))

    @extend_schema(
        summary="The resting orders: the ladder's rungs as limit orders at the broker",
        description="With `order_type: limit` the trade cycle keeps the ladder's rungs "
        "resting at the position's broker as limit orders. `orders`: those open now (with their "
        "`rung`, `limit_price` and broker id); `ladder`: the rungs the ladder rests now (the "
        "next cycle replaces what differs). The manual broker rests nothing: `ladder` is what a "
        "person places by hand.",
        responses={200: RestingOrdersSerializer, **NOT_FOUND, **read_errors()},
    )
    @action(detail=True, methods=["get"], url_path="resting-orders")
    def resting_orders(self, request, pk=None):
        return Response(resting_body(evaluation.position_resting(owner=request.user,
                                                                 position_id=pk)))

    @extend_schema(
        summary="Deposit to or withdraw from the position's own cash (Idempotency-Key "
        "required)",
        description="`amount` > 0 deposits, < 0 withdraws; a withdrawal that would leave less "
        "than zero is 409 `insufficient_cash` and moves nothing. Not a trade: the anchor, the "
        "daily order cap and the reasons of proposals are unchanged; the weight sees the new "
        "cash at the next evaluation. Recorded as `cash_deposited` / `cash_withdrawn`.",
        request=CashSerializer, parameters=[idempotency_header(required=True)],
        responses={201: MovementSerializer, 200: MovementSerializer, **NOT_FOUND,
                   **write_errors((400, "missing_idempotency_key or invalid_amount"),
                                  (409, "insufficient_cash or balance_out_of_range or "
                                   "idempotency_signature_mismatch"))},
    )
    @action(detail=True, methods=["post"])
    def cash(self, request, pk=None):
        return cash_movement(request, lambda amount: portfolio_services.position_cash_move(
            owner=request.user, position_id=pk, amount=amount))

    @extend_schema(
        methods=["GET"],
        summary="The position's dividends, in the order announced",
        parameters=PAGING,
        responses={200: page_of("DividendPage", {"dividends": DividendSerializer(many=True)},
                                {"position_id": serializers.CharField()}),
                   **NOT_FOUND, **read_errors()},
    )
    @extend_schema(
        methods=["POST"],
        summary="Announce a dividend",
        description="It takes effect on the ex-date (entitlement = shares held at the start of "
        "the ex-date in the trading time zone; the net amount becomes receivable; the anchor "
        "drops by the dividend per share) and is paid on the pay-date, when "
        "`manage.py process_dividends` runs.",
        request=DividendAnnounceSerializer,
        parameters=[idempotency_header(required=False)],
        responses={201: DividendSerializer, 200: DividendSerializer, **NOT_FOUND,
                   **write_errors((409, "dividend_exists or idempotency_signature_mismatch"))},
    )
    @action(detail=True, methods=["get", "post"])
    def dividends(self, request, pk=None):
        if request.method == "GET":
            position = selectors.position_get(owner=request.user, position_id=pk)
            items, next_cursor = keyset_page(request, position.dividends.all())
            return Response({"position_id": position.id,
                             "dividends": DividendSerializer(items, many=True).data,
                             "next": next_cursor})
        data = dict(_valid(DividendAnnounceSerializer, request))
        rate = data.pop("withholding_tax_rate", None)
        dividend = dividend_announce(owner=request.user, position_id=pk, withholding_rate=rate,
                                     **data)
        return Response(DividendSerializer(dividend).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        summary="The position's splits, in the order recorded",
        parameters=PAGING,
        responses={200: page_of("SplitPage", {"splits": SplitSerializer(many=True)},
                                {"position_id": serializers.CharField()}),
                   **NOT_FOUND, **read_errors()},
    )
    @extend_schema(
        methods=["POST"],
        summary="Record a stock split",
        description="`ratio` new shares per old share (2: 2-for-1; 0.1: 1-for-10 reverse). On "
        "the effective date, before anything else that day and exactly once: shares × ratio "
        "(a fraction the position's step cuts off is paid in cash at the last price before "
        "that date ÷ ratio), anchor ÷ ratio, open orders' remaining quantity × ratio; "
        "dividends already announced keep their per-share amount. A split already due is "
        "applied at once (`split_applied`).",
        request=SplitRecordSerializer,
        parameters=[idempotency_header(required=False)],
        responses={201: SplitSerializer, 200: SplitSerializer, **NOT_FOUND,
                   **write_errors((409, "split_exists or split_out_of_range or "
                                   "idempotency_signature_mismatch"))},
    )
    @action(detail=True, methods=["get", "post"])
    def splits(self, request, pk=None):
        if request.method == "GET":
            position = selectors.position_get(owner=request.user, position_id=pk)
            items, next_cursor = keyset_page(request, position.splits.all())
            return Response({"position_id": position.id,
                             "splits": SplitSerializer(items, many=True).data,
                             "next": next_cursor})
        data = _valid(SplitRecordSerializer, request)
        split = split_announce(owner=request.user, position_id=pk, **data)
        return Response(SplitSerializer(split).data, status=status.HTTP_201_CREATED)


class PriceViewSet(viewsets.ViewSet):
    """Observed prices. The latest per ticker serves a price-less evaluation."""

    @extend_schema(
        summary="Record one price or many",
        request=one_or_many(PriceInSerializer, MAX_PRICES),
        description=f"A JSON object `{{ticker, price, ts}}` or a list of 1 to {MAX_PRICES:,} "
        "of them. A "
        "price already stored for the same ticker and time is replaced. Outside local mode "
        "this needs the `positions.add_price` permission.",
        parameters=[idempotency_header(required=False)],
        responses={
            # 200: a replay of a first 201 (the same Idempotency-Key and body).
            **dict.fromkeys((201, 200), inline_serializer(
                "PricesRecorded",
                {"recorded": serializers.IntegerField(), "prices": PriceSerializer(many=True)},
            )),
            **write_errors((403, "permission_denied"), (413, "too_many_prices"),
                     (409, "idempotency_signature_mismatch")),
        },
    )
    def create(self, request):
        if not (settings.LOCAL_MODE or request.user.has_perm("positions.add_price")):
            raise ApiError(
                "permission_denied",
                "Recording prices needs the positions.add_price permission.",
                status=403,
            )
        many = isinstance(request.data, list)
        if many and len(request.data) > MAX_PRICES:
            raise ApiError(
                "too_many_prices", f"At most {MAX_PRICES} prices per request.", status=413
            )
        if many and not request.data:
            raise ApiError(
                "validation_error",
                "The list of prices is empty.",
                fields={"non_field_errors": "Give at least one price."},
            )
        serializer = PriceInSerializer(data=request.data, many=many)
        serializer.is_valid(raise_exception=True)
        rows = serializer.validated_data if many else [serializer.validated_data]
        now = clock.now()
        rows = [{**row, "ts": row.get("ts") or now} for row in rows]
        stored = services.prices_record(rows=rows)
        return Response(
            {"recorded": len(stored), "prices": PriceSerializer(stored, many=True).data},
            status=status.HTTP_201_CREATED,
        )


    @extend_schema(
        summary="Confirm a price the price-jump guard held back",
        description="An operator confirms the stored price of `ticker` at `ts`: evaluations at "
        "it may submit again (`price_confirmed` on every position in the ticker). Outside "
        "local mode this needs the `positions.change_price` permission.",
        request=PriceConfirmSerializer,
        responses={200: PriceConfirmedSerializer,
                   **errors((404, "price_not_found")),
                   **write_errors((403, "permission_denied"))},
    )
    @action(detail=False, methods=["post"])
    def confirm(self, request):
        if not (settings.LOCAL_MODE or request.user.has_perm("positions.change_price")):
            raise ApiError("permission_denied", "Confirming a price needs the "
                           "positions.change_price permission.", status=403)
        data = _valid(PriceConfirmSerializer, request)
        price = price_confirm(ticker=data["ticker"], ts=data["ts"])
        return Response(PriceConfirmedSerializer(price).data)


class AlertViewSet(viewsets.ViewSet):
    """``GET /v1/alerts``: the alert events of every position and portfolio the caller owns."""

    @extend_schema(
        summary="Your alerts over every position and portfolio, oldest first",
        description="The events that are alerts (" + ", ".join(sorted(ALERT_TYPES)) + ") "
        "on your positions, each also in its position's `/events` (`?alert=true`), and on your "
        "portfolios themselves (an empty `position_id`), each also in the portfolio's `/events`.",
        parameters=[
            OpenApiParameter("type", str, many=True, explode=True, enum=sorted(ALERT_TYPES),
                             description="Only these alert types."),
            OpenApiParameter("position", str, description="Only this position's alerts."),
            OpenApiParameter("ticker", str, description="Exact ticker (case-insensitive)."),
            OpenApiParameter("since", TIME, description="ISO 8601 time, inclusive."),
            OpenApiParameter("until", TIME, description="ISO 8601 time, exclusive."),
            *PAGING,
        ],
        responses={200: page_of("AlertPage", {"alerts": EventSerializer(many=True)}),
                   **read_errors()},
        tags=["events"],
    )
    def list(self, request):
        filterset = AlertFilter(request.query_params,
                                queryset=selectors.alerts_of_owner(owner=request.user))
        validate_filters(filterset)
        items, next_cursor = keyset_page(request, filterset.qs, fields=("id",))
        return Response({"alerts": EventSerializer(items, many=True).data, "next": next_cursor})
