"""volbal.rows.insert_one: rows written ``after=`` never stay without the row they were for
(found by the review of issue 24's speed work)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from orders.models import IdempotencyRecord, Order
from volbal.rows import insert_one

pytestmark = pytest.mark.django_db


def test_insert_one_after_with_a_conflict_leaves_nothing_half_written(make_position):
    position = make_position()
    scope = {"identity": "user:1", "method": "POST", "path": "/v1/x", "key": "k"}
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    insert_one(IdempotencyRecord(**scope, fingerprint="f" * 64, expires_at=expires))
    order = Order(position=position, side="BUY", qty=Decimal(1), idempotency_key="k9",
                  trading_day=dt.date(2026, 1, 2))
    try:
        got = insert_one(IdempotencyRecord(**scope, fingerprint="g" * 64, expires_at=expires),
                         unless_conflict=tuple(scope), after=(order,))
    except (ValueError, TypeError, NotImplementedError):
        got = "refused"
    assert got is None or got == "refused"
    assert not Order.objects.filter(pk=order.pk).exists(), "the after row was written alone"
