"""Orders and fills in and out of JSON."""

from __future__ import annotations

import copy
from decimal import Decimal

from rest_framework import serializers

from orders.models import OrderStatus, Side
from positions.models import OrderType
from volbal.api import StrictSerializer
from volbal.fields import CaseInsensitiveChoice, DecimalOut, Number
from volbal.representation import CompiledRepresentation


class FlatFieldsCopied:
    # A serializer of plain fields (no nested serializer) whose instance takes a shallow copy
    # of each declared field, not DRF's deep copy: DRF re-runs every field's ``__init__`` per
    # serializer instance (its ``__deepcopy__``), the largest cost of a submission's validation
    # (bench/orders_load.py; its response is a :class:`CompiledRepresentation`, which copies
    # nothing per instance but serves output only). The copy is still the instance's own
    # (``bind`` sets its name and parent on the copy only); what it shares with the declared
    # field (choices, validators, error messages) no field changes after its ``__init__``. A
    # nested serializer binds its child at its own ``__init__`` and would share it: refused.
    # (A comment, not a docstring: drf-spectacular describes a serializer with the first
    # docstring of its bases, and a mixin put first would describe the API's schemas.)

    def get_fields(self):
        fields = {}
        for name, field in self._declared_fields.items():
            if isinstance(field, serializers.BaseSerializer):
                raise TypeError(f"{type(self).__name__}.{name}: FlatFieldsCopied takes plain "
                                "fields only (a nested serializer would share its child)")
            fields[name] = copy.copy(field)
        return fields


class OrderSubmitSerializer(FlatFieldsCopied, StrictSerializer):
    side = CaseInsensitiveChoice(choices=Side.choices,
                                 help_text="BUY or SELL, in any case (answered upper case).")
    qty = Number(
        max_digits=24,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        help_text="Shares, > 0, at most 8 decimal places.",
    )
    time_in_force = serializers.ChoiceField(
        choices=("gtc", "day"), required=False, default=None,
        help_text="gtc (the default, manual and paper brokers): open until filled or "
                  "cancelled; day (the default and the only choice for alpaca): expires at the "
                  "close of the exchange session it was placed in (order_expired).")


class OrderAcceptedSerializer(CompiledRepresentation, serializers.Serializer):
    order_id = serializers.CharField(source="id")
    accepted = serializers.SerializerMethodField()
    position_id = serializers.CharField()
    side = serializers.ChoiceField(choices=Side.choices)
    qty = DecimalOut()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    created_at = serializers.DateTimeField()

    def get_accepted(self, obj) -> bool:
        return True


class FillRequestSerializer(StrictSerializer):
    price = Number(max_digits=22, decimal_places=6, min_value=Decimal("0.000001"), help_text="> 0")
    filled_qty = Number(
        max_digits=24, decimal_places=8, min_value=Decimal("0.00000001"), help_text="> 0"
    )
    commission = Number(
        max_digits=22,
        decimal_places=6,
        min_value=0,
        required=False,
        help_text="≥ 0; default commission_rate × qty × price.",
    )


class FillSerializer(serializers.Serializer):
    id = serializers.CharField()
    filled_qty = DecimalOut(source="qty", help_text="Shares this fill executed.")
    price = DecimalOut()
    commission = DecimalOut()
    broker_fill_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class OrderSerializer(serializers.Serializer):
    order_id = serializers.CharField(source="id")
    position_id = serializers.CharField()
    side = serializers.ChoiceField(choices=Side.choices)
    qty = DecimalOut()
    filled_qty = DecimalOut()
    remaining_qty = DecimalOut()
    avg_fill_price = DecimalOut(allow_null=True)
    commission_paid = DecimalOut()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    source = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)
    time_in_force = serializers.CharField()
    order_type = serializers.ChoiceField(
        choices=OrderType.choices, help_text="market, or limit at `limit_price`.")
    limit_price = DecimalOut(allow_null=True, help_text="A limit order's price (on the tick); "
                             "null for a market order.")
    rung = serializers.ChoiceField(
        choices=Side.choices, allow_null=True,
        help_text="The ladder's rung a resting limit order stands for (BUY or SELL; "
        "the strategy's \"Resting orders\"); null for any other order.")
    broker = serializers.CharField()
    broker_order_id = serializers.CharField(allow_null=True)
    cancel_requested_at = serializers.DateTimeField(
        allow_null=True, help_text="When a cancel was asked of the broker holding the order "
        "(it ends when the broker reports it ended).")
    trading_day = serializers.DateField(help_text="The exchange session the order counts in.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class OrderDetailSerializer(OrderSerializer):
    fills = FillSerializer(many=True)


class FillResultSerializer(serializers.Serializer):
    order_id = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    filled_qty = DecimalOut()
    remaining_qty = DecimalOut()
    avg_fill_price = DecimalOut()
    position_id = serializers.CharField()
    position_qty = DecimalOut()
    position_cash = DecimalOut()
    anchor_price = DecimalOut()
    fill = FillSerializer()
