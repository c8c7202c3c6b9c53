"""volbal.rows.fetch_one reads exactly what the ORM reads (every field, its Python type), on
SQLite and PostgreSQL alike."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.forms.models import model_to_dict
from rest_framework.authtoken.models import Token

from orders.models import IdempotencyRecord, Order
from orders.services import order_submit_for
from positions.models import Position
from volbal.rows import fetch_one

pytestmark = pytest.mark.django_db


def every_field(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def same_as_orm(instance) -> None:
    model = type(instance)
    fetched = fetch_one(model, **{model._meta.pk.attname: instance.pk})
    from_orm = model.objects.get(pk=instance.pk)
    assert every_field(fetched) == every_field(from_orm)
    for name, value in every_field(from_orm).items():
        assert type(getattr(fetched, name)) is type(value), name
    assert fetched._state.adding is False and fetched._state.db == "default"


def test_a_position_reads_as_the_orm_reads_it(make_position):
    position = make_position(qty="12.5", cash="1000.123456", anchor_price="99.5", qty_step="0.5",
                             fractional=False)
    same_as_orm(position)
    fetched = fetch_one(Position, id=position.id)
    assert fetched.qty == Decimal("12.5") and fetched.anchor_price == Decimal("99.5")
    assert fetched.fractional is False and isinstance(fetched.created_at, dt.datetime)
    assert fetched.created_at.tzinfo is not None
    assert model_to_dict(fetched) == model_to_dict(Position.objects.get(pk=position.id))


def test_null_and_boolean_columns(make_position):
    same_as_orm(make_position())  # no anchor, no qty_step, fractional


def test_orders_records_users_and_tokens(user, make_position):
    position = make_position()
    order, _ = order_submit_for(owner=user, position_id=position.id, side="BUY",
                                qty=Decimal("1.25"), idempotency_key="k-1")
    same_as_orm(order)
    record = IdempotencyRecord.objects.create(
        identity="user:1", method="POST", path="/v1/x", key="k", fingerprint="f" * 64,
        status_code=201, response_body=b'{"a": 1}',
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    same_as_orm(record)
    assert bytes(fetch_one(IdempotencyRecord, id=record.id).response_body) == b'{"a": 1}'
    same_as_orm(user)
    token = Token.objects.create(user=user)
    same_as_orm(token)


def test_several_columns_and_no_match(user, other_user, make_position):
    position = make_position()
    assert fetch_one(Position, id=position.id, owner_id=user.pk).pk == position.pk
    assert fetch_one(Position, id=position.id, owner_id=other_user.pk) is None
    assert fetch_one(Order, position_id=position.id, idempotency_key="none") is None
    assert fetch_one(get_user_model(), id=-1) is None


def test_a_quote_in_a_value_is_a_value(make_position):
    position = make_position()
    assert fetch_one(Position, id=f"{position.id}' OR '1'='1") is None


def test_for_update_inside_a_transaction(make_position):
    position = make_position()
    with transaction.atomic():
        assert fetch_one(Position, for_update=True, id=position.id).pk == position.pk


def test_insert_one_writes_what_save_writes(make_position):
    from events.models import Event
    from volbal.rows import insert_one

    position = make_position()
    event = insert_one(Event(position_id=position.id, type="evaluation", message="m",
                             inputs={"price": Decimal("101.25"), "nested": [1, None]},
                             outputs={}))
    assert isinstance(event.pk, int) and event._state.adding is False
    stored = Event.objects.get(pk=event.pk)
    assert stored.inputs == {"price": 101.25, "nested": [1, None]}
    assert (stored.type, stored.message, stored.created_at) == ("evaluation", "m",
                                                                event.created_at)
    following = Event.objects.create(position_id=position.id, type="evaluation", message="n")
    assert following.pk > event.pk  # the same sequence as the ORM's inserts

    order = insert_one(Order(position=position, side="BUY", qty=Decimal("2.5"),
                             idempotency_key="k", trading_day=dt.date(2026, 1, 2)))
    stored = Order.objects.get(pk=order.pk)
    assert every_field(stored) == every_field(order)
    assert stored.created_at is not None and stored.created_at == order.created_at
    assert stored.status == "submitted" and stored.filled_qty == 0


def test_insert_one_after_writes_the_rows_first_in_the_same_statement(make_position):
    """The order and the event that refers to it (orders.services.order_submit): on PostgreSQL
    one statement (a data-modifying WITH, the event's gate still taken), each row as
    insert_one alone writes it; elsewhere the same rows one by one. A row numbered by the
    database cannot go first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from events.models import Event
    from events.services import event_record
    from volbal.rows import deferred_inserts, insert_one

    position = make_position()
    order = Order(position=position, side="BUY", qty=Decimal("2.5"), idempotency_key="k",
                  trading_day=dt.date(2026, 1, 2))
    with CaptureQueriesContext(connection) as ctx:
        event = event_record(position_id=position.id, order_id=order.id, type="order_submitted",
                             message="m", inputs={"qty": Decimal("2.5")}, inserted_first=(order,))
    postgres = connection.vendor == "postgresql"
    assert len(ctx.captured_queries) == (1 if postgres else 2)
    if postgres:
        sql = ctx.captured_queries[0]["sql"]
        assert sql.startswith("WITH a0 AS (INSERT INTO") and "pg_advisory_xact_lock" in sql
    assert order._state.adding is False and event._state.adding is False
    stored = Order.objects.get(pk=order.pk)
    assert every_field(stored) == every_field(order) and stored.created_at is not None
    stored_event = Event.objects.get(pk=event.pk)
    assert (stored_event.order_id, stored_event.inputs) == (order.id, {"qty": 2.5})

    with transaction.atomic(), deferred_inserts() as rows:
        later = Order(position=position, side="SELL", qty=Decimal(1), idempotency_key="k2",
                      trading_day=dt.date(2026, 1, 2))
        event_record(position_id=position.id, order_id=later.id, type="order_submitted",
                     message="n", inserted_first=(later,))
        assert [type(row) for row, _gate in rows] == [Order, Event]
    assert Event.objects.get(order_id=later.id).message == "n"

    with pytest.raises(ValueError, match="numbered by the database"):
        insert_one(Order(position=position, side="BUY", qty=Decimal(1),
                         trading_day=dt.date(2026, 1, 2)),
                   after=(Event(position_id=position.id, type="evaluation", message="x"),))


def test_count_and_update_one_do_what_the_orm_does(user, make_position):
    from volbal.rows import count, update_one

    position = make_position()
    for key in ("a", "b"):
        order_submit_for(owner=user, position_id=position.id, side="BUY", qty=Decimal(1),
                         idempotency_key=key)
    today = Order.objects.first().trading_day
    assert count(Order, position_id=position.id, trading_day=today) == 2
    assert count(Order, position_id=position.id, trading_day=today - dt.timedelta(days=1)) == 0
    record = IdempotencyRecord.objects.create(
        identity="user:1", method="POST", path="/v1/x", key="k", fingerprint="f" * 64,
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert update_one(IdempotencyRecord, record.pk, status_code=201,
                      response_body=b'{"ok": true}') == 1
    record.refresh_from_db()
    assert (record.status_code, bytes(record.response_body)) == (201, b'{"ok": true}')
    assert update_one(IdempotencyRecord, -1, status_code=200) == 0


def test_insert_one_unless_conflict_inserts_nothing_over_an_existing_row():
    from volbal.rows import insert_one

    def record(fingerprint):
        return IdempotencyRecord(identity="user:1", method="POST", path="/v1/x", key="k",
                                 fingerprint=fingerprint,
                                 expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))

    scope = ("identity", "method", "path", "key")
    first = insert_one(record("a" * 64), unless_conflict=scope)
    assert first is not None and isinstance(first.pk, int)
    assert insert_one(record("b" * 64), unless_conflict=scope) is None
    assert list(IdempotencyRecord.objects.values_list("pk", "fingerprint")) == [(first.pk,
                                                                                 "a" * 64)]


def test_deferred_inserts_write_at_the_end_and_a_failed_inner_scope_keeps_nothing(make_position):
    """The trade cycle's batches: rows collected, a failed position's rows dropped, the rest
    written at the outermost scope's end exactly as insert_one writes them."""
    from events.models import Event
    from events.services import event_record
    from volbal.rows import deferred_inserts

    position = make_position()
    before = Event.objects.count()
    with transaction.atomic(), deferred_inserts():
        event_record(position_id=position.id, type="evaluation", message="kept 1",
                     inputs={"price": Decimal("1.5")})
        with pytest.raises(ZeroDivisionError), deferred_inserts():
            event_record(position_id=position.id, type="evaluation", message="dropped")
            raise ZeroDivisionError
        with deferred_inserts():
            event_record(position_id=position.id, type="evaluation", message="kept 2")
        assert Event.objects.count() == before  # nothing written yet
    kept = list(Event.objects.filter(position_id=position.pk, type="evaluation").order_by("id"))
    assert [e.message for e in kept] == ["kept 1", "kept 2"]
    assert kept[0].inputs == {"price": 1.5} and kept[0].actor_name and kept[0].created_at


def test_update_many_is_each_rows_update(make_position):
    from volbal.rows import update_many

    a, b = make_position(cash="100"), make_position(cash="200")
    moment = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)
    assert update_many(Position, {a.id: {"cash": Decimal("1.25"), "evaluated_price_ts": moment},
                                  b.id: {"cash": Decimal("2.5"), "evaluated_price_ts": None}},
                       ("cash", "evaluated_price_ts")) == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.cash, a.evaluated_price_ts) == (Decimal("1.25"), moment)
    assert (b.cash, b.evaluated_price_ts) == (Decimal("2.5"), None)


