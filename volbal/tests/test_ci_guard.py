"""The conftest's CI guard: in CI a PostgreSQL-only test on another database fails the run
(a skip there would hide that the concurrency tests never ran); locally it is skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system  # each test runs pytest itself on a fresh SQLite database

ROOT = Path(__file__).resolve().parents[2]
ONE_POSTGRES_TEST = ("orders/tests/test_concurrency.py::"
                     "test_concurrent_position_creates_with_one_key_open_one_position")


def pytest_on_sqlite(**env) -> subprocess.CompletedProcess:
    """pytest on one ``@pytest.mark.postgres`` test, in a child with no DATABASE_URL (SQLite)
    and ``env`` added."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI")}
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", ONE_POSTGRES_TEST],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=300)


def test_in_ci_a_postgres_test_without_postgres_fails_the_run():
    run = pytest_on_sqlite(CI="true")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out  # tests failed (not 0, not a usage error)
    assert "CI must run the PostgreSQL tests" in out and "the database is sqlite" in out
    assert "set DATABASE_URL=postgres://" in out
    assert " passed" not in out and " skipped" not in out and "xfail" not in out


def test_outside_ci_a_postgres_test_without_postgres_is_skipped():
    run = pytest_on_sqlite()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "1 skipped" in out and "needs PostgreSQL: set DATABASE_URL" in out
