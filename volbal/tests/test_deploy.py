"""The production deployment as shipped (deploy/nginx.conf + deploy/run: nginx in front of
gunicorn with 3 workers, DJANGO_DEBUG=0), black-box on loopback (docs/operations.md#production):

- its limits are Django's (body size, the backtest's larger one);
- framing through nginx: a chunked body is read whole, an oversized one is 413 JSON, a header
  line past gunicorn's limit is gunicorn's documented 431; static files are served;
- the admin login and the expensive endpoints are rate-limited with 429 and Retry-After;
- one client's slow backtest upload holds no other client's place; one expensive request
  is computed at a time whoever sends it (429 + Retry-After for the next);
- two Content-Type headers get the API's JSON answer (nginx passes the first), and nginx's
  own 400 is JSON;
- under attack (64 connections trickling headers, several clients flooding the largest allowed
  backtest) ``/healthz`` keeps answering every probe, and the flooders get 429 + Retry-After.
  Before: 14 of 17 probes failed over 75 s; backtest floods made /healthz take 12-16 s."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings

from volbal.tests.deployment import deployed, run_attack
from volbal.tests.live_server import ROOT, call

pytestmark = [pytest.mark.system, pytest.mark.postgres]

ATTACK_SECONDS = float(os.environ.get("VOLBAL_ATTACK_SECONDS", "20"))
FLOODERS = 4
# The criterion is 200 ms for every probe through nginx; the assertion leaves room for
# a loaded CI machine, and the figures are printed (bench/attack_probe.py compares them with
# and without nginx).
PROBE_BOUND_MS = float(os.environ.get("VOLBAL_ATTACK_PROBE_BOUND_MS", "500"))
CONF = (ROOT / "deploy" / "nginx.conf").read_text()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    with deployed(tmp_path_factory.mktemp("deploy"), users=FLOODERS + 2) as running:
        yield running


def test_nginx_takes_the_bodies_django_takes():
    from positions.research.api import MAX_BODY_BYTES

    sizes = [int(s) for s in re.findall(r"client_max_body_size (\d+);", CONF)]
    assert sizes == [settings.DATA_UPLOAD_MAX_MEMORY_SIZE, MAX_BODY_BYTES]
    backtest = CONF[CONF.index("location = /v1/backtests"):]
    assert f"client_max_body_size {MAX_BODY_BYTES};" in backtest.split("}")[0]


def test_nginx_sets_the_headers_django_trusts():
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in CONF
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in CONF  # replaces, never appends
    assert "VOLBAL_PROXIES=1" in (ROOT / "deploy" / "run").read_text()


def test_health_and_static_files_through_nginx(deployment):
    assert call(deployment.nginx + "/healthz")[0] == 200
    with urlopen(deployment.nginx + "/static/admin/css/base.css") as response:
        assert response.status == 200 and response.headers["Server"] == "nginx"
        assert b"body" in response.read()


def urlopen(url):
    import urllib.request

    return urllib.request.urlopen(url, timeout=30)


def test_a_chunked_body_is_read_whole_through_nginx(deployment):
    """nginx buffers the chunked body and passes it on with its length (gunicorn alone answers
    411: volbal/tests/test_framing.py)."""
    from volbal.tests.test_framing import chunked, raw_request

    auth = {"Authorization": f"Bearer {deployment.tokens[-1]}"}
    status, created, _ = call(deployment.nginx + "/v1/positions", method="POST",
                              body={"ticker": "ZIM", "qty": 0, "cash": 100}, headers=auth)
    assert status == 201, created
    url = f"/v1/positions/{created['id']}"
    status, _, payload = raw_request(deployment.nginx, (
        f"PATCH {url} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n"
        f"Authorization: Bearer {deployment.tokens[-1]}\n"
        "Transfer-Encoding: chunked\nConnection: close\n"),
        chunked(json.dumps({"trigger_pct": 0.07}).encode()))
    assert status == 200, payload
    assert call(deployment.nginx + url, headers=auth)[1]["trigger_pct"] == 0.07


def test_oversized_bodies_and_headers_through_nginx(deployment):
    from volbal.tests.test_framing import big_json, raw_request

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    status, body, _ = call(deployment.nginx + "/v1/positions", method="POST",
                           raw=big_json(limit + 1))
    assert (status, body["detail"]) == (413, "request_too_large")
    # the backtest's larger limit: a body past Django's default still reaches it (401 here:
    # no credentials, in production mode), every time: the unread rest of the body is drained,
    # else gunicorn's close reset nginx mid-send and nginx answered 502 (seen here, at times).
    statuses = [call(deployment.nginx + "/v1/backtests", method="POST",
                     raw=big_json(limit + 1))[0] for _ in range(5)]
    # never a 502; a 429 is nginx's backtest rate (whose burst earlier tests of the same
    # deployment may have spent), so only the first must reach Django
    assert statuses[0] == 401 and set(statuses) <= {401, 429}, statuses
    status, _, _ = raw_request(deployment.nginx, (
        "GET /v1/positions HTTP/1.1\nHost: 127.0.0.1\nX-Big: " + "a" * 9000 +
        "\nConnection: close\n"))
    assert status == 431  # gunicorn's, as the schema documents


def test_the_admin_login_is_rate_limited_by_nginx(deployment):
    from volbal.tests.test_framing import raw_request

    answers = [raw_request(deployment.nginx, "POST /admin/login/ HTTP/1.1\nHost: 127.0.0.1\n"
                           "Content-Type: application/x-www-form-urlencoded\n"
                           "Content-Length: 10\nConnection: close\n", b"username=x")
               for _ in range(20)]
    limited = [headers for status, headers, _ in answers if status == 429]
    assert limited, [status for status, _, _ in answers]
    assert all(int(headers["retry-after"]) > 0 for headers in limited)


def _from(address: str, deployment, token: str, body: bytes) -> tuple[int, dict, dict]:
    """A backtest POSTed through nginx from the loopback ``address`` (127.0.0.x: each is a
    client address of its own to nginx)."""
    host, port = deployment.nginx.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60, source_address=(address, 0))
    try:
        conn.request("POST", "/v1/backtests", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        payload = response.read()
        return response.status, json.loads(payload), {k.lower(): v for k, v in
                                                     response.getheaders()}
    finally:
        conn.close()


def test_a_slow_backtest_upload_holds_no_other_clients_slot(deployment):
    """One client trickling its backtest's body holds its own place in nginx, not the
    service's: a backtest from another address is answered meanwhile (before: 429, the one
    place of the whole service taken by the upload)."""
    body = json.dumps({"prices": [{"ts": f"2024-01-0{i + 1}", "price": 100 + i}
                                  for i in range(5)]}).encode()
    host, port = deployment.nginx.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30,
                                  source_address=("127.0.0.3", 0)) as slow:
        slow.sendall((f"POST /v1/backtests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {deployment.tokens[-2]}\r\n"
                      "Content-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:10])
        time.sleep(1)  # nginx is reading the slow body
        status, answer, _ = _from("127.0.0.4", deployment, deployment.tokens[-3], body)
        assert status == 200, answer
        # nginx frees the service's one place (max_conns=1) when it finalizes that request,
        # which another nginx worker may not have done yet the instant its answer arrives here
        # (seen once in CI: the slow client's request, on another worker, found it taken)
        time.sleep(0.5)
        slow.sendall(body[10:])  # and the slow client is answered too, once it has sent all
        response = http.client.HTTPResponse(slow)
        response.begin()
        assert response.status == 200


def test_one_expensive_request_runs_at_a_time_in_the_service(deployment):
    """Clients at two addresses send the largest backtest at once: one is computed, the other
    is answered 429 with Retry-After, so gunicorn keeps free workers whoever sends."""
    from volbal.tests.attack import largest_backtest

    body = largest_backtest()
    start = threading.Barrier(2)

    def send(client):
        address, token = client
        start.wait()
        return _from(address, deployment, token, body)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(send, [("127.0.0.5", deployment.tokens[-3]),
                                       ("127.0.0.6", deployment.tokens[-2])]))
    assert sorted(status for status, _, _ in answers) == [200, 429], answers
    _, refused, headers = next(answer for answer in answers if answer[0] == 429)
    assert refused["detail"] == "throttled" and int(headers["retry-after"]) > 0


def test_two_content_type_headers_are_answered_in_json_through_nginx(deployment):
    """nginx passes on the first Content-Type (the one it reads itself): the API answers the
    request in JSON (before: gunicorn's own HTML 400 page). A request nginx itself refuses (two
    Host headers) is JSON too."""
    from volbal.tests.test_framing import raw_request

    body = json.dumps({"ticker": "ZIM", "qty": 0, "cash": 100}).encode()
    head = ("POST /v1/positions HTTP/1.1\nHost: 127.0.0.1\n"
            f"Authorization: Bearer {deployment.tokens[-1]}\n"
            f"Content-Length: {len(body)}\nConnection: close\n")
    for types, expected in ((("text/plain", "application/json"), 415),
                            (("application/json", "text/plain"), 201)):
        status, headers, payload = raw_request(deployment.nginx, head + "".join(
            f"Content-Type: {media_type}\n" for media_type in types), body)
        assert status == expected, payload
        assert headers["content-type"] == "application/json"
        if expected == 415:
            assert json.loads(payload)["detail"] == "unsupported_media_type"
    status, headers, payload = raw_request(deployment.nginx, (
        "GET /v1/positions HTTP/1.1\nHost: 127.0.0.1\nHost: example.com\nConnection: close\n"))
    assert (status, headers["content-type"]) == (400, "application/json"), payload
    assert json.loads(payload)["detail"] == "bad_request"


def test_healthz_keeps_answering_under_slow_clients_and_a_backtest_flood(deployment):
    probes, report = run_attack(deployment.nginx, deployment.tokens[:FLOODERS], ATTACK_SECONDS)
    print(f"\nthrough nginx, under attack: {probes}; attackers: {report}")
    assert probes["failed"] == 0 and probes["probes"] >= (ATTACK_SECONDS - 4) / 0.5, probes
    assert probes["max_ms"] < PROBE_BOUND_MS, probes
    flood = report["flood"]
    assert flood.get("429", 0) > 0 and flood.get("429_with_retry_after") == flood["429"], flood
    assert flood.get("200", 0) > 0, flood  # the service still serves backtests, at its rate
    assert report["slow_dropped"] > 0  # nginx drops the trickling connections (header timeout)


def test_nginx_and_gunicorn_logs_show_no_worker_timeout(deployment, tmp_path_factory):
    log = next(Path(tmp_path_factory.getbasetemp()).rglob("deploy.log")).read_text()
    assert "WORKER TIMEOUT" not in log
