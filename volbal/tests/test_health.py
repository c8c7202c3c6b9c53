"""Liveness and readiness, against a real server: readiness follows the database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from volbal.tests.live_server import ROOT, call, free_port


@contextlib.contextmanager
def server_without_a_database(tmp_path):
    """gunicorn whose DATABASE_URL points at a port where nothing listens."""
    port = free_port()
    dead = free_port()  # bound and released: nothing listens there
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead}/volbal",
           "DJANGO_DEBUG": "1"}
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "volbal.wsgi:application"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if call(base + "/healthz")[0] == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_liveness_answers_and_readiness_is_503_while_the_database_is_down(tmp_path):
    with server_without_a_database(tmp_path) as base:
        assert call(base + "/healthz")[:2] == (200, {"status": "ok"})
        assert call(base + "/v1/healthz")[:2] == (200, {"status": "ok", "version": "v1"})
        status, body, headers = call(base + "/readyz")
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert body["status"] == "unavailable" and body["detail"] == "database_unavailable"
        assert body["message"].startswith("The database does not answer")


def test_readiness_is_200_when_the_database_answers(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
