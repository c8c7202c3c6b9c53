"""Every write to a webhook endpoint: register, change, disable, retry, delete, and waking its
delivery task. Reads are in ``events.webhooks.selectors``; sending is
``events.webhooks.delivery``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from events.models import EventType
from events.webhooks import transport
from events.webhooks.models import (
    ALL,
    DeliveryStatus,
    DisabledReason,
    WebhookDelivery,
    WebhookEndpoint,
)
from volbal.errors import DomainError


def not_found(endpoint_id) -> DomainError:
    return DomainError("webhook_not_found", f"No webhook endpoint {endpoint_id} among yours.",
                       status=404)


def secret_of(endpoint: WebhookEndpoint) -> str:
    """The endpoint's signing secret, derived from its stored seed and the server's key
    (``VOLBAL_WEBHOOK_SECRET_KEY``): HMAC needs the secret itself, so it cannot be hashed like
    a password, and this way a copy of the database alone cannot sign."""
    mac = hmac.new(settings.VOLBAL_WEBHOOK_SECRET_KEY.encode(),
                   f"volbal-webhook:{endpoint.id}:{endpoint.secret_seed}".encode(),
                   hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def event_types_checked(types) -> list[str]:
    """The event types an endpoint receives, checked: ``["all"]`` or known types, each once,
    sorted. Raises ``unknown_event_type`` (400) naming the unknown ones."""
    types = list(dict.fromkeys(types))
    unknown = [t for t in types if t != ALL and t not in EventType.values]
    if unknown:
        message = (f"Unknown event type {', '.join(map(repr, unknown))}; use \"all\" or types "
                   f"from: {', '.join(EventType.values)}.")
        raise DomainError("unknown_event_type", message, status=400,
                          fields={"event_types": message})
    if not types:
        raise DomainError("unknown_event_type", "Name at least one event type, or \"all\".",
                          status=400, fields={"event_types": "Must not be empty."})
    return [ALL] if ALL in types else sorted(types)


def url_checked(url: str) -> str:
    try:
        return transport.check_url(url, allow_private=settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE,
                                   resolve_name=True)
    except transport.UrlRefused as exc:
        raise DomainError(exc.code, str(exc), status=400, fields={"url": str(exc)}) from None


def endpoint_limit_checked(owner) -> None:
    """Raises ``webhook_limit_reached`` (409) when ``owner`` has the most endpoints allowed
    (``VOLBAL_WEBHOOK_MAX_ENDPOINTS``). Registration checks it under the owner's row lock; the
    admin's form checks it first, to show the error instead of adding."""
    if WebhookEndpoint.objects.filter(owner=owner).count() >= \
            settings.VOLBAL_WEBHOOK_MAX_ENDPOINTS:
        raise DomainError("webhook_limit_reached",
                          f"You have {settings.VOLBAL_WEBHOOK_MAX_ENDPOINTS} webhook "
                          "endpoints, the most allowed; delete one first.")


