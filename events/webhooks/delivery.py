"""Sending events to endpoints: the worker's side of the outbox.

**Order and the cursor.** Event ids come from a sequence, and a transaction that took a lower
id can commit after one that took a higher id: a cursor over ids would skip the late event for
good (docs/architecture.md#background-jobs). Two things close that gap:

- ``events.services.event_record`` takes a per-stream transaction lock (PostgreSQL's
  ``pg_advisory_xact_lock``; SQLite has one writer at a time anyway) before the row takes its
  id, so *within one stream* ids commit in order: no reader can see a position's event 11
  before its event 10. A stream is a position's events, or a portfolio's own events (those of
  no position: opened, changed, its cash deposited or withdrawn; a transfer between it and a
  position is on the position's stream);
- the cursor is kept per (endpoint, stream) (:class:`WebhookCursor`): an endpoint's next
  events are each stream's events past that stream's cursor. An event of position A that
  commits late, after B's later ids were sent, is still past A's cursor: it is sent late, never
  skipped.

Events of one endpoint are sent one at a time, lowest id first; a failing event blocks the
endpoint (its later events wait: that is what order costs) until it succeeds or its retry
window ends.

**No lock across the request.** A worker leases the endpoint for longer than a request may take
(``VOLBAL_WEBHOOK_DEADLINE_SECONDS``, the whole request, and a margin) with one conditional UPDATE
(``lease_until`` in the past or empty) and commits; it posts with no transaction open; it then
records the attempt in a short transaction that first extends the lease *only if it is still
its own* (``lease_token``). Two workers therefore never send one endpoint's events at the same
time, and a worker that stalls past its lease records nothing (the event is sent again: at
least once; receivers de-duplicate by the event id).

**Retries.** A 2xx delivers. 410 Gone disables the endpoint (its delivery stays pending).
Anything else (3xx included: redirects are not followed; 4xx included: skipping would break the
order) is retried after ``BASE * 2**(n-1)`` seconds, each wait at most ``CAP``, longer when the
receiver's ``Retry-After`` asks, for ``VOLBAL_WEBHOOK_RETRY_HOURS``; then the delivery is
failed, the endpoint disabled and a ``webhook_failed`` alert recorded on the event's stream
(its position, or its portfolio).
Re-enabling the endpoint (API ``PATCH active: true``, the admin's retry) starts a new window."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from events.models import Event, EventType
from events.services import event_record, stream_of
from events.webhooks import transport
from events.webhooks.models import (
    ALL,
    DeliveryStatus,
    DisabledReason,
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
    secret_of,
)
from volbal import clock
from volbal.renderers import dumps_exact

USER_AGENT = "volbal-webhooks/1"


def _seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


# What a worker may need besides the request while it holds the lease: resolving the name
# (not bounded by the deadline) and recording the attempt.
LEASE_MARGIN_SECONDS = 30


def lease_length() -> dt.timedelta:
    """Longer than one request can take: its deadline, and a margin. A request bounded only per
    read would outlive the lease, and the next worker would send the same event meanwhile."""
    return _seconds(settings.VOLBAL_WEBHOOK_DEADLINE_SECONDS + LEASE_MARGIN_SECONDS)


def backoff(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: ``BASE * 2**(attempts-1)`` at most
    ``CAP``, or the receiver's ``Retry-After`` when that is longer (also at most ``CAP``)."""
    cap = settings.VOLBAL_WEBHOOK_BACKOFF_CAP_SECONDS
    wait = min(settings.VOLBAL_WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** min(attempts - 1, 40), cap)
    if retry_after is not None:
        wait = max(wait, min(retry_after, cap))
    return _seconds(wait)


def _iso(moment: dt.datetime) -> str:
    # as the API renders times (REST framework: UTC as "Z")
    text = moment.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def payload(event: Event) -> dict:
    """The body sent for ``event``: its id (the receiver's de-duplication key) and what the
    position's events API shows."""
    return {
        "id": event.id,
        "type": event.type,
        "position_id": event.position_id,
        "portfolio_id": event.portfolio_id,
        "order_id": event.order_id,
        "created_at": _iso(event.created_at),
        "message": event.message,
        "inputs": event.inputs,
        "outputs": event.outputs,
        "actor": {"source": event.actor_source, "name": event.actor_name,
                  "user_id": event.actor_user_id},
    }


