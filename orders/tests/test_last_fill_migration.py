"""Positions with fills and applied splits from before the known price's columns get them
filled in by the migrations (positions/0017, orders/0009): the newest fill's price and time,
the latest applied split's date; a position with neither keeps them empty."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.system  # migrates the schema back and forth

BEFORE = [("orders", "0006_order_placing_at"), ("positions", "0016_split_exact_ratio")]
T0 = dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC)


@pytest.mark.django_db(transaction=True)
def test_the_last_fill_and_the_latest_split_are_filled_in():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        user = old.get_model("auth", "User").objects.create(username="early")
        Position = old.get_model("positions", "Position")
        traded, quiet = (Position.objects.create(
            id=pid, owner_id=user.pk, ticker="ZIM", qty=0, cash=1000, opening_qty=0,
            opening_cash=1000) for pid in ("pos_traded", "pos_quiet"))
        order = old.get_model("orders", "Order").objects.create(
            id="ord_early", position_id=traded.pk, side="BUY", qty=3, trading_day=T0.date())
        Fill = old.get_model("orders", "Fill")
        for n, (price, at) in enumerate([(D("10"), T0), (D("12.5"), T0 + dt.timedelta(hours=1)),
                                         (D("11"), T0 - dt.timedelta(hours=1))]):
            fill = Fill.objects.create(id=f"fil_{n}", order_id=order.pk, qty=1, price=price,
                                       commission=0)
            Fill.objects.filter(pk=fill.pk).update(created_at=at)
        Split = old.get_model("positions", "Split")
        for day, status in [(dt.date(2026, 2, 2), "applied"), (dt.date(2026, 2, 20), "applied"),
                            (dt.date(2026, 4, 1), "announced")]:
            Split.objects.create(
                id=f"spl_{day:%m%d}", position_id=traded.pk, new_rate=2, old_rate=1,
                effective_date=day, status=status,
                **({"applied_at": T0, "qty_after": 0, "cash_in_lieu": 0, "step": D("1e-8")}
                   if status == "applied" else {}))
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)

    from positions.models import Position

    traded = Position.objects.get(pk="pos_traded")
    assert (traded.last_fill_price, traded.last_fill_at, traded.last_split_date) == (
        D("12.5"), T0 + dt.timedelta(hours=1), dt.date(2026, 2, 20))
    quiet = Position.objects.get(pk="pos_quiet")
    assert (quiet.last_fill_price, quiet.last_fill_at, quiet.last_split_date) == (
        None, None, None)
