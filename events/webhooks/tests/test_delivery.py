"""Webhook delivery against a real HTTP receiver on 127.0.0.1 (docs/webhooks.md): down, then 503,
then up: every event arrives, in order per position, exactly once after de-duplication by its id,
every signature verified by docs/webhooks.md's own snippet. Retries on a fake clock until the 24 h
window ends (failed, disabled, a webhook_failed alert); 410; redirects; the address check at connect
time; the task woken on commit and run by the queue's worker."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from pathlib import Path

import pytest
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from events.models import Event
from events.webhooks import delivery, transport
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from events.webhooks.tests.receiver import Receiver
from volbal import clock

pytestmark = pytest.mark.usefixtures("private_receivers")


@pytest.fixture(autouse=True)
def _committed(transactional_db):
    """Committed for real: delivery posts with no transaction open (it asserts so). (On SQLite
    the flush that ends each test lifts the audit log's triggers: the root conftest.)"""

README = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def readme_verify():
    """The ``verify`` function exactly as the README shows it to receivers."""
    text = README.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify(" in b)
    namespace: dict = {}
    exec(block, namespace)  # the docs' own code, run as a receiver would
    return namespace["verify"]


class FakeClock:
    def __init__(self):
        self.now = timezone.now().replace(microsecond=0)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)

    def to(self, when) -> None:
        self.now = max(self.now, when)


@pytest.fixture
def fake(monkeypatch):
    f = FakeClock()
    monkeypatch.setattr(clock, "now", f)
    return f


@pytest.fixture
def receiver(fake):
    r = Receiver(clock=lambda: fake.now.timestamp())
    yield r
    r.stop()


def register(api, url, types=("all",)) -> tuple[str, str]:
    response = api.post("/v1/webhooks", {"url": url, "event_types": list(types)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["secret"]


def open_positions(api, n=2) -> list[str]:
    ids = []
    for i in range(n):
        r = api.post("/v1/positions", {"ticker": f"ZZ{i}", "qty": 10, "cash": 1000},
                     format="json")
        assert r.status_code == 201, r.content
        ids.append(r.json()["id"])
    return ids


def change_configs(api, position_ids, times=2):
    for k in range(times):
        for pid in position_ids:
            r = api.patch(f"/v1/positions/{pid}", {"trigger_pct": [0.04, 0.06, 0.07][k]},
                          format="json")
            assert r.status_code == 200, r.content


def received(r: Receiver) -> list[dict]:
    return [json.loads(req["body"]) for req in r.requests]


def test_every_event_arrives_in_order_once_after_an_outage_and_every_signature_verifies(
        api, fake, receiver):
    verify = readme_verify()
    endpoint_id, secret = register(api, receiver.url)
    positions = open_positions(api)
    change_configs(api, positions)
    expected = list(Event.objects.filter(position_id__in=positions).order_by("id")
                    .values_list("id", "position_id"))
    assert len(expected) >= 6

    # Down: nothing listens on the port.
    delivery.deliver_pass()
    assert receiver.requests == []
    body = api.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()
    [first] = body["deliveries"]
    assert first["event_id"] == expected[0][0] and first["status"] == "pending"
    assert first["attempts"][0]["status_code"] is None
    assert first["attempts"][0]["error"] == first["last_error"] == (
        "connection_failed: the connection could not be made or was broken.")
    assert first["next_attempt_at"] is not None
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    assert endpoint.next_attempt_at == fake.now + dt.timedelta(seconds=30)
    delivery.deliver_pass()  # not due yet: nothing is tried
    assert WebhookDelivery.objects.get().attempt_count == 1

    # Up but overloaded: 503 asking for two minutes.
    receiver.answer = (503, {"Retry-After": "120"})
    receiver.start()
    fake.advance(30)
    delivery.deliver_pass()
    assert len(receiver.requests) == 1
    assert WebhookEndpoint.objects.get(pk=endpoint_id).next_attempt_at == \
        fake.now + dt.timedelta(seconds=120)  # longer than the backoff's 60 s

    # Up: the receiver processes each event but the answer to one is lost (500), so that
    # event comes again.
    lost = {expected[2][0]}

    def answer(request):
        event_id = json.loads(request["body"])["id"]
        if event_id in lost:
            lost.discard(event_id)
            return 500
        return 200

    receiver.answer = answer
    for _ in range(5):
        fake.advance(121)
        delivery.deliver_pass()
    assert WebhookDelivery.objects.filter(status="succeeded").count() == len(expected)

    bodies = received(receiver)
    seen, unique = set(), []
    for req, b in zip(receiver.requests, bodies, strict=True):
        assert verify(secret, req["body"], req["headers"]["Volbal-Signature"], now=req["now"])
        assert not verify("whsec_wrong", req["body"], req["headers"]["Volbal-Signature"],
                          now=req["now"])
        assert req["headers"]["Volbal-Event-Id"] == str(b["id"])
        if b["id"] not in seen:
            seen.add(b["id"])
            unique.append((b["id"], b["position_id"]))
    assert len(bodies) == len(expected) + 2  # the first event's 503, the lost answer's repeat
    assert unique == expected  # all, once each, in id order (so in order per position)
    assert bodies[-1]["type"] == "config_changed"
    # the body is the event as the position's events API shows it
    shown = api.get(f"/v1/positions/{bodies[-1]['position_id']}/events").json()["events"][-1]
    assert bodies[-1] == shown
    # a tampered body does not verify
    req = receiver.requests[-1]
    assert not verify(secret, req["body"] + b" ", req["headers"]["Volbal-Signature"],
                      now=req["now"])
    listed = api.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["deliveries"]
    assert [d["attempt_count"] for d in listed[:3]] == [3, 1, 2]
    assert [a["status_code"] for a in listed[0]["attempts"]] == [None, 503, 200]


def test_a_failing_receiver_is_retried_for_24_hours_then_the_endpoint_fails_with_an_alert(
        api, fake, receiver, user, other_user):
    receiver.answer = 500
    receiver.start()
    endpoint_id, _ = register(api, receiver.url, ["position_created"])
    [pid] = open_positions(api, 1)
    started = fake.now
    for _ in range(100):
        delivery.deliver_pass()
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        if not endpoint.active:
            break
        fake.to(endpoint.next_attempt_at)
    assert endpoint.disabled_reason == "failed"
    times = [dt.datetime.fromtimestamp(r["now"], dt.UTC) for r in receiver.requests]
    waits = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert waits[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]  # doubling, at most 1 h
    assert times[-1] - started == dt.timedelta(hours=24)
    assert all(w <= 3600 for w in waits)
    d = WebhookDelivery.objects.get()
    assert d.status == "failed" and d.attempt_count == len(receiver.requests)
    alert = Event.objects.get(type="webhook_failed")
    assert alert.position_id == pid
    assert alert.inputs["endpoint_id"] == endpoint_id
    assert alert.inputs["event_id"] == d.event_id
    assert alert.outputs["last_status_code"] == 500
    assert alert.actor_name.startswith("worker:") or alert.actor_name.startswith("process:")
    got = api.get(f"/v1/webhooks/{endpoint_id}").json()
    assert got["active"] is False and got["disabled_reason"] == "failed"

    # Nothing more is sent while disabled; re-enabled, the failed event is sent again.
    n = len(receiver.requests)
    fake.advance(7200)
    delivery.deliver_pass()
    assert len(receiver.requests) == n
    receiver.answer = 200
    assert api.patch(f"/v1/webhooks/{endpoint_id}", {"active": True},
                     format="json").json()["active"] is True
    delivery.deliver_pass()
    assert json.loads(receiver.requests[-1]["body"])["id"] == d.event_id
    assert WebhookDelivery.objects.get().status == "succeeded"


def test_410_gone_disables_the_endpoint_and_alerts(api, fake, receiver):
    receiver.answer = 410
    receiver.start()
    endpoint_id, _ = register(api, receiver.url)
    open_positions(api, 1)
    delivery.deliver_pass()
    fake.advance(3600)
    delivery.deliver_pass()
    assert len(receiver.requests) == 1
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    assert (endpoint.active, endpoint.disabled_reason) == (False, "gone")
    assert Event.objects.get(type="webhook_failed").outputs["reason"] == "gone"


def test_a_redirect_is_not_followed_but_retried(api, fake, receiver):
    receiver.answer = (302, {"Location": "http://127.0.0.1:9/elsewhere"})
    receiver.start()
    endpoint_id, _ = register(api, receiver.url)
    open_positions(api, 1)
    delivery.deliver_pass()
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    d = WebhookDelivery.objects.get()
    assert (d.status, d.last_status_code) == ("pending", 302)
    assert WebhookEndpoint.objects.get(pk=endpoint_id).next_attempt_at is not None


def test_private_addresses_are_refused_at_connect_time_without_the_setting(
        api, fake, receiver, settings, monkeypatch):
    receiver.start()
    endpoint_id, _ = register(api, receiver.url)  # registered while allowed
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = False
    open_positions(api, 1)
    delivery.deliver_pass()
    assert receiver.requests == []
    d = WebhookDelivery.objects.get()
    assert d.last_status_code is None and d.last_error.startswith("refused:")
    assert "127.0.0.1" in d.last_error

    # A public-looking name that resolves to a private address (DNS rebinding) is refused
    # on the address it resolves to when the request is made.
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.example.com":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    answer = transport.post(f"http://hooks.example.com:{receiver.port}/hook", b"{}", {},
                            timeout=2, allow_private=False)
    assert answer.status is None and "resolves to 127.0.0.1" in answer.error
    assert receiver.requests == []
    # allowed: the request goes to the address that was checked, with the name as Host
    answer = transport.post(f"http://hooks.example.com:{receiver.port}/hook", b"{}", {},
                            timeout=2, allow_private=True)
    assert answer.status == 200
    assert receiver.requests[-1]["headers"]["Host"] == f"hooks.example.com:{receiver.port}"

    # a name with several addresses: the next checked one when the first does not answer
    def two(host, port, *args, **kwargs):
        if host == "two.example.com":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    *real("127.0.0.1", port, *args, **kwargs)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two)
    answer = transport.post(f"http://two.example.com:{receiver.port}/hook", b"{}", {},
                            timeout=2, allow_private=True)
    assert answer.status == 200  # ::1 refused (the receiver is on 127.0.0.1 only)
    assert transport.post(f"http://two.example.com:{receiver.port}/hook", b"{}", {},
                          timeout=2, allow_private=False).error.startswith(
        "refused: two.example.com resolves to ::1")


def test_events_wake_the_delivery_task_which_the_worker_runs(api, receiver, user,
                                                             monkeypatch):
    monkeypatch.undo()  # the real clock: the queue's worker runs tasks due by it
    receiver.clock = None
    receiver.start()
    positions_before = open_positions(api, 1)  # no endpoint yet: no task
    assert DBTaskResult.objects.count() == 0
    endpoint_id, secret = register(api, receiver.url)
    change_configs(api, positions_before, times=1)
    # one task for the endpoint, however many events were written since
    open_positions(api, 1)
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    worker = Worker(queue_names=["webhooks"], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test-worker",
                    excluded_queue_names=[])
    worker.run()
    bodies = received(receiver)
    assert [b["type"] for b in bodies][:1] == ["config_changed"]
    assert {b["position_id"] for b in bodies} == {positions_before[0],
                                                  bodies[-1]["position_id"]}
    assert len(bodies) == WebhookDelivery.objects.filter(status="succeeded").count() >= 2
    assert bodies[0]["actor"]["source"] == "api"
    verify = readme_verify()
    assert all(verify(secret, r["body"], r["headers"]["Volbal-Signature"])
               for r in receiver.requests)


def test_backoff_schedule_and_signature_format(settings):
    settings.VOLBAL_WEBHOOK_BACKOFF_BASE_SECONDS = 30
    settings.VOLBAL_WEBHOOK_BACKOFF_CAP_SECONDS = 3600
    assert [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 7, 8, 50)] == \
        [30, 60, 120, 1920, 3600, 3600]
    assert delivery.backoff(1, retry_after=600).total_seconds() == 600
    assert delivery.backoff(1, retry_after=10 ** 9).total_seconds() == 3600
    header = transport.sign("whsec_x", 1700000000, b'{"id":1}')
    assert re.fullmatch(r"t=1700000000,v1=[0-9a-f]{64}", header)
    assert readme_verify()("whsec_x", b'{"id":1}', header, now=1700000100)
    assert not readme_verify()("whsec_x", b'{"id":1}', header, now=1700000400)  # too old


