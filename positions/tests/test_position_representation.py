"""A position's body (GET /v1/positions/{id} and every answer that carries a position) is the
one REST framework's own serializer loop gives, byte for byte: PositionSerializer copies its
fields once per class (volbal.representation) instead of once per response."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework import serializers

from orders.selectors import position_view, with_known_price
from orders.services import order_fill, order_submit_for
from positions.models import Position, Price
from positions.serializers import PositionSerializer
from volbal import clock
from volbal.renderers import dumps_exact

pytestmark = pytest.mark.django_db


def reference(position) -> bytes:
    """REST framework's own loop over freshly copied fields."""
    return dumps_exact(serializers.Serializer.to_representation(PositionSerializer(), position))


def states(make_position, user):
    """Positions with no price, a stored price, a fill, and configured optional fields."""
    bare = make_position(ticker="AAA")
    stored = make_position(ticker="BBB", qty="3", anchor_price="9.5", qty_step="0.01",
                           fractional=False, sizing="fixed_fraction")
    Price.objects.create(ticker="BBB", price=Decimal("10.25"), ts=clock.now())
    filled = make_position(ticker="CCC", cash="1000000")
    Price.objects.create(ticker="CCC", price=Decimal("20"), ts=clock.now())
    order, _ = order_submit_for(owner=user, position_id=filled.id, side="BUY", qty=Decimal(2),
                                idempotency_key=None)
    order_fill(owner=user, order_id=order.id, price=Decimal("21.125"), filled_qty=Decimal(2))
    return [bare.id, stored.id, filled.id]


def test_each_state_as_rest_frameworks_loop_renders_it(make_position, user, api):
    for position_id in states(make_position, user):
        expected = reference(position_view(owner=user, position_id=position_id))
        assert dumps_exact(PositionSerializer(
            position_view(owner=user, position_id=position_id)).data) == expected
        # the class's one instance (what the views answer with) gives the same, each time
        for _ in range(2):
            assert dumps_exact(PositionSerializer.represent(
                position_view(owner=user, position_id=position_id))) == expected
        assert api.get(f"/v1/positions/{position_id}").content == expected


def test_a_list_as_rest_frameworks_loop_renders_it(make_position, user):
    states(make_position, user)
    positions = list(with_known_price(Position.objects.filter(owner=user)).order_by("id"))
    assert [dumps_exact(item) for item in PositionSerializer(positions, many=True).data] == \
        [reference(p) for p in with_known_price(Position.objects.filter(owner=user))
         .order_by("id")]


def test_a_read_copies_no_serializer_field(make_position, api, monkeypatch):
    """REST framework copies every declared field for each serializer instance; the position's
    are copied once per class (the first body), not once per response."""
    position = make_position()
    assert api.get(f"/v1/positions/{position.id}").status_code == 200
    copied = []
    original = serializers.Field.__deepcopy__

    def deepcopy(field, memo):
        copied.append(field)
        return original(field, memo)

    monkeypatch.setattr(serializers.Field, "__deepcopy__", deepcopy)
    assert api.get(f"/v1/positions/{position.id}").status_code == 200
    assert api.get("/v1/positions").status_code == 200
    assert copied == []
