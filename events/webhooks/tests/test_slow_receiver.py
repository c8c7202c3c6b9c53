"""A slow or endless receiver holds a webhook worker for one delivery's deadline at most
(events/webhooks/transport.py): a receiver trickling its answer a byte at a time, each byte
well within the per-read timeout, is cut off at the deadline, which is shorter than the
worker's lease (so no second worker takes the same event meanwhile); an answer is read up to a
cap; and deliveries run on a queue of their own, so they never take the workers of other jobs.

The receivers here are raw sockets on 127.0.0.1: an HTTP server library answers with a whole
status line and headers, and these tests need an answer that never completes."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from events.webhooks import delivery, transport
from events.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from events.webhooks.tasks import QUEUE
from events.webhooks.tests.test_delivery import open_positions, register


@pytest.fixture(autouse=True)
def _committed(transactional_db, settings):
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True  # the receivers are on 127.0.0.1


class RawReceiver:
    """Accepts on 127.0.0.1, reads the request's head and body, then runs ``answer(conn)``;
    stops answering after ``give_up`` seconds (so a client with no deadline still ends)."""

    def __init__(self, answer, give_up: float = 20.0):
        self.answer = answer
        self.give_up = give_up
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket):
        ends = time.monotonic() + self.give_up
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)
            try:
                for chunk in self.answer():
                    if self._stop.is_set() or time.monotonic() > ends:
                        return
                    conn.sendall(chunk)
                    self.sent += len(chunk)
            except OSError:  # the client hung up
                return

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def trickling(every: float):
    """A 200 answer one byte every ``every`` seconds, never ending."""
    def answer():
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"." * 10**6
        for byte in head:
            time.sleep(every)
            yield bytes([byte])
    return answer


def endless_headers():
    """A 200 whose head goes on for megabytes, as fast as the client reads."""
    yield b"HTTP/1.1 200 OK\r\n"
    for n in range(99):
        yield f"X-Filler-{n}: ".encode() + b"x" * 60_000 + b"\r\n"
    yield b"Content-Length: 2\r\n\r\nok"


@pytest.fixture
def receivers():
    made = []
    yield lambda answer: made.append(RawReceiver(answer)) or made[-1]
    for r in made:
        r.stop()


def test_a_trickling_receiver_is_cut_off_at_the_deadline_inside_the_lease(api, settings,
                                                                           receivers):
    settings.VOLBAL_WEBHOOK_TIMEOUT_SECONDS = 1  # a byte every 0.3 s: no read ever times out
    settings.VOLBAL_WEBHOOK_DEADLINE_SECONDS = 2
    slow = receivers(trickling(every=0.3))
    endpoint_id, _ = register(api, slow.url)
    open_positions(api, 1)

    started = time.monotonic()
    outcome = delivery.endpoint_deliver(endpoint_id)
    took = time.monotonic() - started

    assert took < 2 + 1.5, f"the worker was held {took:.1f} s"
    assert outcome.claimed and not outcome.lease_lost  # recorded under its own lease
    assert outcome.failed_attempts == 1 and outcome.delivered == 0
    [attempt] = WebhookAttempt.objects.all()
    assert attempt.status_code is None and "deadline" in attempt.error
    assert attempt.duration_ms < delivery.lease_length().total_seconds() * 1000
    assert slow.connections == 1 and 3 <= slow.sent <= 12  # it was trickling when cut off
    [pending] = WebhookDelivery.objects.all()
    assert pending.status == "pending" and pending.next_attempt_at is not None
    # the owner reads that it timed out
    [shown] = api.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["deliveries"]
    assert shown["last_error"].startswith("timeout:")
    # free again for the next attempt: no lease left behind
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    assert endpoint.lease_until is None


def test_the_lease_outlasts_the_deadline(settings):
    for deadline in (1, 30, 600):
        settings.VOLBAL_WEBHOOK_DEADLINE_SECONDS = deadline
        assert delivery.lease_length().total_seconds() >= deadline + 30


def test_an_answer_is_read_up_to_a_cap(receivers):
    huge = receivers(endless_headers)
    started = time.monotonic()
    answer = transport.post(huge.url, b"{}", {}, timeout=5, allow_private=True)
    assert not answer.ok and answer.status is None
    assert "answer too large" in answer.error, answer.error
    assert transport.public_error(answer.error).startswith("answer_too_large:")
    assert time.monotonic() - started < 5


def test_deliveries_run_on_their_own_queue_not_the_default_workers(api, receivers):
    ok = receivers(lambda: iter([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]))
    endpoint_id, _ = register(api, ok.url)
    open_positions(api, 1)
    [task] = DBTaskResult.objects.all()
    assert task.queue_name == QUEUE == "webhooks"

    def worker(queue: str) -> Worker:
        return Worker(queue_names=[queue], interval=0, batch=True, backend_name="default",
                      startup_delay=False, max_tasks=None, worker_id=f"test-{queue}",
                      excluded_queue_names=[])

    worker("default").run()  # the jobs' and trade cycles' workers leave it alone
    assert DBTaskResult.objects.get().status == "READY" and ok.connections == 0
    worker("webhooks").run()
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
    assert WebhookDelivery.objects.get().status == "succeeded"
