"""A real HTTP receiver for webhook tests: a ``http.server`` thread on 127.0.0.1 whose answers
the test sets (``answer``: a status, or a callable given the request), recording every request
(headers, raw body, the fake clock's time when it arrived) and the most requests it ever served
at once."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
        self._server = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                with receiver._lock:
                    receiver._inside += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver._inside)
                try:
                    body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    request = {"headers": dict(self.headers), "body": body, "path": self.path,
                               "now": receiver.clock() if receiver.clock else time.time()}
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    with receiver._lock:
                        receiver.requests.append(request)
                    answer = receiver.answer
                    if callable(answer):
                        answer = answer(request)
                    status, headers = answer if isinstance(answer, tuple) else (answer, {})
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with receiver._lock:
                        receiver._inside -= 1

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
