"""Positions in and out of JSON."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from events.actor import ActorSource
from events.models import EventType
from orders.models import Side
from orders.selectors import position_valuation
from positions.models import (
    SLIPPAGE_BPS_MAX,
    Broker,
    DividendStatus,
    OrderType,
    Sizing,
    SplitStatus,
    price_ts_error,
)
from positions.selectors import PriceSource
from positions.services import ticker_normalize
from positions.strategy import rules
from positions.strategy.rules import returns
from volbal.api import StrictSerializer, time_param
from volbal.errors import DomainError
from volbal.fields import Boolean, DecimalOut, Integer, Number
from volbal.representation import CompiledRepresentation


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 16,
                     "pattern": r"^[A-Za-z][A-Za-z0-9.\-]{0,15}$"})
class Ticker(serializers.CharField):
    """A ticker as sent (services.ticker_normalize upper-cases and checks it); its schema
    documents the accepted form."""

    def __init__(self, **kwargs):
        super().__init__(max_length=16, **kwargs)


def bounded(name: str, **kw):
    """Strategy field ``name`` with its bounds from the one table (rules.BOUNDS)."""
    return Number(**rules.field_kwargs(name), required=False, **kw)


class StrategyFields(StrictSerializer):
    # Every strategy field, optional, with its bounds: the one definition the position's
    # create and PATCH bodies and the backtest's body share (the rules check them again).

    trigger_pct = bounded("trigger_pct", help_text="Fraction, 0 < τ < 1 (0.03 = 3 %).")
    rebalance_ratio = bounded("rebalance_ratio", help_text="r > 0")
    sizing = serializers.ChoiceField(
        choices=Sizing.choices, required=False,
        help_text="How a trigger's order is sized: proportional (grows with the move from the "
        "anchor), original (anchor/price × rebalance_ratio × value; aggressive) or "
        "fixed_fraction (buy that fraction of the cash, sell that fraction of the shares).")
    fixed_fraction = bounded("fixed_fraction", help_text="0 < f ≤ 1")
    guard_low = bounded("guard_low", help_text="0 ≤ low < high")
    guard_high = bounded("guard_high", help_text="low < high ≤ 1")
    min_notional = bounded("min_notional", help_text="≥ 0")
    commission_rate = bounded("commission_rate", help_text="0 ≤ c < 0.05")
    max_orders_per_day = Integer(required=False, **rules.field_kwargs("max_orders_per_day"),
                                 help_text="Orders the position may create per trading day, "
                                 "1 to 100000.")
    fractional = Boolean(required=False,
                         help_text="Whether quantities may be fractional (false: whole shares).")
    qty_step = bounded("qty_step", help_text="> 0, or null for none")
    withholding_tax_rate = bounded("withholding_tax_rate", help_text="0 ≤ rate < 1")
    broker = serializers.ChoiceField(
        choices=Broker.choices, required=False,
        help_text="Where orders go: manual (fills typed in; the default) or paper (simulated "
                  "fills at the next recorded price).")
    slippage_bps = Number(max_digits=10, decimal_places=4, required=False, min_value=0,
                          lt=SLIPPAGE_BPS_MAX,
                          help_text="Paper fills this many basis points worse; 0 ≤ x < 10000.")
    auto_submit = Boolean(required=False,
                          help_text="The trade cycle submits the proposals (default false: "
                                    "they are only recorded).")
    order_type = serializers.ChoiceField(
        choices=OrderType.choices, required=False,
        help_text="market (the default): the cycle sends a market order once it sees a "
                  "trigger crossed; limit: the ladder's rungs rest at the broker as limit "
                  "orders (the strategy's \"Resting orders\"; a manual broker rests nothing, "
                  "GET /v1/positions/{id}/resting-orders shows what to place).")
    max_price_jump = bounded("max_price_jump",
                             help_text="0 < x ≤ 10: a price further than this fraction from "
                             "the position's reference price (the last price it accepted, or "
                             "its anchor), with no split explaining it, is held back until an "
                             "operator confirms it (0.25 = 25 %).")


class MembershipFields(StrictSerializer):
    # A position's portfolio and its target weight in it (docs/portfolios.md), beside the
    # strategy fields in the create and PATCH bodies.
    portfolio = serializers.CharField(max_length=32, required=False, allow_null=True,
                                      help_text="The portfolio (pfl_…) it belongs to; null: "
                                      "none (it leaves).")
    target_weight = Number(**rules.field_kwargs("target_weight"),
                           required=False,
                           help_text="Its target share of the portfolio's value, 0 ≤ w ≤ 1 "
                           "(Σ per portfolio ≤ 1), or null.")


class PositionCreateSerializer(StrategyFields, MembershipFields):
    ticker = Ticker(help_text="Upper-cased; a letter, then letters, digits, . -")
    qty = Number(max_digits=24, decimal_places=8, min_value=0)
    cash = Number(max_digits=22, decimal_places=6, min_value=0)
    anchor_price = Number(
        max_digits=22,
        decimal_places=6,
        required=False,
        allow_null=True,
        gt=0,
        help_text="> 0; for a holding brought over from elsewhere.",
    )


class PositionUpdateSerializer(StrategyFields, MembershipFields):
    pass


# The books a PATCH cannot set (they are not configuration: positions/books.py writes them as
# trades and corporate actions happen), each with what to do instead.
NOT_CONFIGURABLE = {
    "qty": "qty is not configuration: the shares change only by fills (submit an order, "
    "POST /v1/positions/{id}/orders, and record its fill, POST /v1/orders/{id}/fill, or let "
    "its broker fill it) and by splits.",
    "cash": "cash is not configuration: it changes by fills, dividends and cash movements: "
    "POST /v1/positions/{id}/cash {\"amount\": A} deposits (A > 0) or withdraws (A < 0), "
    "POST /v1/portfolios/{id}/transfers moves cash within a portfolio.",
    "dividend_receivable": "dividend_receivable is not configuration: it changes as dividends "
    "go ex and are paid (POST /v1/positions/{id}/dividends).",
    "anchor_price": "anchor_price is not configuration: the anchor moves with fills, "
    "dividends and splits (docs/strategy.md#live-loop).",
}


def not_configurable(data) -> dict[str, str]:
    """The fields of a PATCH body that are the position's books, not its configuration, each
    with the sentence that says what to do instead (empty when there are none)."""
    if not isinstance(data, dict):
        return {}
    return {name: why for name, why in NOT_CONFIGURABLE.items() if name in data}


NULLABLE_NUMBER = {"type": "number", "nullable": True}
# A time as every DateTimeField renders it (one instance: its output depends only on the value).
_TIME = serializers.DateTimeField()
PRICE_SOURCES_OF_POSITION = (*PriceSource.KNOWN, PriceSource.NONE)


class PositionSerializer(CompiledRepresentation, serializers.Serializer):
    # On every read of a position: fields copied once per class, not per response
    # (volbal.representation).

    id = serializers.CharField()
    ticker = serializers.CharField()
    qty = DecimalOut()
    cash = DecimalOut()
    anchor_price = DecimalOut(allow_null=True)
    dividend_receivable = DecimalOut()
    trigger_pct = DecimalOut()
    rebalance_ratio = DecimalOut()
    sizing = serializers.ChoiceField(choices=Sizing.choices)
    fixed_fraction = DecimalOut()
    guard_low = DecimalOut()
    guard_high = DecimalOut()
    min_notional = DecimalOut()
    commission_rate = DecimalOut()
    max_orders_per_day = serializers.IntegerField()
    fractional = serializers.BooleanField()
    qty_step = DecimalOut(allow_null=True)
    withholding_tax_rate = DecimalOut()
    broker = serializers.CharField()
    slippage_bps = DecimalOut()
    auto_submit = serializers.BooleanField()
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    max_price_jump = DecimalOut()
    portfolio = serializers.CharField(source="portfolio_id", allow_null=True)
    target_weight = DecimalOut(allow_null=True)
    price = serializers.SerializerMethodField(
        help_text="The latest known price: the newer of the ticker's newest stored price and "
        "the position's last fill, ÷ the ratios of the position's splits that took effect "
        "after it was observed; null when there is neither.")
    price_ts = serializers.SerializerMethodField(
        help_text="When `price` was observed: the stored price's `ts` or the fill's time.")
    price_source = serializers.SerializerMethodField(
        help_text="Where `price` comes from: `stored` (a recorded price), `fill` (the last "
        "fill) or `none`.")
    value = serializers.SerializerMethodField(help_text="S·P + C + R at `price`.")
    weight = serializers.SerializerMethodField(help_text="Stock weight S·P / V at `price`.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _valuation(self, obj) -> dict:
        cached = getattr(obj, "_valuation_cache", None)
        if cached is not None:
            return cached
        v = position_valuation(obj)
        out = {"price": v.price, "price_ts": v.ts, "price_source": v.source, "value": v.value,
               "weight": v.weight}
        obj._valuation_cache = out
        return out

    @extend_schema_field(NULLABLE_NUMBER)
    def get_price(self, obj) -> Decimal | None:
        return self._valuation(obj)["price"]

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_price_ts(self, obj) -> dt.datetime | None:
        ts = self._valuation(obj)["price_ts"]
        return None if ts is None else _TIME.to_representation(ts)

    @extend_schema_field({"type": "string", "enum": list(PRICE_SOURCES_OF_POSITION)})
    def get_price_source(self, obj) -> str:
        return self._valuation(obj)["price_source"]

    @extend_schema_field(NULLABLE_NUMBER)
    def get_value(self, obj) -> Decimal | None:
        return self._valuation(obj)["value"]

    @extend_schema_field(NULLABLE_NUMBER)
    def get_weight(self, obj) -> Decimal | None:
        return self._valuation(obj)["weight"]


class ActorSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=ActorSource.choices,
        help_text="Where the work came from: api (a client of this API), admin (an operator in "
        "the admin), cron (a scheduled command), worker (a background worker), system (a "
        "script or shell run by hand), legacy (recorded before events named their actor).")
    user_id = serializers.IntegerField(
        allow_null=True, help_text="The user who acted (api and admin); null for a command or "
        "a worker.")
    name = serializers.CharField(
        help_text="The user's username when user_id is set; otherwise what acted, e.g. "
        "command:evaluate_positions or worker:trade_cycle (unknown for legacy events).")


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EventType.choices)
    position_id = serializers.CharField(help_text="Empty for a portfolio's own event.")
    portfolio_id = serializers.CharField(allow_null=True, help_text="The portfolio of a "
                                         "portfolio's event or of a position's cash movement.")
    order_id = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    inputs = serializers.JSONField()
    outputs = serializers.JSONField()
    actor = ActorSerializer(help_text="Who acted: the admin's cancel and the owner's cancel "
                            "differ here.")
    created_at = serializers.DateTimeField()


class EvaluateRequestSerializer(StrictSerializer):
    price = Number(max_digits=22, decimal_places=6, required=False, allow_null=True,
                   min_value=Decimal("0.000001"),
                   help_text="> 0. Omitted: the ticker's latest stored price.")
    submit = Boolean(required=False, default=False,
                     help_text="Also submit the proposal as an order; needs an "
                     "Idempotency-Key header.")


class ProposalSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=Side.choices)
    qty = DecimalOut()
    price = DecimalOut()
    notional = DecimalOut()
    commission = DecimalOut(help_text="Estimated: commission_rate × notional.")
    kind = serializers.ChoiceField(choices=rules.KINDS)
    raw_qty = DecimalOut(help_text="The size before caps and rounding.")
    trimmed = serializers.BooleanField()
    trimmed_by = serializers.ChoiceField(choices=rules.TRIM_CAPS, allow_null=True,
                                         help_text="The cap that trimmed the size, if any.")
    post_trade_weight = DecimalOut()
    reason = serializers.CharField(help_text="A sentence a person can read.")


class BlockedProposalSerializer(ProposalSerializer):
    blocked_by = serializers.ChoiceField(choices=rules.BLOCKS)


class EvaluationSerializer(serializers.Serializer):
    position_id = serializers.CharField()
    price = DecimalOut(allow_null=True)
    price_source = serializers.ChoiceField(
        choices=PriceSource.ALL,
        help_text="Where `price` comes from: `request` (the body), `stored` (the ticker's "
        "newest recorded price), `fill` (the position's last fill, when newer) or `none`.")
    price_ts = serializers.DateTimeField(
        allow_null=True, help_text="When a `stored` or `fill` price was observed; null for "
        "`request` and `none`.")
    anchor_price = DecimalOut(allow_null=True)
    anchor_set = serializers.BooleanField()
    value = DecimalOut(allow_null=True)
    weight = DecimalOut(allow_null=True)
    proposals = ProposalSerializer(many=True, help_text="What may be submitted now.")
    blocked = BlockedProposalSerializer(many=True,
                                        help_text="A computed proposal a check blocked.")
    reason = serializers.CharField(help_text="Machine code of the outcome, e.g. no_trigger.")
    message = serializers.CharField()
    order_id = serializers.CharField(allow_null=True)


class RungSerializer(serializers.Serializer):
    price = DecimalOut(allow_null=True, help_text="The price at which this side fires (6 "
                       "decimals); null when it fires at any price (always).")
    always = serializers.BooleanField(
        help_text="The position is beyond this side's guardrail at every price (no shares: "
        "it buys; no cash: it sells), so no trigger price applies.")
    proposal = ProposalSerializer(allow_null=True, help_text="What evaluating at that price "
                                  "proposes; null when always (it depends on the price).")


class LadderSerializer(serializers.Serializer):
    position_id = serializers.CharField()
    anchor_price = DecimalOut(allow_null=True)
    buy = RungSerializer(allow_null=True, help_text="The next buy fires at this price or "
                         "below; null when no price buys.")
    sell = RungSerializer(allow_null=True, help_text="The next sell fires at this price or "
                          "above; null when no price sells.")
    blocked_by = serializers.ChoiceField(
        choices=("open_order", "daily_cap_reached", "price_jump_unconfirmed"), allow_null=True,
        help_text="What would block an order at any price now (the rungs hold once it lifts).")
    message = serializers.CharField()


class RestingRungSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=("BUY", "SELL"))
    qty = DecimalOut(help_text="Shares the rung trades (what evaluating at the limit proposes).")
    limit_price = DecimalOut(help_text="The limit: the ladder's trigger on the exchange's tick "
                             "(0.01 from 1, 0.0001 below), a buy rounded down, a sell up.")
    trigger_price = DecimalOut(help_text="The ladder's own trigger price (6 decimals).")
    kind = serializers.CharField(help_text="buy_trigger, sell_trigger or guardrail_rebalance.")


class RestingOrdersSerializer(serializers.Serializer):
    position_id = serializers.CharField()
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    broker = serializers.CharField()
    orders = serializers.ListField(
        child=serializers.DictField(), help_text="The rung orders open at the broker, as "
        "`GET /v1/orders/{id}` shows them (order_type limit, limit_price, rung).")
    ladder = RestingRungSerializer(many=True, help_text="The rungs the ladder rests now: what "
                                   "the next cycle keeps or places (with the manual broker, "
                                   "what a person would place at the broker by hand); none "
                                   "for an always or blocked rung.")
    message = serializers.CharField()


class PriceInSerializer(StrictSerializer):
    ticker = Ticker()
    price = Number(max_digits=22, decimal_places=6, min_value=Decimal("0.000001"))
    ts = serializers.DateTimeField(required=False,
                                   help_text="ISO 8601; default now. Naive times are UTC.")

    def validate_ticker(self, value: str) -> str:
        """Upper-cased and checked here, so a bad ticker in a list is named by its row."""
        try:
            return ticker_normalize(value)
        except DomainError as exc:
            raise serializers.ValidationError(exc.message) from None

    def validate_ts(self, value):
        """A time too far ahead is named by its row (the service refuses it too)."""
        error = price_ts_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value


class PriceSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    price = DecimalOut()
    ts = serializers.DateTimeField()


class DividendAnnounceSerializer(StrictSerializer):
    ex_date = serializers.DateField(help_text="ISO date (YYYY-MM-DD).")
    pay_date = serializers.DateField(help_text="ISO date, on or after ex_date.")
    dps = Number(max_digits=22, decimal_places=6, gt=0, help_text="Dividend per share, > 0.")
    withholding_tax_rate = Number(max_digits=12, decimal_places=8, required=False, min_value=0,
                              lt=1, help_text="0 ≤ rate < 1; default the position's.")


class DividendSerializer(serializers.Serializer):
    id = serializers.CharField()
    position_id = serializers.CharField()
    ex_date = serializers.DateField()
    pay_date = serializers.DateField()
    dps = DecimalOut()
    withholding_tax_rate = DecimalOut(source="withholding_rate",
                                      help_text="The rate withheld from this dividend.")
    status = serializers.ChoiceField(choices=DividendStatus.choices)
    entitlement_qty = DecimalOut(allow_null=True, help_text="Shares held at the start of the "
                                 "ex-date (set once effective).")
    gross_amount = DecimalOut(allow_null=True)
    net_amount = DecimalOut(allow_null=True)
    anchor_before = DecimalOut(allow_null=True)
    anchor_after = DecimalOut(allow_null=True)
    effective_at = serializers.DateTimeField(allow_null=True)
    paid_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


@extend_schema_field({"oneOf": [
    {"type": "string", "pattern": r"^\s*[0-9]+\s*:\s*[0-9]+\s*$", "example": "1:3"},
    {"type": "number", "minimum": float(rules.SPLIT_RATIO_MIN),
     "maximum": float(rules.SPLIT_RATIO_MAX)}]})
class SplitRatio(serializers.Field):
    """A split's ratio, exactly (docs/strategy.md#splits): ``"new:old"`` whole shares
    (``"1:3"``) or a JSON number that states it exactly (2, 0.5, 1.5); a Fraction inside."""

    def to_internal_value(self, data):
        if not isinstance(data, (str, int, float, Decimal)) or isinstance(data, bool):
            raise serializers.ValidationError('ratio is "new:old" (e.g. "1:3") or a number.')
        if isinstance(data, str) and ":" not in data:
            raise serializers.ValidationError('ratio as text is "new:old" (e.g. "1:3"); a '
                                              'decimal ratio is a JSON number.')
        try:
            return rules.split_ratio(data)
        except rules.RuleError as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value):
        return rules.split_ratio_text(value)


class SplitRecordSerializer(StrictSerializer):
    ratio = SplitRatio(help_text='New shares for old ones, exactly: "2:1" for a 2-for-1 split, '
                       '"1:3" for a 1-for-3 reverse split (whole numbers up to '
                       f'{rules.SPLIT_RATE_MAX}, not 1:1); a number that states it exactly '
                       "(2, 0.5, 1.5) is taken too.")
    effective_date = serializers.DateField(help_text="ISO date (YYYY-MM-DD) the split takes "
                                           "effect, before anything else that day.")


class SplitSerializer(serializers.Serializer):
    id = serializers.CharField()
    position_id = serializers.CharField()
    ratio = serializers.SerializerMethodField(help_text="New shares per old share as a number: "
                                              "exact when it is a decimal, else to 8 places "
                                              "(1:3 is 0.33333333); ratio_exact is exact.")
    ratio_exact = serializers.CharField(source="ratio_text", help_text='The ratio as stated, '
                                        'new:old in lowest terms ("1:3").')
    effective_date = serializers.DateField()
    status = serializers.ChoiceField(choices=SplitStatus.choices)
    qty_before = DecimalOut(allow_null=True)
    qty_after = DecimalOut(allow_null=True)
    cash_in_lieu = DecimalOut(allow_null=True, help_text="The fraction of a share cut off by "
                              "the position's step, paid at the last price before the "
                              "effective date divided by the ratio.")
    price_before = DecimalOut(allow_null=True)
    anchor_before = DecimalOut(allow_null=True)
    anchor_after = DecimalOut(allow_null=True)
    applied_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


    @extend_schema_field({"type": "number"})
    def get_ratio(self, split) -> Decimal:
        return rules.split_ratio_decimal(split.ratio)


class PriceConfirmSerializer(StrictSerializer):
    ticker = Ticker()
    ts = serializers.DateTimeField(help_text="The stored price's time.")


class PriceConfirmedSerializer(PriceSerializer):
    confirmed_at = serializers.DateTimeField()
    confirmed_by = serializers.CharField()
    confirmed_price = DecimalOut(help_text="The value confirmed: a confirmation binds the "
                                 "ticker, the time and the value.")


# --- Returns (docs/returns.md) ------------------------------------------------------------------


class RateReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=sorted(returns.REASONS),
                                   help_text="Why the return is null.")
    message = serializers.CharField()


class PerformanceDaySerializer(serializers.Serializer):
    session = serializers.DateField(help_text="The exchange session.")
    close = serializers.DateTimeField(help_text="Its close: the value is at the prices known "
                                      "then.")
    value = DecimalOut()
    flows = DecimalOut(help_text="Net cash in (+) or out (-) during the session.")
    time_weighted_return = DecimalOut(allow_null=True, help_text="From `since` to this close.")


class PerformanceSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    days = DecimalOut(help_text="The span in calendar days.")
    start_value = DecimalOut()
    end_value = DecimalOut()
    net_flows = DecimalOut(help_text="Deposits and transfers in less withdrawals and transfers "
                           "out over the span (a position's opening counts in).")
    time_weighted_return = DecimalOut(
        allow_null=True, help_text="Chain-linked over the pieces between flows, not annualised; "
        "a fraction to 10 places.")
    money_weighted_return = DecimalOut(
        allow_null=True, help_text="The annual rate (XIRR) of the flows and the end value; a "
        "fraction to 10 places.")
    reasons = serializers.DictField(
        child=RateReasonSerializer(),
        help_text="For each return that is null, why (`time_weighted_return`, "
        "`money_weighted_return`).")
    note = serializers.CharField(allow_null=True, help_text="E.g. several rates solve the "
                                 "flows: the one nearest to zero is given.")
    daily = PerformanceDaySerializer(many=True)


PERFORMANCE_PARAMETERS = [
    OpenApiParameter("since", str, description="A date (its start in the trading time zone) or "
                     "an ISO 8601 time with offset; default: the opening."),
    OpenApiParameter("until", str, description="A date (included: its end) or an ISO 8601 time "
                     "with offset; default and at the latest: now."),
]
PERFORMANCE_ERRORS = ((400, "invalid_query or invalid_span"), (409, "price_unknown"))
# the picture also answers 409 no_session_closed (a span without a session's close)
PICTURE_ERRORS = ((409, "price_unknown or no_session_closed"),)
_BINARY = {"type": "string", "format": "binary"}
# the responses of a performance's files, by extension: the workbook and the picture
PERFORMANCE_FILES = {
    "xlsx": {(200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"):
             OpenApiResponse(_BINARY, description="xlsx: a Summary sheet and a Daily sheet")},
    "png": {(200, "image/png"): OpenApiResponse(
        _BINARY, description="PNG: the value at each session's close with deposits and "
        "withdrawals marked, above the time-weighted return")},
}


def performance_span(request) -> dict:
    """``since`` and ``until`` of a performance request (400 ``invalid_query``)."""
    return {"since": time_param(request, "since", end_of_day=False),
            "until": time_param(request, "until", end_of_day=True)}


def performance_body(perf) -> dict:
    """The body of a performance answer (:class:`PerformanceSerializer`) of a
    :class:`positions.performance.Performance`."""
    f = perf.figures

    def rate(r):
        return None if r.value is None else r.value.quantize(returns.RATE_PLACES)

    reasons = {name: {"code": r.reason, "message": r.sentence}
               for name, r in (("time_weighted_return", f.time_weighted),
                               ("money_weighted_return", f.money_weighted)) if r.reason}
    return {
        "since": perf.since, "until": perf.until, "days": f.days,
        "start_value": f.start_value, "end_value": f.end_value, "net_flows": f.net_flows,
        "time_weighted_return": rate(f.time_weighted),
        "money_weighted_return": rate(f.money_weighted),
        "reasons": reasons, "note": f.money_weighted.note,
        "daily": [{"session": d.session, "close": d.close, "value": d.value, "flows": d.flows,
                   "time_weighted_return": None if d.time_weighted_return is None
                   else d.time_weighted_return.quantize(returns.RATE_PLACES)}
                  for d in perf.daily],
    }