def test_a_batch_sends_each_value_as_its_field_prepares_it_for_saving(make_position):
    """The batch's arrays (volbal.rows._unnest) pass a str or None of a plain CharField or
    TextField as it is, without the field's three calls: the value its get_db_prep_save gives,
    for every column of the rows the trade cycle writes (JSON: the text json.dumps gives with
    the field's encoder); a lazy string still goes through it."""
    import json

    from django.db import connection
    from django.utils.translation import gettext_lazy

    from events.models import Event
    from orders.models import OrderStatus
    from volbal.rows import _insert_shape, _text_as_is, _unnest

    position = make_position()
    order, _ = order_submit_for(owner=position.owner, position_id=position.id, side="BUY",
                                qty=Decimal("1"), idempotency_key="k-unnest")
    event = Event.objects.filter(position_id=position.id).first()
    assert _text_as_is(type(Position._meta.get_field("ticker")))
    assert _text_as_is(type(Event._meta.get_field("message")))
    assert not _text_as_is(type(Position._meta.get_field("cash")))
    for instance in (position, order, event):
        model = type(instance)
        _sql, fields, _auto, _returning = _insert_shape(model, connection.vendor, (), None)
        rows = [[f.pre_save(instance, True) for f in fields],
                [None if f.null else f.pre_save(instance, True) for f in fields]]
        _select, params = _unnest(fields, rows)
        for f, column, sent in zip(fields, zip(*rows, strict=True), params, strict=True):
            if f.get_internal_type() == "JSONField":  # as text, cast back to jsonb
                expected = [None if v is None else json.dumps(v, cls=f.encoder) for v in column]
            else:
                expected = [f.get_db_prep_save(v, connection) for v in column]
            assert sent == expected and list(map(type, sent)) == list(map(type, expected)), \
                f.name
    ticker = Position._meta.get_field("ticker")
    lazy, choice = gettext_lazy("ZIM"), OrderStatus.SUBMITTED
    (_select, (sent,)) = _unnest([ticker], [[lazy], [choice], [None], ["IBM"]])
    assert sent == ["ZIM", choice, None, "IBM"] and type(sent[0]) is str
    assert sent[1] is ticker.get_db_prep_save(choice, connection)


