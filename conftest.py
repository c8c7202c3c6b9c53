"""Named fixtures shared by every app's tests."""

from __future__ import annotations

import importlib
import os
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from hypothesis import Phase, settings

if TYPE_CHECKING:
    from rest_framework.test import APIClient

# bench/mutation.py runs the tests with --hypothesis-profile=mutation (setup.cfg): a mutant a
# property catches is killed at its first failing example, so shrinking that example (which
# can take minutes) and the example database are skipped. The examples drawn are the same.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          database=None)


def pytest_addoption(parser, pluginmanager):
    """With pytest-django switched off (``-p no:django``, the pure core's run) its ini setting
    ``DJANGO_SETTINGS_MODULE`` (pytest.ini) is declared here, so pytest does not warn that it
    is unknown."""
    if not pluginmanager.has_plugin("django"):
        parser.addini("DJANGO_SETTINGS_MODULE", "Django's settings module (read by pytest-django)")


def _django() -> bool:
    """Whether pytest-django configured Django: the pure strategy core's tests run without it
    (``pytest -p no:django positions/strategy``), and then every hook here leaves them alone."""
    return django_settings.configured


def pytest_configure(config):
    """The tests' passwords are hashed with MD5: the default PBKDF2 costs ~0.4 s a user and most
    tests make one or two (the ``user`` and ``other_user`` fixtures). Set once, for the whole run,
    before any hasher is loaded; a test that needs another still sets it with ``settings``."""
    if _django():
        django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


CI_NEEDS_POSTGRES = (
    "CI must run the PostgreSQL tests (real parallel connections), but the database is "
    "{vendor}: set DATABASE_URL=postgres://... for this run."
)


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.postgres`` tests need real parallel connections: on SQLite they skip
    locally (see ``pytest_runtest_setup`` for CI, where a skip would hide the gap)."""
    if not _django() or connection.vendor == "postgresql" or _in_ci():
        return
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """In CI (``CI`` set and not false) a PostgreSQL-only test without PostgreSQL fails, so
    the run fails: volbal/tests/test_ci_guard.py runs pytest that way and checks it."""
    if ("postgres" in item.keywords and _django() and connection.vendor != "postgresql"
            and _in_ci()):
        pytest.fail(CI_NEEDS_POSTGRES.format(vendor=connection.vendor), pytrace=False)


_APPEND_ONLY = importlib.import_module("events.migrations.0002_append_only")
_TRIGGER_OF = {sql.split()[2]: sql for sql in _APPEND_ONLY.SQLITE_UP}  # name -> CREATE TRIGGER


@pytest.fixture(autouse=True, scope="session")
def _audit_log_flushable():
    """Every transactional test (``django_db(transaction=True)``, ``transactional_db``,
    ``live_server``) ends with a flush of the test database, which SQLite does with DELETE, which
    the audit log's append-only triggers refuse (the test then errors at teardown and leaves its
    rows to the next ones). On SQLite the flush lifts the triggers for its DELETEs and puts back
    those that were there, in its own transaction: the log is never unguarded during a test, and
    no fixture order matters. PostgreSQL truncates, which the trigger does not stop."""
    if not _django() or connection.vendor != "sqlite":
        yield
        return
    ops = type(connection.ops)
    original = ops.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cur:
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN "
                        f"({', '.join('?' * len(_TRIGGER_OF))})", list(_TRIGGER_OF))
            present = [name for (name,) in cur.fetchall()]
            for name in present:
                cur.execute(f"DROP TRIGGER {name}")
            original(self, sql_list)
            for name in present:
                cur.execute(_TRIGGER_OF[name])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops, "execute_sql_flush", execute_sql_flush)
        yield


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


def assert_error(response, status: int, code: str) -> dict:
    """An error answer: the status, the machine code in ``detail`` and a sentence."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["detail"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def client_for(user) -> APIClient:
    # imported here: the models of rest_framework.authtoken need Django's settings, which the
    # pure core's tests run without (see _django)
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    """An API client authenticated (DRF token) as ``user``."""
    return client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return client_for(other_user)


@pytest.fixture
def make_position(user):
    """Create a position through the service, as the API would."""
    from positions.services import position_create

    def make(owner=None, ticker="ZIM", qty="0", cash="10000", **kw):
        return position_create(
            owner=owner or user,
            ticker=ticker,
            qty=Decimal(str(qty)),
            cash=Decimal(str(cash)),
            **{
                k: (
                    Decimal(str(v))
                    if isinstance(v, (int, float, str))
                    and not isinstance(v, bool)
                    and k not in ("sizing", "max_orders_per_day", "broker", "order_type")
                    else v
                )
                for k, v in kw.items()
            },
        )

    return make


@pytest.fixture
def clock_at(monkeypatch):
    """Set "now" for the whole service: clock.now, every auto_now_add and the event log's
    created_at default (bound to timezone.now when the model was defined). Returns the
    setter: ``clock_at(moment)``."""
    from django.utils import timezone

    from events.models import Event

    state = {}

    def now():
        return state["now"]

    monkeypatch.setattr(timezone, "now", now)
    monkeypatch.setattr(Event._meta.get_field("created_at"), "_get_default", now)

    def set_now(moment):
        state["now"] = moment
    return set_now
