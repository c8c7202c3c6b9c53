"""Positions in and out of JSON."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orders.models import Side
from positions.models import SLIPPAGE_BPS_MAX, Broker, DividendStatus, Sizing
from positions.strategy import rules
from volbal.api import StrictSerializer
from volbal.fields import Boolean, DecimalOut, Integer, Number


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 16,
                     "pattern": r"^[A-Za-z][A-Za-z0-9.\-]{0,15}$"})
class Ticker(serializers.CharField):
    """A ticker as sent (services.ticker_normalize upper-cases and checks it); its schema
    documents the accepted form."""

    def __init__(self, **kwargs):
        super().__init__(max_length=16, **kwargs)


def ratio(**kw):
    return Number(max_digits=12, decimal_places=8, required=False, **kw)


class StrategyFields(StrictSerializer):
    """Every strategy field of strategy.md, optional; ranges are checked by rules.config_errors."""

    trigger_pct = ratio(gt=0, lt=1, help_text="Fraction, 0 < τ < 1 (0.03 = 3 %).")
    rebalance_ratio = Number(max_digits=16, decimal_places=8, required=False, gt=0,
                             help_text="r > 0")
    sizing = serializers.ChoiceField(choices=Sizing.choices, required=False)
    fixed_fraction = ratio(gt=0, max_value=1, help_text="0 < f ≤ 1")
    guard_low = ratio(min_value=0, max_value=1, help_text="0 ≤ low < high")
    guard_high = ratio(min_value=0, max_value=1, help_text="low < high ≤ 1")
    min_notional = Number(max_digits=22, decimal_places=6, required=False, min_value=0,
                          help_text="≥ 0")
    commission_rate = ratio(min_value=0, lt=Decimal("0.05"), help_text="0 ≤ c < 0.05")
    max_orders_per_day = Integer(required=False, min_value=1, max_value=100000)
    fractional = Boolean(required=False)
    qty_step = Number(
        max_digits=24,
        decimal_places=8,
        required=False,
        allow_null=True,
        gt=0,
        help_text="> 0, or null for none",
    )
    withholding_tax_rate = ratio(min_value=0, lt=1, help_text="0 ≤ rate < 1")
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


class PositionCreateSerializer(StrategyFields):
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


class PositionUpdateSerializer(StrategyFields):
    pass


class PositionSerializer(serializers.Serializer):
    id = serializers.CharField()
    ticker = serializers.CharField()
    qty = DecimalOut()
    cash = DecimalOut()
    anchor_price = DecimalOut(allow_null=True)
    dividend_receivable = DecimalOut()
    trigger_pct = DecimalOut()
    rebalance_ratio = DecimalOut()
    sizing = serializers.CharField()
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
    price = serializers.SerializerMethodField(help_text="Latest stored price of the ticker.")
    value = serializers.SerializerMethodField(help_text="S·P + C + R at `price`.")
    weight = serializers.SerializerMethodField(help_text="Stock weight S·P / V at `price`.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def _valuation(self, obj):
        price = getattr(obj, "latest_price", None)
        if price is None:
            return None, None, None
        value, weight = rules.weight_of(
            qty=obj.qty, cash=obj.cash, receivable=obj.dividend_receivable, price=price
        )
        return price, value, weight

    def get_price(self, obj) -> float | None:
        return self._valuation(obj)[0]

    def get_value(self, obj) -> float | None:
        return self._valuation(obj)[1]

    def get_weight(self, obj) -> float | None:
        return self._valuation(obj)[2]


class EventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField()
    position_id = serializers.CharField()
    order_id = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    inputs = serializers.JSONField()
    outputs = serializers.JSONField()
    created_at = serializers.DateTimeField()


class EvaluateRequestSerializer(StrictSerializer):
    price = Number(max_digits=22, decimal_places=6, required=False, allow_null=True,
                   min_value=Decimal("0.000001"),
                   help_text="> 0. Omitted: the ticker's latest stored price.")
    submit = Boolean(required=False, default=False,
                     help_text="Also submit the proposal as an order (idempotent with a key).")


class ProposalSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=Side.choices)
    qty = DecimalOut()
    price = DecimalOut()
    notional = DecimalOut()
    commission = DecimalOut(help_text="Estimated: commission_rate × notional.")
    kind = serializers.ChoiceField(choices=("buy_trigger", "sell_trigger",
                                            "guardrail_rebalance"))
    raw_qty = DecimalOut(help_text="The size before caps and rounding.")
    trimmed = serializers.BooleanField()
    trimmed_by = serializers.CharField(allow_null=True,
                                       help_text="guardrail_high, guardrail_low, cash, holdings")
    post_trade_weight = DecimalOut()
    reason = serializers.CharField(help_text="A sentence a person can read.")


class BlockedProposalSerializer(ProposalSerializer):
    blocked_by = serializers.ChoiceField(choices=("below_min_notional", "daily_cap_reached",
                                                  "open_order"))


class EvaluationSerializer(serializers.Serializer):
    position_id = serializers.CharField()
    price = DecimalOut(allow_null=True)
    price_source = serializers.ChoiceField(choices=("request", "latest", "none"))
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
    price = DecimalOut(help_text="The price at which this side fires (6 decimals).")
    proposal = ProposalSerializer(help_text="What evaluating at that price proposes.")


class LadderSerializer(serializers.Serializer):
    position_id = serializers.CharField()
    anchor_price = DecimalOut(allow_null=True)
    buy = RungSerializer(allow_null=True, help_text="The next buy fires at this price or "
                         "below; null when no price buys.")
    sell = RungSerializer(allow_null=True, help_text="The next sell fires at this price or "
                          "above; null when no price sells.")
    blocked_by = serializers.ChoiceField(
        choices=("open_order", "daily_cap_reached"), allow_null=True,
        help_text="What would block an order at any price now (the rungs hold once it lifts).")
    message = serializers.CharField()


class PriceInSerializer(StrictSerializer):
    ticker = Ticker()
    price = Number(max_digits=22, decimal_places=6, min_value=Decimal("0.000001"))
    ts = serializers.DateTimeField(required=False,
                                   help_text="ISO 8601; default now. Naive times are UTC.")

    def validate_ticker(self, value: str) -> str:
        """Upper-cased and checked here, so a bad ticker in a list is named by its row."""
        from positions.services import ticker_normalize
        from volbal.errors import DomainError

        try:
            return ticker_normalize(value)
        except DomainError as exc:
            raise serializers.ValidationError(exc.message) from None


class PriceSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    price = DecimalOut()
    ts = serializers.DateTimeField()


class DividendAnnounceSerializer(StrictSerializer):
    ex_date = serializers.DateField(help_text="ISO date (YYYY-MM-DD).")
    pay_date = serializers.DateField(help_text="ISO date, on or after ex_date.")
    dps = Number(max_digits=22, decimal_places=6, gt=0, help_text="Dividend per share, > 0.")
    withholding_rate = Number(max_digits=12, decimal_places=8, required=False, min_value=0,
                              lt=1, help_text="0 ≤ rate < 1; default the position's.")


class DividendSerializer(serializers.Serializer):
    id = serializers.CharField()
    position_id = serializers.CharField()
    ex_date = serializers.DateField()
    pay_date = serializers.DateField()
    dps = DecimalOut()
    withholding_rate = DecimalOut()
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
