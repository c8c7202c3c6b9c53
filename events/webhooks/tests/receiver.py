"""A real HTTP receiver for webhook tests: pytest-httpserver on 127.0.0.1 (threaded, so
concurrent requests would overlap), whose answers the test sets (``answer``: a status, a
``(status, headers)`` pair, or a callable given the request), recording every request (headers,
raw body, the fake clock's time when it arrived) and the most requests it ever served at once.

The URL is known before the server starts (a free port chosen up front), so a test can register
an endpoint while nothing listens there yet."""

from __future__ import annotations

import re
import socket
import threading
import time

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    def __init__(self, port: int | None = None, *, clock=None, delay: float = 0.0):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.requests: list[dict] = []
        self.answer = 200  # or (status, headers) or a callable(request) -> either
        self.delay = delay
        self.clock = clock
        self._lock = threading.Lock()
        self._inside = 0
        self.most_at_once = 0
        self._server = HTTPServer(host="127.0.0.1", port=self.port, threaded=True)
        self._server.expect_request(re.compile(".*"), method="POST").respond_with_handler(
            self._handle)

    def _handle(self, http_request: Request) -> Response:
        with self._lock:
            self._inside += 1
            self.most_at_once = max(self.most_at_once, self._inside)
        try:
            request = {"headers": dict(http_request.headers), "body": http_request.get_data(),
                       "path": http_request.full_path.rstrip("?"),
                       "now": self.clock() if self.clock else time.time()}
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                self.requests.append(request)
            answer = self.answer(request) if callable(self.answer) else self.answer
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            return Response(b"ok", status=status, headers=headers)
        finally:
            with self._lock:
                self._inside -= 1

    def start(self) -> Receiver:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
        self._server.check_handler_errors()
