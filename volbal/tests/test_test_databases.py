"""The databases the test suite creates carry one prefix (settings.VOLBAL_TEST_DB_PREFIX): the
test database and every black-box server's scratch database, derived from DATABASE_URL's
database name unless VOLBAL_TEST_DB_PREFIX says otherwise. Before, they were ``test_*`` and
``volbal_live_*`` whatever DATABASE_URL said."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from volbal.tests.live_server import ROOT, scratch_database

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def settings_under(env: dict) -> dict:
    """The prefix and the test database's name that volbal.settings computes under ``env``."""
    code = ("import json; from django.conf import settings as s; print(json.dumps("
            "[s.VOLBAL_TEST_DB_PREFIX, s.DATABASES['default']['TEST']['NAME']]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, text=True,
                         capture_output=True, timeout=60,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "volbal.settings", **env})
    prefix, test_name = json.loads(out.stdout.strip().splitlines()[-1])
    return {"prefix": prefix, "test_name": test_name}


def test_the_prefix_follows_database_url_or_the_setting():
    url = {"DATABASE_URL": "postgres://someone@127.0.0.1:5432/books", "VOLBAL_TEST_DB_PREFIX": ""}
    derived = settings_under(url)
    assert derived["prefix"] == "test_books"
    assert derived["test_name"].startswith("test_books_")
    chosen = settings_under({**url, "VOLBAL_TEST_DB_PREFIX": "ci-7_volbal"})
    assert chosen["prefix"] == "ci-7_volbal"
    assert chosen["test_name"].startswith("ci-7_volbal_")


def test_a_prefix_that_is_not_a_plain_name_is_refused():
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_under({"VOLBAL_TEST_DB_PREFIX": 'x"; DROP DATABASE postgres; --'})
    assert "ImproperlyConfigured: VOLBAL_TEST_DB_PREFIX=" in refused.value.stderr


def _databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {name for (name,) in cursor.fetchall()}


def test_this_runs_test_database_and_scratch_databases_carry_the_prefix(tmp_path):
    prefix = settings.VOLBAL_TEST_DB_PREFIX
    assert connection.settings_dict["NAME"].startswith(prefix + "_")
    before = _databases()
    with scratch_database(tmp_path) as url:
        created = _databases() - before
        assert [url.rsplit("/", 1)[1]] == sorted(created)
        assert all(name.startswith(prefix + "_live_") for name in created)
    assert _databases() - before == set()