def webhook_create(*, owner, url: str, event_types: list[str], description: str = ""
                   ) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (shown to the owner this once)."""
    url = url_checked(url)
    event_types = event_types_checked(event_types)
    with transaction.atomic():
        # The owner's row serializes concurrent registrations, so the limit holds.
        type(owner).objects.select_for_update().filter(pk=owner.pk).first()
        endpoint_limit_checked(owner)
        endpoint = WebhookEndpoint.objects.create(
            owner=owner, url=url, event_types=event_types, description=description,
            secret_seed=secrets.token_hex(32))
    return endpoint, secret_of(endpoint)


def _locked(*, owner, endpoint_id) -> WebhookEndpoint:
    qs = WebhookEndpoint.objects.select_for_update()
    if owner is not None:
        qs = qs.filter(owner=owner)
    endpoint = qs.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise not_found(endpoint_id)
    return endpoint


def webhook_update(*, owner, endpoint_id: str, url: str | None = None,
                   event_types: list[str] | None = None, description: str | None = None,
                   active: bool | None = None) -> WebhookEndpoint:
    """Change an endpoint. ``active=False`` disables it (deliveries wait, nothing is skipped);
    ``active=True`` re-enables it and retries from its first undelivered event. A new ``url``
    ends the wait of a delivery in backoff: its events are retried now, with a new retry
    window (the owner fixed or moved the receiver)."""
    url = url_checked(url) if url is not None else None
    event_types = event_types_checked(event_types) if event_types is not None else None
    with transaction.atomic():
        endpoint = _locked(owner=owner, endpoint_id=endpoint_id)
        moved = url is not None and url != endpoint.url
        if url is not None:
            endpoint.url = url
        if event_types is not None:
            endpoint.event_types = event_types
        if description is not None:
            endpoint.description = description
        endpoint.updated_at = timezone.now()
        # only what the owner changes: the delivery state is the workers' (conditional updates)
        endpoint.save(update_fields=["url", "event_types", "description", "updated_at"])
        if active is True and not endpoint.active:
            _enable(endpoint)
        elif active is False and endpoint.active:
            _disable(endpoint, DisabledReason.OWNER)
        elif moved and endpoint.active:
            _retry_now(endpoint)
    return endpoint


def _enable(endpoint: WebhookEndpoint) -> None:
    """Active again; a failed delivery is pending again with a new retry window; a delivery
    task is queued at once."""
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.PENDING, first_attempt_at=None, next_attempt_at=None)
    endpoint.active, endpoint.disabled_reason = True, ""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=True, disabled_reason="")
    _retry_now(endpoint)


def _retry_now(endpoint: WebhookEndpoint) -> None:
    """The active endpoint's pending deliveries are due now, with a new retry window; a
    delivery task is queued at once."""
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        first_attempt_at=None, next_attempt_at=None)
    endpoint.next_attempt_at = None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(next_attempt_at=None,
                                                          updated_at=timezone.now())
    webhook_schedule(endpoint_id=endpoint.pk, force=True)


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.active, endpoint.disabled_reason = False, reason
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason=reason,
                                                          updated_at=timezone.now())


def webhook_retry(*, endpoint_id: str, owner=None) -> WebhookEndpoint:
    """Re-enable an endpoint and send its undelivered events again now (the admin's retry)."""
    with transaction.atomic():
        endpoint = _locked(owner=owner, endpoint_id=endpoint_id)
        _enable(endpoint)
    return endpoint


def webhook_disable(*, endpoint_id: str, reason: str = DisabledReason.OPERATOR,
                    owner=None) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = _locked(owner=owner, endpoint_id=endpoint_id)
        if endpoint.active:
            _disable(endpoint, reason)
    return endpoint


def webhook_delete(*, owner, endpoint_id: str) -> None:
    """Delete an endpoint with its deliveries and attempts (the events stay in the log)."""
    with transaction.atomic():
        _locked(owner=owner, endpoint_id=endpoint_id).delete()


# --- waking the delivery task --------------------------------------------------------------


def webhook_schedule(*, endpoint_id: str, run_after: dt.datetime | None = None,
                     force: bool = False) -> bool:
    """Queue the endpoint's delivery task (at ``run_after``, default now) unless one is queued
    already (``force``: queue anyway). Whether a task was queued. The flag is set and the task
    row inserted in one transaction: both commit or neither."""
    from events.webhooks.tasks import webhook_deliver

    with transaction.atomic():
        marked = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True, wake_queued=False) \
            .update(wake_queued=True)
        if not marked and not force:
            return False
        task = webhook_deliver.using(run_after=run_after) if run_after else webhook_deliver
        task.enqueue(endpoint_id)
    return True


def webhooks_wake(*, position_ids) -> int:
    """After a commit that wrote events of ``position_ids``: queue the delivery task of every
    active endpoint of their owners that has none queued. How many were queued.

    Every committed write runs this once, so it is one plain statement (no queryset to
    compile): usually it finds nothing."""
    ids = list(position_ids)
    quote = connection.ops.quote_name
    # by name from the app registry: the log is below positions (events.models.Event)
    position_t = quote(apps.get_model("positions", "Position")._meta.db_table)
    sql = (f"SELECT w.id FROM {quote(WebhookEndpoint._meta.db_table)} w "
           f"WHERE w.active AND NOT w.wake_queued AND w.owner_id IN "
           f"(SELECT p.owner_id FROM {position_t} p WHERE p.id IN "
           f"({', '.join(['%s'] * len(ids))}))")
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        found = [row[0] for row in cursor.fetchall()]
    return sum(webhook_schedule(endpoint_id=pk) for pk in found)