# --- fetch_one's kept cursor (volbal.rows._first_row) ----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_read_after_the_connection_was_closed_opens_it_again(make_position):
    from django.db import connection

    position = make_position()
    assert not connection.queries_logged  # the kept cursor's path, not Django's
    assert fetch_one(Position, id=position.id).pk == position.id
    connection.close()
    assert fetch_one(Position, id=position.id).pk == position.id
    assert connection.connection is not None


@pytest.mark.postgres
def test_a_refused_read_raises_djangos_error_and_breaks_the_transaction(make_position):
    from django.db import DataError
    from django.db.transaction import TransactionManagementError

    position = make_position()
    with transaction.atomic():
        with pytest.raises(DataError), transaction.atomic(savepoint=False):
            fetch_one(get_user_model(), id="not a number")  # a bigint column: refused
        with pytest.raises(TransactionManagementError):  # as the ORM refuses it
            fetch_one(Position, id=position.id)
        with pytest.raises(TransactionManagementError):
            Position.objects.filter(id=position.id).first()
    assert fetch_one(Position, id=position.id).pk == position.id


def test_the_reads_are_logged_while_queries_are(make_position, django_assert_num_queries):
    position = make_position()
    with django_assert_num_queries(1) as captured:
        fetch_one(Position, id=position.id)
    assert "positions_position" in captured.captured_queries[0]["sql"]


