"""Hot-path rows by equality on a few columns, without the ORM's query compiler: read one
(:func:`fetch_one`), count (:func:`count`), insert one (:func:`insert_one`), update one by its
primary key (:func:`update_one`).

The request hot path (bench/orders_load.py) spends more of its time compiling querysets than
waiting for PostgreSQL: building ``Position.objects.filter(...).select_for_update().first()``
costs several times the round trip itself. :func:`fetch_one` reads the same row with SQL whose
shape is built once per model (every concrete column, in the model's order) and turns it into
the model instance exactly as a queryset would: the backend's and the fields' converters, then
``Model.from_db``. Its tests compare it with the ORM, field by field, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import CharField, Field, JSONField, Model, TextField

# An extra value read with a row (:func:`fetch_one`'s ``annotate``): the attribute it is set
# as, its SQL (an expression over the model's table, e.g. a scalar subquery) and the field
# whose converters turn it into a Python value (a Decimal, an aware datetime) as the ORM would.
Annotation = tuple[str, str, Field]


@functools.cache
def _shape(model: type[Model], vendor: str, annotate: tuple[Annotation, ...] = ()):
    meta = model._meta
    quote = connection.ops.quote_name
    fields = meta.concrete_fields
    select = ", ".join([*(f"{quote(meta.db_table)}.{quote(f.column)}" for f in fields),
                        *(sql for _name, sql, _field in annotate)])
    converters = []
    for i, field in enumerate([*fields, *(field for _name, _sql, field in annotate)]):
        column = field.get_col(field.model._meta.db_table)
        funcs = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if funcs:
            converters.append((i, funcs, column))
    columns = {f.attname: quote(f.column) for f in fields}
    return f"SELECT {select} FROM {quote(meta.db_table)}", [f.attname for f in fields], \
        converters, columns


def fetch_one(model: type[Model], *, for_update: bool = False,
              annotate: tuple[Annotation, ...] = (), **equal):
    """The row of ``model`` whose attributes equal ``equal`` (e.g. ``id=…, owner_id=…``: a
    unique key), or ``None``. With ``for_update`` the row is locked ``FOR UPDATE`` where the
    database has row locks (SQLite's IMMEDIATE transactions already hold the write lock).
    ``annotate`` (:data:`Annotation` s, a constant tuple: its statement is built once) reads
    more values in the same statement, set on the instance as attributes, as a queryset's
    ``annotate`` would."""
    db = _wrapper()  # one lookup, not one per attribute read through the proxy
    sql, names, converters = _select(model, db.vendor, tuple(equal), annotate, for_update)
    row = _first_row(db, sql, tuple(equal.values()))
    if row is None:
        return None
    if converters:
        row = list(row)
        for i, funcs, column in converters:
            value = row[i]
            for func in funcs:
                value = func(value, column, db)
            row[i] = value
    if not annotate:
        return model.from_db(db.alias, names, row)
    instance = model.from_db(db.alias, names, row[:len(names)])
    for (name, _sql, _field), value in zip(annotate, row[len(names):], strict=True):
        setattr(instance, name, value)
    return instance


def _first_row(db, sql: str, params: tuple):
    """The first row ``sql`` answers, through a cursor kept for the connection.

    ``db.cursor()`` builds a driver cursor and Django's wrapper around it for each statement,
    and ``execute`` passes through the wrapper's layers: a third of a one-row read's client
    time (a position's: ~70 us, ~30 us of it these). Here the checks and the set-up those
    calls make are made in the same order (the connection's health check, connecting,
    thread sharing, a broken transaction, the driver's errors turned into Django's) on the
    driver cursor kept for the connection (:func:`kept_cursor`'s). While queries are logged
    (DEBUG, ``CaptureQueriesContext``) or an execute wrapper is installed, that cursor in
    Django's wrapper: they see every statement as before."""
    if db.queries_logged or db.execute_wrappers:
        cursor = kept_cursor(db)
        cursor.execute(sql, params)
        return cursor.fetchone()
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        cursor = _driver_cursor(db)
        cursor.execute(sql, params)
        return cursor.fetchone()


@functools.cache
def _select(model: type[Model], vendor: str, keys: tuple[str, ...],
            annotate: tuple[Annotation, ...], for_update: bool):
    """:func:`fetch_one`'s statement, built once per model, keys, annotations and lock (a few
    microseconds of string building per read otherwise, on every request's token, user and
    position), with what turns its row into the instance."""
    head, names, converters, _columns = _shape(model, vendor, annotate)
    sql = f"{head} WHERE {_where(model, keys, vendor)}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, names, converters


@functools.cache
def _insert_shape(model: type[Model], vendor: str, unless: tuple[str, ...], gate: str | None):
    meta = model._meta
    quote = connection.ops.quote_name
    auto = meta.pk if meta.pk.db_returning else None  # an AutoField: the database numbers it
    fields = [f for f in meta.concrete_fields if f is not auto]
    sql = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
    if gate:
        sql += f"SELECT {', '.join(['%s'] * len(fields))} WHERE {gate}"
    else:
        sql += f"VALUES ({', '.join(['%s'] * len(fields))})"
    if unless:
        columns = ", ".join(quote(meta.get_field(name).column) for name in unless)
        sql += f" ON CONFLICT ({columns}) DO NOTHING"
    returning = auto is not None and connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(auto.column)}"
    elif unless:
        raise NotImplementedError("insert_one(unless_conflict=...) needs INSERT ... RETURNING")
    return sql, fields, auto, returning


def insert_one(instance: Model, *, unless_conflict: tuple[str, ...] = (),
               gate: tuple[str, tuple] | None = None,
               after: tuple[Model, ...] = ()) -> Model | None:
    """INSERT one new instance as ``save()`` would (each field's ``pre_save`` for
    ``auto_now``/``auto_now_add``, its ``get_db_prep_save``, the database's id for an AutoField),
    without the queryset compiler. No signals are sent: this project connects none to its
    models. Returns the instance, saved.

    ``unless_conflict`` names the fields of a unique constraint: a row already there with the
    same values (or one being inserted by a transaction still in flight, which is waited for)
    makes it insert nothing and return ``None`` (``INSERT ... ON CONFLICT DO NOTHING``).

    ``gate`` is ``(sql, params)``, a condition evaluated once before the row is formed (and its
    id drawn from the sequence): ``INSERT ... SELECT ... WHERE <sql>``, in the same statement
    (e.g. taking a transaction lock first, at no extra round trip). It must hold. Inside
    :func:`deferred_inserts` the row waits for the scope's end, and so does its gate: the
    flush evaluates every distinct gate of its rows, in a fixed order, before it inserts them.

    ``after`` names new rows (of other models, each with its primary key already: not one the
    database numbers) that this one refers to, inserted before it (as :func:`insert_one` each,
    without a gate). On PostgreSQL they go in this row's own statement, a data-modifying
    ``WITH`` (one round trip instead of one each; their foreign keys, as this row's, are
    checked at the statement's end); elsewhere, and inside :func:`deferred_inserts`, each is
    inserted (or collected) first, then this row."""
    if after and unless_conflict:
        # the rows after would be written even when this one is not (a conflict): half a write
        raise ValueError("insert_one: after= and unless_conflict= cannot be combined (on a "
                         "conflict the rows after would stay written without this one)")
    for row in after:
        if row._meta.pk.db_returning:
            raise ValueError(f"insert_one(after=...): {type(row).__name__} is numbered by the "
                             "database; insert it first")
    pending = _deferred.get()
    if pending is not None and not unless_conflict:  # inserted at the scope's end
        pending.extend((row, None) for row in after)
        pending.append((instance, gate))
        return instance
    if after and connection.vendor != "postgresql":
        for row in after:
            _insert_now(row)
        after = ()
    return _insert_now(instance, unless_conflict, gate, after)


def _insert_now(instance: Model, unless_conflict: tuple[str, ...] = (),
                gate: tuple[str, tuple] | None = None,
                after: tuple[Model, ...] = ()) -> Model | None:
    db = _wrapper()
    sql, fields, auto, returning = _insert_shape(type(instance), db.vendor,
                                                 tuple(unless_conflict),
                                                 gate[0] if gate else None)
    values = []
    if after:
        ctes = []
        for i, row in enumerate(after):
            row_sql, row_fields, _auto, _ = _insert_shape(type(row), db.vendor, (), None)
            ctes.append(f"a{i} AS ({row_sql})")
            values += _prepared(row, row_fields, db)
        sql = f"WITH {', '.join(ctes)} {sql}"
    values += _prepared(instance, fields, db)
    if gate:
        values += list(gate[1])
    cur = kept_cursor(db)
    cur.execute(sql, values)
    if auto is not None:
        if returning:
            row = cur.fetchone()
            if row is None:
                return None  # the conflict: nothing inserted
            pk = row[0]
        else:
            pk = db.ops.last_insert_id(cur, instance._meta.db_table, auto.column)
        setattr(instance, auto.attname, pk)
    for row in (*after, instance):
        row._state.adding = False
        row._state.db = db.alias
    return instance


def _prepared(instance: Model, fields, db) -> list:
    """Each field's value of ``instance`` as ``save()`` sends it (``pre_save``, then
    ``get_db_prep_save``), less the three calls a text field makes to send a str or None as
    it is (:func:`_text_as_is`, as the batches skip them): half the columns of an order or
    an event."""
    values = []
    for f in fields:
        value = f.pre_save(instance, True)
        if not ((value is None or isinstance(value, str)) and _text_as_is(type(f))):
            value = f.get_db_prep_save(value, db)
        values.append(value)
    return values


def _where(model: type[Model], equal, vendor: str | None = None) -> str:
    """``column = %s AND ...`` for the attribute names ``equal`` (a dict's keys or a tuple)."""
    columns = _shape(model, vendor or connection.vendor)[3]
    return " AND ".join(f"{columns[name]} = %s" for name in equal)


def count(model: type[Model], **equal) -> int:
    """How many rows of ``model`` have the attributes ``equal``: ``filter(...).count()``."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {quote(model._meta.db_table)} "
                       f"WHERE {_where(model, equal)}", tuple(equal.values()))
        return cursor.fetchone()[0]


def update_one(model: type[Model], pk, **values) -> int:
    """``filter(pk=pk).update(**values)``: each value prepared by its field for saving."""
    meta = model._meta
    db = _wrapper()
    quote = db.ops.quote_name
    fields = [meta.get_field(name) for name in values]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(v, db) for f, v in zip(fields, values.values(),
                                                                 strict=True)]
    cur = kept_cursor(db)
    cur.execute(f"UPDATE {quote(meta.db_table)} SET {assignments} "
                f"WHERE {quote(meta.pk.column)} = %s", [*params, pk])
    return cur.rowcount


# --- Deferred inserts and batched updates (the trade cycle's batches) --------------------------

_deferred: contextvars.ContextVar[list[tuple[Model, tuple | None]] | None] = contextvars.ContextVar(
    "volbal_deferred_inserts", default=None)


@contextlib.contextmanager
def deferred_inserts() -> Iterator[list[tuple[Model, tuple | None]]]:
    """Collect the rows :func:`insert_one` would insert instead of inserting them one by one.

    The outermost scope inserts what was collected when it ends without an error, with one
    multi-row INSERT per model (``bulk_create``, which prepares each field as ``save()``
    would); the caller's transaction makes that atomic with its other writes. A nested scope
    that ends with an error drops what it collected (the outer scope goes on: a batch drops one
    position's work); one that ends normally hands its rows to the outer scope. Rows whose
    primary key the database numbers (events) get it at the flush, not at ``insert_one``:
    nothing in a deferred scope may read it."""
    outer = _deferred.get()
    rows: list[tuple[Model, tuple | None]] = []
    token = _deferred.set(rows)
    try:
        yield rows
    finally:
        _deferred.reset(token)
    # reached only without an error: an error skips both the hand-over and the flush
    if outer is not None:
        outer.extend(rows)
    else:
        flush(rows)


def flush(rows: list[tuple[Model, tuple | None]]) -> None:
    """INSERT ``rows``, one statement per model, each value prepared as :func:`insert_one`
    prepares it. On PostgreSQL one ``INSERT ... SELECT FROM unnest(...)`` with one array
    parameter per column (a statement whose text does not grow with the rows); elsewhere the
    one-row statement executed for all (``executemany``). Ids the database numbers are not
    read back.

    Each row comes with the gate :func:`insert_one` was given (or ``None``): the distinct gates
    are evaluated first, sorted by their parameters (so two flushes take the same locks in the
    same order), in one statement, before any row draws its id."""
    gates = sorted({gate for _row, gate in rows if gate is not None}, key=lambda g: g[1])
    if gates:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 WHERE " + " AND ".join(sql for sql, _params in gates),
                           [p for _sql, params in gates for p in params])
            if cursor.fetchone() is None:
                raise RuntimeError("a gate of a deferred insert did not hold")
    by_model: dict[type[Model], list[Model]] = {}
    for row, _gate in rows:
        by_model.setdefault(type(row), []).append(row)
    db = _wrapper()
    for model, objs in by_model.items():
        sql, fields, _auto, returning = _insert_shape(model, db.vendor, (), None)
        values = [[f.pre_save(obj, True) for f in fields] for obj in objs]
        with db.cursor() as cursor:
            if db.vendor == "postgresql":
                head = sql[:sql.index(" VALUES ")]
                select, params = _unnest(fields, values)
                cursor.execute(f"{head} {select}", params)
            else:
                if returning:
                    sql = sql[:sql.rindex(" RETURNING ")]
                cursor.executemany(sql, [[f.get_db_prep_save(v, db)
                                          for f, v in zip(fields, row, strict=True)]
                                         for row in values])
        for obj in objs:
            obj._state.adding = False
            obj._state.db = db.alias


def kept_cursor(db=None):
    """A cursor of ``db`` (default: the default database's connection) for one statement and
    its fetch, as ``db.cursor()`` gives, less the driver cursor it would create (and close)
    each time: one driver cursor is kept per driver connection and wrapped anew per use, so
    the health check, the connection's (re)opening, the thread check and the query logging
    (``CaptureQueriesContext``, ``django_assert_num_queries``, ``execute_wrapper``) all work
    as for any cursor. A submission runs eight statements; creating eight driver cursors was
    a tenth of its database-access CPU in the client (psycopg builds an adapters map and a
    timezone loader per cursor). A connection closed or replaced gets a new cursor: the
    driver cursor is checked to belong to the connection of the moment. Its caller must
    fetch what it needs before the next statement (each helper here does: one statement, one
    fetch) and must not close it."""
    db = db or _wrapper()
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        kept = _driver_cursor(db)
    return db._prepare_cursor(kept)


def _driver_cursor(db):
    """The driver cursor kept for ``db``'s connection of the moment (made when there is none,
    or it belongs to a connection closed or replaced since)."""
    kept = db.__dict__.get("_volbal_cursor")
    if kept is None or kept.connection is not db.connection or getattr(kept, "closed", False):
        kept = db.__dict__["_volbal_cursor"] = db.create_cursor()
    return kept


def _wrapper():
    """The default database's connection object itself, not the ``django.db.connection``
    proxy: every attribute read through the proxy looks the connection up in a context-local
    store again, and a batch prepares tens of thousands of values, each reading
    ``connection.ops`` (a third of the cost of preparing a decimal or a datetime)."""
    return connections[DEFAULT_DB_ALIAS]


@functools.cache
def _text_as_is(cls: type[Field]) -> bool:
    """Whether a field of ``cls`` prepares a ``str`` (a choice too: a str) or ``None`` for
    saving as itself: Django's ``CharField`` and ``TextField`` do (``get_prep_value`` is
    ``to_python``, which returns a str or None as it is; no backend adaptation), unless the
    class overrides a step. The batch then skips three calls per such value, the same value
    sent (volbal/tests/test_rows.py compares every column with ``get_db_prep_save``)."""
    for base in (CharField, TextField):
        if issubclass(cls, base) and all(
                getattr(cls, name) is getattr(base, name)
                for name in ("get_db_prep_save", "get_db_prep_value", "get_prep_value",
                             "to_python")):
            return True
    return False


def _unnest(fields, values: list[list]) -> tuple[str, list]:
    """``SELECT ... FROM unnest(%b::type[], ...)`` over ``values`` (rows of Python values, one
    per field): each column one array of the values prepared by its field, JSON sent as text
    and cast back. The arrays go in PostgreSQL's binary format (``%b``, psycopg's): its text
    format escapes every string of every array with a regular expression, which cost the
    trade cycle more per position than its rules."""
    casts, outs, params = [], [], []
    db = _wrapper()
    for i, f in enumerate(fields):
        column = [row[i] for row in values]
        if isinstance(f, JSONField):
            # json.dumps(v, cls=f.encoder) builds an encoder per value: one per column, the
            # same text (dumps' defaults are the encoder's)
            encode = (f.encoder or json.JSONEncoder)().encode
            params.append([None if v is None else encode(v) for v in column])
            casts.append("%b::text[]")
            outs.append(f"c{i}::jsonb")
        else:
            prep = f.get_db_prep_save
            if _text_as_is(type(f)):  # ids, names, choices: half the values of a batch
                params.append([v if v is None or isinstance(v, str) else prep(v, db)
                               for v in column])
            else:
                params.append([prep(v, db) for v in column])
            casts.append(f"%b::{f.db_type(db)}[]")
            outs.append(f"c{i}")
    names = ", ".join(f"c{i}" for i in range(len(fields)))
    return (f"SELECT {', '.join(outs)} FROM unnest({', '.join(casts)}) AS u({names})", params)


def update_many(model: type[Model], changes: dict, fields: tuple[str, ...]) -> int:
    """Many rows' ``filter(pk=pk).update(**values)`` at once: ``changes`` maps a primary key to
    ``{field: value}`` giving every name in ``fields`` (each value prepared by its field for
    saving). On PostgreSQL one ``UPDATE ... FROM unnest(...)``; elsewhere the one-row statement
    executed for all (``executemany``)."""
    if not changes:
        return 0
    meta = model._meta
    db = _wrapper()
    quote = db.ops.quote_name
    cols = [meta.get_field(name) for name in fields]
    if db.vendor == "postgresql":
        select, params = _unnest([meta.pk, *cols], [[key, *(values[f.name] for f in cols)]
                                                     for key, values in changes.items()])
        sets = ", ".join(f"{quote(f.column)} = v.c{i}" for i, f in enumerate(cols, 1))
        table = quote(meta.db_table)
        with db.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {sets} FROM ({select}) AS v "
                           f"WHERE {table}.{quote(meta.pk.column)} = v.c0", params)
            return cursor.rowcount
    sql = (f"UPDATE {quote(meta.db_table)} SET "
           + ", ".join(f"{quote(f.column)} = %s" for f in cols)
           + f" WHERE {quote(meta.pk.column)} = %s")
    params = [[*(f.get_db_prep_save(values[f.name], db) for f in cols),
               meta.pk.get_db_prep_save(key, db)] for key, values in changes.items()]
    with db.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(params)
