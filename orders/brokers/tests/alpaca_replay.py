"""A real HTTP server on 127.0.0.1 (pytest-httpserver) that replays recorded exchanges with
Alpaca's trading API (``orders/brokers/tests/alpaca_exchanges/*.json``) to alpaca-py, and
checks each request the SDK sends against the recording: method, path, query, JSON body and
the two auth headers.

A recording is ``{"description", "exchanges": [{"request": {...}, "response": {...}}]}``, in
the order the requests must come. In a request, a string starting with ``~`` is a regular
expression the value must match (a timestamp); ``{name}`` is replaced by the test's value (our
order id, Alpaca's). A response is ``{"status", "body"}`` (JSON), ``{"status", "text"}`` (a raw
body, e.g. a proxy's error page) or ``{"drop": true}`` (the connection is closed unanswered);
``"delay": seconds`` answers that late (a hung endpoint).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

EXCHANGES = Path(__file__).parent / "alpaca_exchanges"
KEY_ID, SECRET = "PKTEST0000REPLAY", "replay-secret-never-shown"


def load(name: str, **subs: str) -> list[dict]:
    """The exchanges of one recording, with ``{name}`` placeholders filled in."""
    data = json.loads((EXCHANGES / f"{name}.json").read_text())

    def fill(value):
        if isinstance(value, str):
            for k, v in subs.items():
                value = value.replace("{" + k + "}", v)
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(data["exchanges"])


class Like:
    """A recorded value ``~regex``: equal to any string the expression matches whole (the
    server's matchers compare with ``==``, and ``"x" == Like(...)`` asks this object)."""

    def __init__(self, pattern: str):
        self.pattern = pattern

    def __eq__(self, other) -> bool:
        return isinstance(other, str) and re.fullmatch(self.pattern, other) is not None

    __hash__ = None

    def __repr__(self) -> str:
        return f"~{self.pattern}"


def _expected(value):
    """A recorded request value as the matchers compare it (``~regex`` strings as :class:`Like`)."""
    if isinstance(value, str) and value.startswith("~"):
        return Like(value[1:])
    if isinstance(value, list):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    return value


def _answer(response: dict):
    """The handler of one recorded response: JSON, a raw body, late, or a dropped connection."""

    def handle(request: Request) -> Response:
        time.sleep(response.get("delay", 0))
        if response.get("drop"):
            # closed unanswered: writing the response below then fails, which the server takes
            # for a client that went away
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return Response(status=500)
        if "body" in response:
            return Response(json.dumps(response["body"]), status=response["status"],
                            content_type="application/json; charset=UTF-8")
        text = response.get("text", "")
        return Response(text, status=response["status"],
                        content_type="text/html" if text else None)

    return handle


class Replay:
    """Serve recorded exchanges in order (pytest-httpserver's ordered handlers): each request
    must match the next recording (method, path, query, JSON body or none, both auth headers),
    or the server fails it and every request after it; :meth:`check` says so."""

    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def expect(self, exchanges: list[dict]) -> None:
        for exchange in exchanges:
            want = exchange["request"]
            body = want.get("body")
            self.server.expect_ordered_request(
                want["path"], method=want["method"],
                query_string=_expected(want.get("query", {})),
                headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET},
                **({"json": _expected(body)} if body is not None else {"data": b""}),
            ).respond_with_handler(_answer(exchange["response"]))

    @property
    def requests(self) -> list[dict]:
        """Every request served so far: method, path, query, JSON body (None without one)."""
        return [{"method": request.method, "path": request.path,
                 "query": dict(request.args.items()),
                 "body": json.loads(request.data) if request.data else None}
                for request, _ in self.server.log]

    def check(self) -> None:
        """Every recorded exchange was asked for, each as recorded."""
        self.server.check_assertions()
        left = len(self.server.ordered_handlers)
        assert left == 0, f"{left} recorded exchanges never asked for"

    def close(self) -> None:
        if self.server.is_running():
            self.server.stop()