def test_the_command_delivers_one_pass_and_reports(api, fake, receiver):
    from io import StringIO

    from django.core.management import call_command

    receiver.start()
    endpoint_id, _ = register(api, receiver.url)
    open_positions(api, 2)
    out = StringIO()
    call_command("deliver_webhooks", "--batch", "1", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{endpoint_id}: 1 delivered, 0 failed attempts"
    assert lines[-1] == "1 endpoints, 2 events delivered, 0 failed attempts, 0 endpoints disabled"
    assert len(receiver.requests) == 2
    receiver.answer = 500
    open_positions(api, 1)
    out = StringIO()
    call_command("deliver_webhooks", stdout=out)
    assert "0 delivered, 1 failed attempts (event " in out.getvalue()
    assert WebhookDelivery.objects.filter(status="pending").count() == 1


def test_a_failed_attempt_queues_the_task_again_at_the_retry_time(api, receiver, monkeypatch):
    monkeypatch.undo()  # the real clock: the queue's worker runs tasks due by it
    receiver.clock = None
    receiver.answer = 503
    receiver.start()
    endpoint_id, _ = register(api, receiver.url)
    open_positions(api, 1)
    worker = Worker(queue_names=["webhooks"], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test-worker",
                    excluded_queue_names=[])
    worker.run()  # runs the woken task; the retry's task is not due yet
    assert len(receiver.requests) == 1
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    [queued] = DBTaskResult.objects.filter(status="READY")
    assert queued.run_after == endpoint.next_attempt_at
    assert queued.args_kwargs["args"] == [endpoint_id]
    # more events meanwhile queue nothing more: they wait behind the failing one
    open_positions(api, 1)
    assert DBTaskResult.objects.filter(status="READY").count() == 1


def open_portfolio(api, cash=1000) -> str:
    r = api.post("/v1/portfolios", {"name": "Core", "cash": cash}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["id"]


def move(api, path, body, key):
    r = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert r.status_code == 201, r.content


def test_a_portfolios_own_events_arrive_in_order_beside_its_positions_events(
        api, other_api, fake, receiver):
    receiver.start()
    endpoint_id, _ = register(api, receiver.url)
    other_api.post("/v1/portfolios", {"name": "Theirs", "cash": 5}, format="json")  # not sent
    pid = open_portfolio(api)
    [a] = open_positions(api, 1)
    assert api.patch(f"/v1/positions/{a}", {"portfolio": pid}, format="json").status_code == 200
    move(api, f"/v1/portfolios/{pid}/cash", {"amount": 250}, "dep-1")
    move(api, f"/v1/portfolios/{pid}/transfers", {"from": "portfolio", "to": a, "amount": 100},
         "t-1")
    move(api, f"/v1/portfolios/{pid}/cash", {"amount": -50}, "wd-1")
    delivery.deliver_pass()
    bodies = received(receiver)
    # every event of the owner's, once, lowest id first: the portfolio's own (no position)
    # among its position's
    assert [(b["type"], b["position_id"], b["portfolio_id"]) for b in bodies] == [
        ("portfolio_created", "", pid), ("position_created", a, None),
        ("config_changed", a, pid), ("cash_deposited", "", pid), ("cash_transferred", a, pid),
        ("cash_withdrawn", "", pid)]
    assert [b["id"] for b in bodies] == sorted(b["id"] for b in bodies)
    # each as the portfolio's events API shows it
    shown = {e["id"]: e for e in api.get(f"/v1/portfolios/{pid}/events").json()["events"]}
    assert all(b == shown[b["id"]] for b in bodies if b["portfolio_id"])
    # the cursor of each stream stands at its last event: nothing is sent twice
    move(api, f"/v1/portfolios/{pid}/cash", {"amount": 1}, "dep-2")
    delivery.deliver_pass()
    assert [b["type"] for b in received(receiver)[len(bodies):]] == ["cash_deposited"]
    assert WebhookDelivery.objects.filter(endpoint_id=endpoint_id).count() == len(bodies) + 1
    listed = api.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["deliveries"]
    assert {(d["event_type"], d["position_id"], d["portfolio_id"]) for d in listed
            if d["event_type"] == "cash_withdrawn"} == {("cash_withdrawn", "", pid)}


def test_a_portfolios_own_event_wakes_the_delivery_task(api):
    open_portfolio(api)  # no endpoint yet: no task
    assert DBTaskResult.objects.count() == 0
    register(api, "https://hooks.example.com/volbal")
    assert DBTaskResult.objects.count() == 0
    open_portfolio(api)
    [task] = DBTaskResult.objects.filter(status="READY")
    assert task.args_kwargs["args"] == [WebhookEndpoint.objects.get().pk]


def test_gone_for_a_portfolios_own_event_alerts_on_the_portfolio(api, fake, receiver):
    receiver.answer = 410
    receiver.start()
    register(api, receiver.url, ["portfolio_created"])
    pid = open_portfolio(api)
    delivery.deliver_pass()
    alert = Event.objects.get(type="webhook_failed")
    assert (alert.position_id, alert.portfolio_id) == ("", pid)
    events = api.get(f"/v1/portfolios/{pid}/events").json()["events"]
    assert [e["type"] for e in events] == ["portfolio_created", "webhook_failed"]