def test_one_rows_values_are_what_save_sends(make_position):
    """insert_one's values (volbal.rows._prepared, which sends a text field's str or None as
    it is) are each field's get_db_prep_save, of the same type, for every column of the rows a
    submission writes; a choice stays the choice and a lazy string becomes a str."""
    from django.db import connection
    from django.utils.translation import gettext_lazy

    from events.models import Event
    from volbal.rows import _insert_shape, _prepared

    position = make_position()
    order, _ = order_submit_for(owner=position.owner, position_id=position.id, side="BUY",
                                qty=Decimal("1"), idempotency_key="k-one")
    event = Event.objects.filter(position_id=position.id).first()
    record = IdempotencyRecord(identity="user:1", method="POST", path="/v1/x", key="k",
                               fingerprint="f" * 64, expires_at=dt.datetime(2030, 1, 1,
                                                                            tzinfo=dt.UTC))
    position.ticker = gettext_lazy("ZIM")
    for instance in (position, order, event, record):
        _sql, fields, _auto, _returning = _insert_shape(type(instance), connection.vendor, (),
                                                        None)
        sent = _prepared(instance, fields, connection)  # pre_save: auto_now values set
        expected = [f.get_db_prep_save(getattr(instance, f.attname), connection)
                    for f in fields]
        # psycopg's Jsonb wrapper has no equality of its own: its object compared
        def plain(values):
            return [getattr(v, "obj", v) for v in values]

        assert plain(sent) == plain(expected)
        assert list(map(type, sent)) == list(map(type, expected))
    assert type(_prepared(position, [Position._meta.get_field("ticker")], connection)[0]) is str
    status = Order._meta.get_field("status")
    assert _prepared(order, [status], connection)[0] is order.status


# Committed for real: the connection is closed in the middle (not inside the test's transaction)
@pytest.mark.django_db(transaction=True)
def test_the_kept_cursor_follows_the_connection_and_its_statements_are_counted(
        user, django_assert_num_queries):
    from django.db import connection

    from volbal.rows import kept_cursor

    first = kept_cursor()
    assert kept_cursor().cursor is first.cursor  # one driver cursor per connection
    with django_assert_num_queries(1):  # logged as any cursor's statement
        assert fetch_one(get_user_model(), id=user.pk).username == user.username
    raw, before = first.cursor, connection.connection
    # another connection (SQLite's in-memory test database keeps its one): another driver
    # cursor, and reads still work
    connection.close()
    assert fetch_one(get_user_model(), id=user.pk).username == user.username
    assert kept_cursor().cursor.connection is connection.connection
    assert (kept_cursor().cursor is raw) == (connection.connection is before)
    if connection.vendor == "postgresql":
        assert connection.connection is not before
