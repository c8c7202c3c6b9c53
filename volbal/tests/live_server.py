"""A real server process for black-box tests: its own fresh database, gunicorn, a free port."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def scratch_database(tmp_path: Path):
    """A brand-new database of the same kind as the test run's, dropped afterwards; on
    PostgreSQL named with the test databases' prefix (settings.VOLBAL_TEST_DB_PREFIX)."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'live.sqlite3'}"
        return
    import psycopg

    params = settings.DATABASES["default"]
    name = f"{settings.VOLBAL_TEST_DB_PREFIX}_live_{uuid.uuid4().hex[:10]}"
    admin_dsn = dict(host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432,
                     user=params["USER"], password=params["PASSWORD"] or None, dbname="postgres")
    with psycopg.connect(**admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    user = params["USER"]
    auth = f"{user}:{params['PASSWORD']}@" if params["PASSWORD"] else f"{user}@"
    try:
        yield f"postgres://{auth}{admin_dsn['host']}:{admin_dsn['port']}/{name}"
    finally:
        with psycopg.connect(**admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def gunicorn(tmp_path: Path, env: dict, *, workers: int = 2, pidfile: Path | None = None):
    """gunicorn with ``env`` on a free port, once /healthz answers; yields the base URL. Its
    output goes to ``tmp_path / "gunicorn.log"``."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), *(["--pid", str(pidfile)] if pidfile else []),
         "volbal.wsgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def live_server(tmp_path: Path, *, workers: int = 2, env: dict | None = None,
                before_start=None, pidfile: Path | None = None):
    """Migrate a scratch database and serve it with gunicorn; yields the base URL.

    ``before_start(env)``, if given, runs after the migration and before the server starts,
    with the server's environment (e.g. to create a user with ``manage.py shell``).
    ``pidfile``, if given, receives the gunicorn master's pid (its workers are its children)."""
    with scratch_database(tmp_path) as url:
        full_env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1", **(env or {})}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=full_env,
                       check=True, timeout=300)
        if before_start is not None:
            before_start(full_env)
        with gunicorn(tmp_path, full_env, workers=workers, pidfile=pidfile) as base:
            yield base


def call(url: str, *, method: str = "GET", body: object = None, headers: dict | None = None,
         raw: bytes | None = None) -> tuple[int, dict | None, dict]:
    """One HTTP request; returns (status, parsed JSON body or None, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload, resp_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        status, payload, resp_headers = err.code, err.read(), err.headers
    parsed = json.loads(payload) if payload else None
    return status, parsed, dict(resp_headers)
