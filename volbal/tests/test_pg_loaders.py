"""volbal.pg_loaders: a PostgreSQL connection reads timestamptz with psycopg's own loader only
where that gives what Django's loader gives: the same instants with the same tzinfo object."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from volbal import pg_loaders

pytestmark = pytest.mark.django_db

TIMES = ["2026-12-07 21:59:11.004907+00", "2020-01-02 03:04:05.123456+05:00",
         "1999-12-31 23:59:59-08", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00",
         "2024-03-31 01:30:00+01", "2026-06-30 12:00:00.5+00"]


def read(cursor) -> list:
    cursor.execute("SELECT t::timestamptz FROM unnest(%s::text[]) AS t", [TIMES])
    return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_psycopgs_loader_reads_what_djangos_reads():
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(
            cursor.cursor.adapters.types["timestamptz"].oid, Format.TEXT)
        assert loader is pg_loaders.loader_for(connection) is not None
        ours = read(cursor)
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's, on this cursor only
        djangos = read(cursor)
    assert ours == djangos
    assert [(t.isoformat(), t.tzinfo) for t in ours] == \
        [(t.isoformat(), t.tzinfo) for t in djangos]
    assert all(t.tzinfo is dt.UTC for t in ours)


@pytest.mark.postgres
def test_a_connection_in_another_time_zone_keeps_djangos_loader():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
        try:
            assert pg_loaders.loader_for(connection) is None
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert pg_loaders.loader_for(connection) is not None


def test_another_zone_of_djangos_or_no_zone_keeps_djangos_loader():
    for zone in (None, ZoneInfo("UTC"), ZoneInfo("America/New_York")):  # no USE_TZ; zones
        assert pg_loaders.loader_for(SimpleNamespace(vendor="postgresql", timezone=zone)) is None
    if connection.vendor != "postgresql":
        assert pg_loaders.loader_for(connection) is None
