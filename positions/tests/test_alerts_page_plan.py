"""GET /v1/alerts with a portfolio's own alerts beside its positions' reads the owner's alerts
through the indexes, not the whole audit log.

Measured on PostgreSQL by what the query reads, not by time: the rows of the audit log the
alerts page's query visits (EXPLAIN ANALYZE's actual rows and rows removed by filter on the
events table), which does not depend on the machine's load."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.models import Event
from events.services import event_record
from positions.portfolios.services import portfolio_create

D = Decimal


def _events_rows_read(sql: str) -> int:
    """How many rows of the events table the query visits: its scans' rows returned and
    removed by their filter, times their loops."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    read, stack = 0, [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", []))
        if node.get("Relation Name") == Event._meta.db_table:
            read += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * \
                node.get("Actual Loops", 1)
    return read


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_alerts_page_reads_the_owners_alerts_not_the_whole_log(api, user, make_position):
    position = make_position(ticker="ZIM")
    portfolio_create(owner=user, name="Core", cash=D("100"))
    # the rest of the log, written before: other owners' positions' events and alerts
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} (position_id, portfolio_id, order_id, type, "
            "inputs, outputs, message, created_at, actor_source, actor_user_id, actor_name) "
            "SELECT 'pos_else' || (g % 20000), NULL, NULL, CASE WHEN g % 10 = 0 THEN "
            "'price_stale' ELSE 'evaluation' END, '{}', '{}', 'm', now(), 'cron', NULL, 'x' "
            "FROM generate_series(1, 200000) g")
    for _ in range(3):
        event_record(position_id=position.pk, type="price_stale", message="stale")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Event._meta.db_table}")

    with CaptureQueriesContext(connection) as queries:
        response = api.get("/v1/alerts")
    assert response.status_code == 200
    assert [a["position_id"] for a in response.json()["alerts"]] == [position.pk] * 3
    [page] = [q["sql"] for q in queries.captured_queries
              if f'FROM "{Event._meta.db_table}"' in q["sql"]]
    # the owner's three alerts are read through the owner's positions and portfolios (a few
    # rows), not found by filtering every event of every owner
    assert _events_rows_read(page) < 1000
