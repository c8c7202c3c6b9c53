"""PostgreSQL connections read ``timestamptz`` with psycopg's own loader (its C one with
psycopg[binary]) where that gives exactly what Django's gives.

Django's psycopg backend registers a Python subclass of psycopg's Python ``TimestamptzLoader``
on every connection (``django/db/backends/postgresql/psycopg_any.py``): it parses the text in
Python, in the connection's time zone, then replaces the result's tzinfo with the database
wrapper's ``timezone``. Django keeps the connection's ``TimeZone`` equal to that zone
(``_configure_timezone``), so the replace changes the tzinfo object, never the instant; a
subclass also stops psycopg from using its C loader. Each time read costs a few microseconds
of Python that way: a read of one position has up to six (its own, the token's, the user's).

When Django's zone is ``datetime.UTC`` (``USE_TZ`` with no database ``TIME_ZONE``) and
the connection's ``TimeZone`` is ``UTC``, psycopg's loader returns the same datetimes with the
same ``datetime.UTC`` tzinfo (psycopg maps ``UTC`` to that object): the connection then uses it.
In any other configuration (no ``USE_TZ``: naive datetimes; another zone) Django's stays.
"""

from __future__ import annotations

import datetime as dt
import functools

from django.db.backends.signals import connection_created


@functools.cache
def _utc_loader():
    from psycopg import adapters
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    # psycopg's global map: its C class when psycopg has its C implementation (a class that
    # cannot be subclassed, hence the delegation)
    own = adapters.get_loader(adapters.types["timestamptz"].oid, Format.TEXT)

    class UtcTimestamptzLoader(Loader):
        # what Django's create_cursor compares with its own zone before it registers its loader
        # again on each cursor: equal, so the connection's loader stays
        timezone = dt.UTC

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._own = own(oid, context)
            # its bound ``load`` on the instance: the rows call it with no Python frame between
            self.load = self._own.load

        def load(self, data):
            return self._own.load(data)

    return UtcTimestamptzLoader


def loader_for(connection):
    """The ``timestamptz`` loader class ``connection`` (a Django database wrapper, connected)
    reads with, if it can be psycopg's own; ``None`` to keep Django's."""
    if connection.vendor != "postgresql" or connection.timezone is not dt.UTC:
        return None
    # the PostgreSQL backend's module (it imports the driver): read for such a connection only
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3 or connection.connection.info.parameter_status("TimeZone") != "UTC":
        return None
    return _utc_loader()


def _on_connection_created(sender, connection, **kwargs):
    loader = loader_for(connection)
    if loader is not None:
        connection.connection.adapters.register_loader("timestamptz", loader)


def register() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="volbal.pg_loaders")
