"""Events and prices stored before actors were recorded are backfilled as ``legacy`` /
``unknown``; the audit log stays append-only through the migration (on SQLite it rebuilds the
table and recreates its triggers). Transactional: the flush that ends it lifts the triggers on
SQLite (the root conftest)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.system  # migrates the whole schema back and forth

BEFORE = [("events", "0003_event_types_and_payload_decimals"),
          ("positions", "0004_dividend_rate_label_withholding_tax_rate")]


@pytest.mark.django_db(transaction=True)
def test_old_events_and_prices_get_the_legacy_actor():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        user = old.get_model("auth", "User").objects.create(username="early")
        position = old.get_model("positions", "Position").objects.create(
            id="pos_early", owner_id=user.pk, ticker="ZIM", qty=0, cash=1, opening_qty=0,
            opening_cash=1)
        old.get_model("events", "Event").objects.create(
            position_id=position.pk, type="position_created", message="opened")
        old.get_model("positions", "Price").objects.create(
            ticker="ZIM", price=1, ts="2024-01-02T00:00:00Z")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)

    from events.models import Event
    from positions.models import Price

    event = Event.objects.get(position_id="pos_early")
    assert (event.actor_source, event.actor_user_id, event.actor_name) == (
        "legacy", None, "unknown")
    price = Price.objects.get(ticker="ZIM")
    assert (price.recorded_source, price.recorded_user_id, price.recorded_by) == (
        "legacy", None, "unknown")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).delete()
