"""Webhook delivery under real concurrency, on PostgreSQL with parallel connections: an event
that commits after a later id was sent is still sent (the cursor trap); one position's events
commit in id order; two workers never send one endpoint's events at once, twice, or out of
order; no lock or transaction is held while the receiver answers."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, transaction

from events.models import Event
from events.services import event_record
from events.webhooks import delivery
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from events.webhooks.services import webhook_create
from events.webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("private_receivers")]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def ids_received(r: Receiver) -> list[int]:
    return [json.loads(req["body"])["id"] for req in r.requests]


def in_thread(fn):
    """Run ``fn`` on its own connection; returns (thread, outcome dict)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:  # reported by the test
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_an_event_committed_after_a_later_id_was_sent_is_sent_not_skipped(
        user, make_position, receiver):
    a, b = make_position(ticker="AAA"), make_position(ticker="BBB")
    endpoint, _ = webhook_create(owner=user, url=receiver.url, event_types=["evaluation"])
    written, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            event = event_record(position_id=a.pk, type="evaluation", message="late")
            written.set()
            assert release.wait(10)
        return event.id

    thread, late = in_thread(slow_writer)
    assert written.wait(10)
    early = event_record(position_id=b.pk, type="evaluation", message="early").id
    delivery.deliver_pass()
    assert ids_received(receiver) == [early]  # the lower id is not committed yet

    release.set()
    thread.join(10)
    assert "error" not in late, late
    assert late["value"] < early
    delivery.deliver_pass()
    assert ids_received(receiver) == [early, late["value"]]
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 2


def test_one_positions_events_commit_in_the_order_of_their_ids(make_position):
    """A writer waits for the position's log before its event draws an id: had it drawn one
    first, the first transaction's second event would take a higher id and commit before it
    (a reader would see ids 1 and 3, pass its cursor to 3, and never see 2)."""
    a = make_position(ticker="AAA")
    holding, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            one = event_record(position_id=a.pk, type="evaluation", message="first").id
            holding.set()
            assert release.wait(10)
            two = event_record(position_id=a.pk, type="evaluation", message="first again").id
        return one, two

    t1, first_ids = in_thread(first)
    assert holding.wait(10)
    t2, second = in_thread(lambda: event_record(position_id=a.pk, type="evaluation",
                                                message="second").id)
    time.sleep(0.3)
    assert "value" not in second  # waits for the first transaction on the position's log
    other = make_position(ticker="OTH")  # another position's events do not wait
    assert Event.objects.filter(position_id=other.pk).exists()
    release.set()
    t1.join(10)
    t2.join(10)
    assert "error" not in first_ids and "error" not in second, (first_ids, second)
    assert first_ids["value"][0] < first_ids["value"][1] < second["value"]


def test_a_batched_write_waits_for_the_positions_log_too(make_position):
    """The trade cycle writes a batch's events at the end of its scope
    (volbal.rows.deferred_inserts): the flush takes each position's log lock before any of its
    rows draws an id, as a single event_record does, so a position's events still commit in
    the order of their ids."""
    from volbal.rows import deferred_inserts

    a, b = make_position(ticker="AAA"), make_position(ticker="BBB")
    holding, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            one = event_record(position_id=a.pk, type="evaluation", message="first").id
            holding.set()
            assert release.wait(10)
            two = event_record(position_id=a.pk, type="evaluation", message="first again").id
        return one, two

    def batch():
        with transaction.atomic(), deferred_inserts():
            event_record(position_id=b.pk, type="evaluation", message="batch b")
            event_record(position_id=a.pk, type="evaluation", message="batch a")
        return True

    t1, first_ids = in_thread(first)
    assert holding.wait(10)
    t2, batched = in_thread(batch)
    time.sleep(0.3)
    assert "value" not in batched  # the flush waits for the first transaction on a's log
    release.set()
    t1.join(10)
    t2.join(10)
    assert "error" not in first_ids and "error" not in batched, (first_ids, batched)
    batch_a = Event.objects.get(position_id=a.pk, message="batch a").id
    assert first_ids["value"][0] < first_ids["value"][1] < batch_a


def test_two_workers_send_one_endpoints_events_once_each_in_order_never_at_once(
        user, make_position, receiver):
    positions = [make_position(ticker=f"P{i}") for i in range(2)]
    webhook_create(owner=user, url=receiver.url, event_types=["evaluation"])
    expected = [event_record(position_id=positions[i % 2].pk, type="evaluation",
                             message=f"e{i}").id for i in range(12)]
    receiver.delay = 0.02
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        # passes until everything is delivered (bounded in time, not in passes: a worker that
        # finds the endpoint leased passes quickly, however long the other one takes)
        ends = time.monotonic() + 30
        while time.monotonic() < ends:
            delivery.deliver_pass(batch=3)
            if WebhookDelivery.objects.filter(status="succeeded").count() == len(expected):
                return True
            time.sleep(0.01)
        return False

    threads = [in_thread(worker) for _ in range(2)]
    for thread, _ in threads:
        thread.join(60)
    assert all(out.get("value") is True for _, out in threads), threads
    assert ids_received(receiver) == expected  # once each, in order
    assert receiver.most_at_once == 1


def test_no_lock_or_transaction_is_held_while_the_receiver_answers(user, make_position,
                                                                   receiver):
    position = make_position()
    endpoint, _ = webhook_create(owner=user, url=receiver.url, event_types=["all"])
    event_record(position_id=position.pk, type="evaluation", message="probe")
    seen = []

    def probe(request):
        def other():
            try:
                with transaction.atomic():
                    WebhookEndpoint.objects.select_for_update(nowait=True).get(pk=endpoint.pk)
                    WebhookDelivery.objects.select_for_update(nowait=True).get()
                seen.append("free")
                # a second worker arriving now finds the endpoint leased: it sends nothing
                seen.append(delivery.endpoint_deliver(endpoint.pk).claimed)
            except Exception as exc:
                seen.append(repr(exc))
            finally:
                connection.close()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        return 200

    receiver.answer = probe
    delivery.deliver_pass()
    assert seen == ["free", False]
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == "succeeded"
