"""Liveness and readiness, against a real server: readiness follows the database."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest

from volbal.tests.live_server import call, free_port, gunicorn


def server_without_a_database(tmp_path):
    """gunicorn whose DATABASE_URL points at a port where nothing listens."""
    dead = free_port()  # bound and released: nothing listens there
    return gunicorn(tmp_path, {**os.environ, "DJANGO_DEBUG": "1",
                               "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead}/volbal"},
                    workers=1)


@pytest.mark.system
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


@pytest.mark.system
def test_a_request_line_past_the_limit_is_414_as_documented(tmp_path, client, db):
    from volbal.schema import REQUEST_LINE_LIMIT

    with server_without_a_database(tmp_path) as base:
        try:
            urllib.request.urlopen(f"{base}/v1/positions?q={'x' * REQUEST_LINE_LIMIT}",
                                   timeout=30)
        except urllib.error.HTTPError as err:
            status, content_type = err.code, err.headers["Content-Type"]
        assert status == 414 and content_type.startswith("text/html")
    schema = client.get("/v1/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "text/html" in operation["responses"]["414"]["content"], (path, method)
