"""The submission's serializers skip REST framework's per-instance deep copy of their fields
(orders.serializers.FlatFieldsCopied, volbal.representation.CompiledRepresentation): the same
validated data, the same errors, the same response bytes as REST framework's own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from orders.serializers import FlatFieldsCopied, OrderAcceptedSerializer, OrderSubmitSerializer
from orders.services import order_submit_for
from volbal.api import StrictSerializer
from volbal.api_renderers import DecimalJSONRenderer


def drf_twin(cls, base):
    """The same declared fields under REST framework's own get_fields (a deep copy each)."""
    twin = type(f"Drf{cls.__name__}", (base,), {
        name: getattr(cls, name) for name in vars(cls) if name.startswith("get_")
        and name != "get_fields"})
    twin._declared_fields = cls._declared_fields  # after the metaclass collected none
    return twin


@pytest.mark.parametrize("body", [
    {"side": "buy", "qty": 1.5}, {"side": "SELL", "qty": "2", "time_in_force": "day"},
    {"side": "HOLD", "qty": 1}, {"side": "BUY", "qty": 0}, {"side": "BUY", "qty": 1e-9},
    {"side": "BUY"}, {"side": "BUY", "qty": 1, "time_in_force": "ioc"},
    {"side": "BUY", "qty": 1, "sied": 1}, {},
])
def test_validation_is_rest_frameworks(body):
    ours, theirs = OrderSubmitSerializer(data=body), drf_twin(OrderSubmitSerializer,
                                                              StrictSerializer)(data=body)
    assert ours.is_valid() == theirs.is_valid()
    assert ours.errors == theirs.errors
    if not ours.errors:
        assert ours.validated_data == theirs.validated_data
    # each instance has its own copies, bound to it
    again = OrderSubmitSerializer(data=body)
    assert all(again.fields[n] is not ours.fields[n] and again.fields[n].parent is again
               for n in again.fields)


@pytest.mark.django_db
def test_the_accepted_body_is_rest_frameworks_byte_for_byte(user, make_position):
    position = make_position(cash="100000")
    render = DecimalJSONRenderer().render
    for n, qty in enumerate(("1", "1.50", "0.00000001", "123456.12345678")):
        order, _ = order_submit_for(owner=user, position_id=position.id, side="BUY",
                                    qty=Decimal(qty), idempotency_key=f"k{n}")
        theirs = drf_twin(OrderAcceptedSerializer, serializers.Serializer)(order).data
        assert render(OrderAcceptedSerializer(order).data) == render(theirs)


def test_a_nested_serializer_is_refused():
    class Nested(FlatFieldsCopied, serializers.Serializer):
        inner = OrderAcceptedSerializer()

    with pytest.raises(TypeError, match="plain fields only"):
        Nested(data={}).fields  # noqa: B018
