"""Fast password hashing for this app's tests: the default PBKDF2 costs ~0.4 s per user and
every test makes one or two (the ``user`` and ``other_user`` fixtures of the root conftest)."""

import importlib

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _append_only(statements) -> None:
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


_UP = [s.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS") for s in
       importlib.import_module("events.migrations.0002_append_only").SQLITE_UP]
_DOWN = importlib.import_module("events.migrations.0002_append_only").SQLITE_DOWN


@pytest.fixture(scope="module")
def _append_only_restored(django_db_blocker):
    yield
    with django_db_blocker.unblock():
        _append_only(_UP)


@pytest.fixture
def committed_db(transactional_db, _append_only_restored):
    """A test whose writes really commit (no test-wide transaction), on SQLite too: the flush
    that ends it deletes events, which the audit log's triggers refuse, so they are lifted for
    the flush and put back after (PostgreSQL truncates, which they do not stop)."""
    _append_only(_UP)
    yield
    _append_only(_DOWN)
