"""Exact request framing and the limits around a request (docs/api.md#limits), in-process and
against a real gunicorn (3 workers, as shipped):

- a chunked body without Content-Length answers 411 ``length_required`` and changes nothing
  (before: read as empty, a PATCH answered 200 and changed nothing);
- a body over the limit answers 413 ``request_too_large`` on every endpoint (before: 400
  ``bad_request`` once Django had read 2.5 MB);
- a header line past gunicorn's limit answers 431, documented like 414;
- the backtest's per-user rate is counted in the database cache, shared by every worker: the
  request past it answers 429 ``throttled`` with ``Retry-After`` whichever worker takes it;
- a backtest asking for more evaluations than run synchronously becomes a job (202); the
  same series at the default daily cap is answered at once."""

from __future__ import annotations

import http.client
import io
import json
import socket
from decimal import Decimal

import numpy as np
import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

from conftest import assert_error
from positions.models import Position
from volbal.tests.live_server import call, live_server

pytestmark = [pytest.mark.system, pytest.mark.django_db]

LIMIT = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
THROTTLE_RATE = 3  # a minute, for the live server


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request written byte for byte; returns (status, headers, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock(), live_server(
            tmp_path_factory.mktemp("framing"), workers=3,
            env={"VOLBAL_THROTTLE_EXPENSIVE": f"{THROTTLE_RATE}/min"}) as base:
        yield base


# --- chunked bodies ------------------------------------------------------------------------------


def test_a_chunked_patch_answers_411_and_changes_nothing_on_gunicorn(server):
    status, created, _ = call(server + "/v1/positions", method="POST",
                              body={"ticker": "ZIM", "qty": 0, "cash": 100})
    assert status == 201
    url = f"/v1/positions/{created['id']}"
    body = json.dumps({"trigger_pct": 0.07}).encode()
    status, headers, payload = raw_request(server, (
        f"PATCH {url} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\nConnection: close\n"), chunked(body))
    assert status == 411, payload
    assert headers["content-type"] == "application/json"
    assert json.loads(payload)["detail"] == "length_required"
    assert call(server + url)[1]["trigger_pct"] == created["trigger_pct"]


def test_a_chunked_body_answers_411_in_process(api, make_position):
    from events.models import Event

    position = make_position()
    events = Event.objects.count()
    response = api.generic("PATCH", f"/v1/positions/{position.id}", b"",
                           content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    assert_error(response, 411, "length_required")
    assert Event.objects.count() == events


# --- bodies over the limit -----------------------------------------------------------------------


def big_json(size: int) -> bytes:
    """A JSON object of ``size`` bytes: a valid body, only too large."""
    head = b'{"ticker": "ZIM", "qty": 0, "cash": 100, "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_json_body_over_the_limit_answers_413_on_gunicorn(server):
    """Before: 400 bad_request "The request could not be understood."."""
    status, body, _ = call(server + "/v1/positions", method="POST", raw=big_json(LIMIT + 1))
    assert status == 413 and body["detail"] == "request_too_large", body
    assert f"{LIMIT:,}" in body["message"]


WRITES = [("POST", "/v1/positions"), ("PATCH", "/v1/positions/{pid}"),
          ("POST", "/v1/positions/{pid}/orders"), ("POST", "/v1/positions/{pid}/evaluate"),
          ("POST", "/v1/positions/{pid}/dividends"), ("POST", "/v1/orders/{oid}/fill"),
          ("POST", "/v1/orders/{oid}/cancel"), ("POST", "/v1/prices"),
          ("POST", "/admin/login/")]


@pytest.mark.parametrize(("method", "url"), WRITES, ids=[f"{m} {u}" for m, u in WRITES])
def test_every_endpoint_answers_413_past_the_limit_before_reading(api, make_position, method,
                                                                  url):
    from orders.services import order_submit

    position = make_position(qty=10)
    order = order_submit(position=position, side="BUY", qty=Decimal(1), idempotency_key="o")
    before = (Position.objects.count(), list(Position.objects.values_list("trigger_pct")))
    response = api.generic(method, url.format(pid=position.id, oid=order.id), b"{}",
                           content_type="application/json", CONTENT_LENGTH=str(LIMIT + 1),
                           HTTP_IDEMPOTENCY_KEY="k")
    assert_error(response, 413, "request_too_large")
    assert (Position.objects.count(), list(Position.objects.values_list("trigger_pct"))) == \
        before


def test_the_backtest_takes_its_own_larger_limit(api):
    """Its series may be 100,000 bars (about 4.5 MB); past its own limit it answers 413 too."""
    from positions.research.api import MAX_BODY_BYTES

    body = big_json(LIMIT + 1).replace(b'"ticker": "ZIM", "qty": 0, "cash": 100, "pad"',
                                       b'"sample": "IBM", "start": "2013-01-01", "x"')
    response = api.generic("POST", "/v1/backtests", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]  # read: an unknown field
    assert response.json()["fields"] == {"x": "Unknown field."}
    response = api.generic("POST", "/v1/backtests", b"{}", content_type="application/json",
                           CONTENT_LENGTH=str(MAX_BODY_BYTES + 1))
    assert_error(response, 413, "request_too_large")


# --- header lines past gunicorn's limit ----------------------------------------------------------


def test_a_header_line_past_the_limit_answers_431_as_documented(server):
    status, headers, _ = raw_request(server, (
        "GET /v1/positions HTTP/1.1\nHost: 127.0.0.1\nX-Big: " + "a" * 9000 +
        "\nConnection: close\n"))
    assert status == 431
    path = io.StringIO()
    call_command("spectacular", "--format", "openapi", stdout=path, stderr=io.StringIO())
    schema = yaml.safe_load(path.getvalue())
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "431" in operation["responses"]
            if "requestBody" in operation:
                assert {"411", "413"} <= set(operation["responses"])
    backtest = schema["paths"]["/v1/backtests"]["post"]["responses"]
    assert "Retry-After" in backtest["429"]["headers"]


# --- throttles -----------------------------------------------------------------------------------


def small_backtest() -> dict:
    return {"prices": [{"ts": f"2024-01-0{i + 1}", "price": 100 + i} for i in range(5)]}


def test_the_backtest_rate_is_shared_by_every_worker(server):
    """3 workers, 3 backtests a minute per user: every request past the 3rd answers 429,
    whichever worker takes it (a count in each process's memory would let through up to 3 per
    worker)."""
    answers = [call(server + "/v1/backtests", method="POST", body=small_backtest())
               for _ in range(THROTTLE_RATE * 3)]
    statuses = [status for status, _, _ in answers]
    assert statuses[:THROTTLE_RATE] == [200] * THROTTLE_RATE
    assert statuses[THROTTLE_RATE:] == [429] * (THROTTLE_RATE * 2), statuses
    _, body, headers = answers[-1]
    assert body["detail"] == "throttled" and body["message"]
    assert 0 < int(headers["Retry-After"]) <= 60


def test_the_throttle_counts_each_user_separately(other_user, user, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    from conftest import client_for

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"expensive": "1/min"})
    mine, theirs = client_for(user), client_for(other_user)
    assert mine.post("/v1/backtests", small_backtest(), format="json").status_code == 200
    response = mine.post("/v1/backtests", small_backtest(), format="json")
    assert_error(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert theirs.post("/v1/backtests", small_backtest(), format="json").status_code == 200


# --- the work one backtest may ask for -----------------------------------------------------------


def test_a_backtest_asking_for_too_many_evaluations_becomes_a_job(api):
    t0 = np.datetime64("2020-01-01T09:30", "m")
    prices = [{"ts": str(t0 + i), "price": 100 + i % 7} for i in range(30_000)]  # ~21 days
    assert 30_000 > settings.VOLBAL_BACKTEST_MAX_EVALUATIONS  # 21 days x 1000 orders a day
    response = api.post("/v1/backtests", {"prices": prices, "max_orders_per_day": 1000},
                        format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["kind"], job["status"], job["progress"]["total"]) == ("backtest", "queued",
                                                                      30_000)
    # the same series at the default cap (5 orders a day) is well within it: answered now
    assert api.post("/v1/backtests", {"prices": prices}, format="json").status_code == 200
