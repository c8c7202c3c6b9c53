"""What a decimal column can hold: the checks the services run before a write (no DRF here, so
that the services, the admin and the commands do not load the API layer to use them; the API's
input fields in :mod:`volbal.fields` use them too)."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

SQLITE_DIGITS = 15


def exactly_stored(value: Decimal) -> bool:
    """Whether the database keeps ``value`` exactly: PostgreSQL's numeric always does; SQLite
    (local mode) stores decimals as 8-byte floating point, which keeps 15 significant digits."""
    if connection.vendor != "sqlite" or not value.is_finite():
        return True
    # The digits from the first to the last that is not zero: 1200 and 0.0012 have two.
    return len("".join(map(str, value.as_tuple().digits)).strip("0")) <= SQLITE_DIGITS


def capacity(model, field: str) -> Decimal:
    """The first value a DecimalField column cannot hold: 10 ** (max_digits - decimal_places)."""
    f = model._meta.get_field(field)
    return Decimal(10) ** (f.max_digits - f.decimal_places)


def out_of_range(*checks: tuple) -> str | None:
    """The first ``(model, field, value)`` whose value its column cannot hold (PostgreSQL would
    answer "numeric field overflow"; SQLite would round it), named for a person, or None."""
    for model, field, value in checks:
        if abs(value) >= capacity(model, field) or not exactly_stored(value):
            return f"{model.__name__.lower()} {field.replace('_', ' ')}"
    return None
