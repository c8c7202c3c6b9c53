"""``field__any=values``: the rows whose field is one of ``values``, as ``field__in`` selects
them, with the list sent as ONE array parameter on PostgreSQL (``"col" = ANY(%s::type[])``).

``id__in`` of a batch of 500 ids is a statement of 500 placeholders: Django builds each, psycopg
re-parses the text at every execution (it caches no statement over 50 parameters) and
PostgreSQL parses a text no other batch size shares. Its ``any`` twin has one constant text, so
it is compiled, cached and prepared once; what it selects is the same (None in ``values``
matches nothing, an empty list nothing at all; a subquery or expressions fall back to ``IN``,
as does every other database). Registered on every field by the ``volbal`` app
(:mod:`volbal.apps`)."""

from __future__ import annotations

from django.db.models import Field, ForeignObject
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In


class _OneArray:
    """``IN``'s selection, its list as one array parameter on PostgreSQL."""

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql" or not self.rhs_is_direct_value():
            return super().as_sql(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(v, connection, prepared=True)
                  for v in self.rhs if v is not None]
        if not values:  # In's own refusal: an EmptyResultSet (the query matches nothing)
            return super().as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*lhs_params, values)


class AnyOf(_OneArray, In):
    lookup_name = "any"


class RelatedAnyOf(_OneArray, RelatedIn):  # a foreign key's (its lookups are its own)
    lookup_name = "any"


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(RelatedAnyOf)
