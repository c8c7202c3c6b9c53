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

import functools

from django.db import connection
from django.db.models import Model


@functools.cache
def _shape(model: type[Model], vendor: str):
    meta = model._meta
    quote = connection.ops.quote_name
    fields = meta.concrete_fields
    select = ", ".join(f"{quote(meta.db_table)}.{quote(f.column)}" for f in fields)
    converters = []
    for i, field in enumerate(fields):
        column = field.get_col(meta.db_table)
        funcs = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if funcs:
            converters.append((i, funcs, column))
    columns = {f.attname: quote(f.column) for f in fields}
    return f"SELECT {select} FROM {quote(meta.db_table)}", [f.attname for f in fields], \
        converters, columns


def fetch_one(model: type[Model], *, for_update: bool = False, **equal):
    """The row of ``model`` whose attributes equal ``equal`` (e.g. ``id=…, owner_id=…``: a
    unique key), or ``None``. With ``for_update`` the row is locked ``FOR UPDATE`` where the
    database has row locks (SQLite's IMMEDIATE transactions already hold the write lock)."""
    head, names, converters, _columns = _shape(model, connection.vendor)
    sql = f"{head} WHERE {_where(model, equal)}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, tuple(equal.values()))
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = list(row)
        for i, funcs, column in converters:
            value = row[i]
            for func in funcs:
                value = func(value, column, connection)
            row[i] = value
    return model.from_db(connection.alias, names, row)


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
               gate: tuple[str, tuple] | None = None) -> Model | None:
    """INSERT one new instance as ``save()`` would (each field's ``pre_save`` for
    ``auto_now``/``auto_now_add``, its ``get_db_prep_save``, the database's id for an AutoField),
    without the queryset compiler. No signals are sent: this project connects none to its
    models. Returns the instance, saved.

    ``unless_conflict`` names the fields of a unique constraint: a row already there with the
    same values (or one being inserted by a transaction still in flight, which is waited for)
    makes it insert nothing and return ``None`` (``INSERT ... ON CONFLICT DO NOTHING``).

    ``gate`` is ``(sql, params)``, a condition evaluated once before the row is formed (and its
    id drawn from the sequence): ``INSERT ... SELECT ... WHERE <sql>``, in the same statement
    (e.g. taking a transaction lock first, at no extra round trip). It must hold."""
    sql, fields, auto, returning = _insert_shape(type(instance), connection.vendor,
                                                 tuple(unless_conflict),
                                                 gate[0] if gate else None)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    if gate:
        values += list(gate[1])
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if auto is not None:
            if returning:
                row = cursor.fetchone()
                if row is None:
                    return None  # the conflict: nothing inserted
                pk = row[0]
            else:
                pk = connection.ops.last_insert_id(cursor, instance._meta.db_table, auto.column)
            setattr(instance, auto.attname, pk)
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def _where(model: type[Model], equal: dict) -> str:
    columns = _shape(model, connection.vendor)[3]
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
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in values]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(v, connection) for f, v in zip(fields, values.values(),
                                                                 strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(meta.db_table)} SET {assignments} "
                       f"WHERE {quote(meta.pk.column)} = %s", [*params, pk])
        return cursor.rowcount
