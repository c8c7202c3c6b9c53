"""A real HTTP server on 127.0.0.1 that replays recorded exchanges with Alpaca's trading API
(``orders/brokers/tests/alpaca_exchanges/*.json``) to alpaca-py, and checks each request the SDK
sends against the recording: method, path, query, JSON body and the two auth headers.

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
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

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


def _matches(expected, actual) -> bool:
    if isinstance(expected, str) and expected.startswith("~"):
        return isinstance(actual, str) and re.fullmatch(expected[1:], actual) is not None
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(_matches(v, actual[k]) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(_matches(e, a) for e, a in zip(expected, actual, strict=True)))
    return expected == actual


class Replay:
    """Serve ``exchanges`` in order; ``problems`` lists every request that did not match."""

    def __init__(self):
        self.pending: list[dict] = []
        self.problems: list[str] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = {"method": self.command, "path": parts.path,
                        "query": dict(parse_qsl(parts.query)),
                        "body": json.loads(raw) if raw else None,
                        "headers": {k.lower(): v for k, v in self.headers.items()}}
                response = replay._answer(seen)
                time.sleep(response.get("delay", 0))
                if response.get("drop"):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status = response["status"]
                if "body" in response:
                    payload = json.dumps(response["body"]).encode()
                    ctype = "application/json; charset=UTF-8"
                else:
                    payload = response.get("text", "").encode()
                    ctype = "text/html"
                try:
                    self.send_response(status)
                    if payload:
                        self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (its timeout) before the answer
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def expect(self, exchanges: list[dict]) -> None:
        with self._lock:
            self.pending.extend(exchanges)

    def _answer(self, seen: dict) -> dict:
        with self._lock:
            self.requests.append(seen)
            if not self.pending:
                self.problems.append(f"unexpected {seen['method']} {seen['path']}")
                return {"status": 599, "text": "no recorded exchange left"}
            exchange = self.pending.pop(0)
        want = exchange["request"]
        where = f"{want['method']} {want['path']}"
        if (seen["method"], seen["path"]) != (want["method"], want["path"]):
            self.problems.append(f"expected {where}, got {seen['method']} {seen['path']}")
        elif not _matches(want.get("query", {}), seen["query"]):
            self.problems.append(f"{where}: query {seen['query']} is not {want.get('query')}")
        elif not _matches(want.get("body"), seen["body"]):
            self.problems.append(f"{where}: body {seen['body']} is not {want.get('body')}")
        elif (seen["headers"].get("apca-api-key-id"),
              seen["headers"].get("apca-api-secret-key")) != (KEY_ID, SECRET):
            self.problems.append(f"{where}: the auth headers are missing or wrong")
        return exchange["response"]

    def check(self) -> None:
        """Every recorded exchange was asked for, each as recorded."""
        assert self.problems == [], self.problems
        assert self.pending == [], f"{len(self.pending)} recorded exchanges never asked for"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