def next_event_ids(endpoint: WebhookEndpoint, limit: int) -> list[int]:
    """The endpoint's next events, lowest id first: its owner's events written since it was
    registered, of its types, past the cursor of their stream (each position's events, each
    portfolio's own)."""
    quote = connection.ops.quote_name
    event_t = quote(Event._meta.db_table)
    # by name from the app registry: the log is below positions (events.models.Event)
    position_t = quote(apps.get_model("positions", "Position")._meta.db_table)
    portfolio_t = quote(apps.get_model("positions", "Portfolio")._meta.db_table)
    cursor_t = quote(WebhookCursor._meta.db_table)
    created_at = Event._meta.get_field("created_at").get_db_prep_value(endpoint.created_at,
                                                                       connection)
    params: list = [endpoint.pk, endpoint.owner_id, created_at]
    types = ""
    if ALL not in endpoint.event_types:
        types = f" AND e.type IN ({', '.join(['%s'] * len(endpoint.event_types))})"
        params += list(endpoint.event_types)

    def stream(owners_t: str, column: str, own: str) -> str:
        # the events of the owner's rows of owners_t (positions or portfolios) on ``column``,
        # past the row's cursor
        return (f"SELECT e.id FROM {owners_t} s "
                f"LEFT JOIN {cursor_t} c ON c.endpoint_id = %s AND c.stream_id = s.id "
                f"JOIN {event_t} e ON e.{column} = s.id{own} "
                f"AND e.id > COALESCE(c.last_event_id, 0) "
                f"WHERE s.owner_id = %s AND e.created_at >= %s{types}")

    # a portfolio's own events: those of no position (the log stores that as '')
    own = " AND e.position_id = ''"
    sql = (f"{stream(position_t, 'position_id', '')} UNION ALL "
           f"{stream(portfolio_t, 'portfolio_id', own)} ORDER BY 1 LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *params, limit])
        return [row[0] for row in cursor.fetchall()]


@dataclass
class Outcome:
    """What one run over an endpoint did."""

    endpoint_id: str
    claimed: bool = False
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    more: bool = False  # events left when the batch ran out
    lease_lost: bool = False
    errors: list[str] = field(default_factory=list)


def _claim(endpoint_id: str, now: dt.datetime) -> str | None:
    token = secrets.token_hex(16)
    due = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True).exclude(
        lease_until__gt=now).exclude(next_attempt_at__gt=now)
    return token if due.update(lease_until=now + lease_length(), lease_token=token) else None


def _release(endpoint_id: str, token: str) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, lease_token=token).update(
        lease_until=None, lease_token="")


def _delivery(endpoint: WebhookEndpoint, event_id: int) -> WebhookDelivery:
    delivery, _ = WebhookDelivery.objects.get_or_create(endpoint=endpoint, event_id=event_id)
    return delivery


def _advance_cursor(endpoint_id: str, event: Event) -> None:
    cursor, created = WebhookCursor.objects.get_or_create(
        endpoint_id=endpoint_id, stream_id=stream_of(event.position_id, event.portfolio_id),
        defaults={"last_event_id": event.id})
    if not created:
        WebhookCursor.objects.filter(pk=cursor.pk, last_event_id__lt=event.id).update(
            last_event_id=event.id)


def _alert(endpoint: WebhookEndpoint, delivery: WebhookDelivery, event: Event, *,
           reason: str, answer: transport.Answer, attempts: int) -> None:
    # what the owner reads (the event is theirs and is sent out): no resolved addresses
    error = transport.public_error(answer.error)
    why = f"HTTP {answer.status}" if answer.status is not None else error
    if reason == DisabledReason.GONE:
        message = (f"Webhook {endpoint.pk} ({endpoint.url}) answered 410 Gone for event "
                   f"{event.id}; the endpoint is disabled.")
    else:
        message = (f"Webhook {endpoint.pk} ({endpoint.url}) failed to receive event {event.id} "
                   f"({event.type}) after {attempts} attempts over "
                   f"{settings.VOLBAL_WEBHOOK_RETRY_HOURS} h (last: {why}); the endpoint is "
                   f"disabled until it is re-enabled.")
    # on the event's stream: its position, or the portfolio of a portfolio's own event
    own = not event.position_id
    event_record(position_id=event.position_id, portfolio_id=event.portfolio_id if own else None,
                 type=EventType.WEBHOOK_FAILED, message=message,
                 inputs={"endpoint_id": endpoint.pk, "url": endpoint.url, "event_id": event.id,
                         "delivery_id": delivery.pk},
                 outputs={"reason": reason, "attempts": attempts,
                          "last_status_code": answer.status, "last_error": error})


