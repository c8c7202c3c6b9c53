"""Named fixtures shared by every app's tests."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import Phase, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

# bench/mutation.py runs the tests with --hypothesis-profile=mutation (setup.cfg): a mutant a
# property catches is killed at its first failing example, so shrinking that example (which
# can take minutes) and the example database are skipped. The examples drawn are the same.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          database=None)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


CI_NEEDS_POSTGRES = (
    "CI must run the PostgreSQL tests (real parallel connections), but the database is "
    "{vendor}: set DATABASE_URL=postgres://... for this run."
)


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.postgres`` tests need real parallel connections: on SQLite they skip
    locally (see ``pytest_runtest_setup`` for CI, where a skip would hide the gap)."""
    if connection.vendor == "postgresql" or _in_ci():
        return
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """In CI (``CI`` set and not false) a PostgreSQL-only test without PostgreSQL fails, so
    the run fails: volbal/tests/test_ci_guard.py runs pytest that way and checks it."""
    if "postgres" in item.keywords and connection.vendor != "postgresql" and _in_ci():
        pytest.fail(CI_NEEDS_POSTGRES.format(vendor=connection.vendor), pytrace=False)


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
                    and k not in ("sizing", "max_orders_per_day", "broker")
                    else v
                )
                for k, v in kw.items()
            },
        )

    return make
