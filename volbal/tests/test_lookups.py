"""``field__any`` (volbal/lookups.py) selects exactly what ``field__in`` selects, on SQLite
and PostgreSQL alike, and on PostgreSQL sends the list as one array parameter (a statement
text that does not grow with the list)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from events.models import Event
from positions.models import Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def positions(user, make_position):
    return [make_position(ticker=t) for t in ("ZIM", "ZIM", "IBM", "AAPL")]


def both(qs_of, values) -> tuple[list, list]:
    return (list(qs_of("in", values).order_by("pk").values_list("pk", flat=True)),
            list(qs_of("any", values).order_by("pk").values_list("pk", flat=True)))


@pytest.mark.parametrize("pick", [
    lambda ids: ids, lambda ids: ids[1:3], lambda ids: [ids[0], None, ids[0]],
    lambda ids: [], lambda ids: [None], lambda ids: ["P_nothing_like_it"], lambda ids: set(ids),
    lambda ids: tuple(ids[2:]),
])
def test_any_selects_what_in_selects(positions, pick):
    ids = [p.id for p in positions]
    plain, array = both(lambda op, v: Position.objects.filter(**{f"id__{op}": v}), pick(ids))
    assert array == plain


def test_any_on_a_foreign_key_a_number_a_date_a_string_and_a_subquery(positions):
    ids = [p.id for p in positions]
    events = Event.objects.all()
    assert events.count() >= 4  # each opening recorded one
    pks = list(events.order_by("pk").values_list("pk", flat=True))
    days = sorted({e.created_at for e in events})[:2]
    for name, values in [("position_id", ids[:2]), ("pk", pks[::2]), ("created_at", days),
                         ("position_id", Position.objects.filter(ticker="ZIM").values("id")),
                         ("type", ["position_created", "nothing"])]:
        plain, array = both(lambda op, v, name=name: Event.objects.filter(**{f"{name}__{op}": v}),
                            values)
        assert array == plain and plain, name
    assert not Event.objects.filter(created_at__any=[dt.datetime(2001, 1, 1, tzinfo=dt.UTC)])


def test_on_postgresql_the_list_is_one_parameter(positions):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's array parameter; elsewhere IN, as field__in")
    ids = [p.id for p in positions]
    sent = []

    def spy(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert len(Position.objects.filter(id__any=ids)) == 4
        assert len(Position.objects.filter(id__any=ids[:1])) == 1
    (first, params), (second, params_1) = sent
    assert first == second and '"id" = ANY(%s::varchar(32)[])' in first
    assert list(params) == [ids] and list(params_1) == [ids[:1]]