def _record(endpoint: WebhookEndpoint, token: str, delivery: WebhookDelivery, event: Event,
            answer: transport.Answer, sent_at: dt.datetime, outcome: Outcome) -> bool:
    """Record one attempt; whether the run may go on to the next event."""
    now = clock.now()
    with transaction.atomic():
        still_ours = WebhookEndpoint.objects.filter(pk=endpoint.pk, lease_token=token,
                                                    active=True)
        if not still_ours.update(lease_until=now + lease_length()):
            outcome.lease_lost = True
            return False
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        number = delivery.attempt_count + 1
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, at=sent_at, status_code=answer.status,
            error=answer.error, duration_ms=answer.duration_ms,
            response_excerpt=answer.excerpt[:500])
        first = delivery.first_attempt_at or sent_at
        common = {"attempt_count": number, "first_attempt_at": first, "last_attempt_at": sent_at,
                  "last_status_code": answer.status, "last_error": answer.error}
        if answer.ok:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                **common, status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
            _advance_cursor(endpoint.pk, event)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(next_attempt_at=None)
            outcome.delivered += 1
            return True
        outcome.failed_attempts += 1
        outcome.errors.append(f"event {event.id}: "
                              f"{answer.status if answer.status is not None else answer.error}")
        deadline = first + dt.timedelta(hours=settings.VOLBAL_WEBHOOK_RETRY_HOURS)
        gone = answer.status == 410
        if gone or now >= deadline:
            # Give up: 410 disables the endpoint at once (the delivery stays pending, sent again
            # if the owner re-enables it); past the retry window the delivery has failed.
            reason = DisabledReason.GONE if gone else DisabledReason.FAILED
            ended = {} if gone else {"status": DeliveryStatus.FAILED}
            WebhookDelivery.objects.filter(pk=delivery.pk).update(**common, **ended,
                                                                  next_attempt_at=None)
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                active=False, disabled_reason=reason, next_attempt_at=None,
                updated_at=timezone.now())
            _alert(endpoint, delivery, event, reason=reason, answer=answer, attempts=number)
            outcome.gave_up += 1
            return False
        retry_at = min(now + backoff(number, answer.retry_after), deadline)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**common, next_attempt_at=retry_at)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(next_attempt_at=retry_at)
        return False


def endpoint_deliver(endpoint_id: str, *, batch: int = 100) -> Outcome:
    """Send up to ``batch`` of the endpoint's next events, in order, if it is active, due and
    not leased by another worker."""
    outcome = Outcome(endpoint_id)
    token = _claim(endpoint_id, clock.now())
    if token is None:
        return outcome
    outcome.claimed = True
    try:
        return _send(endpoint_id, token, batch, outcome)
    except (WebhookEndpoint.DoesNotExist, IntegrityError):
        return outcome  # deleted by its owner meanwhile
    finally:
        _release(endpoint_id, token)


def _send(endpoint_id: str, token: str, batch: int, outcome: Outcome) -> Outcome:
    """Send the leased endpoint's next events, one at a time, each recorded before the next."""
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    secret = secret_of(endpoint)
    ids = next_event_ids(endpoint, batch + 1)
    outcome.more = len(ids) > batch
    for event_id in ids[:batch]:
        event = Event.objects.get(pk=event_id)
        delivery = _delivery(endpoint, event_id)
        body = dumps_exact(payload(event))
        sent_at = clock.now()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            transport.EVENT_ID_HEADER: str(event.id),
            "Volbal-Event-Type": event.type,
            "Volbal-Delivery-Id": delivery.pk,
            transport.SIGNATURE_HEADER: transport.sign(secret, int(sent_at.timestamp()),
                                                       body),
        }
        assert not connection.in_atomic_block, "never post inside a transaction"
        answer = transport.post(endpoint.url, body, headers,
                                timeout=settings.VOLBAL_WEBHOOK_TIMEOUT_SECONDS,
                                deadline=settings.VOLBAL_WEBHOOK_DEADLINE_SECONDS,
                                allow_private=settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE)
        if not _record(endpoint, token, delivery, event, answer, sent_at, outcome):
            outcome.more = False
            break
    return outcome


def due_endpoint_ids(now: dt.datetime | None = None) -> list[str]:
    """Active endpoints not backing off and not leased: the candidates of a pass."""
    now = now or clock.now()
    return list(WebhookEndpoint.objects.filter(active=True).exclude(lease_until__gt=now)
                .exclude(next_attempt_at__gt=now).order_by("created_at", "id")
                .values_list("pk", flat=True))


def deliver_pass(*, batch: int = 100, on_endpoint=None) -> list[Outcome]:
    """One pass over every due endpoint (``manage.py deliver_webhooks``); ``on_endpoint`` is
    called with each outcome."""
    outcomes = []
    for endpoint_id in due_endpoint_ids():
        while True:
            outcome = endpoint_deliver(endpoint_id, batch=batch)
            outcomes.append(outcome)
            if on_endpoint:
                on_endpoint(outcome)
            if not outcome.more:
                break
    return outcomes
