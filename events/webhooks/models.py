"""Webhook endpoints, their per-stream cursors, deliveries and attempts: tables of the
``events`` app, loaded with its models (``events.models`` imports this module).

The event log is the outbox: nothing is copied into a queue table when an event is written. A
delivery row is made when the worker takes an event to send it; the cursor of (endpoint,
stream) is the last event of that stream the endpoint has received. A stream is a position's
events, or a portfolio's own (those of no position); see ``events.webhooks.delivery`` for why
the cursor is per stream."""

from __future__ import annotations

import base64
import hashlib
import hmac

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from volbal import ids

ALL = "all"  # an endpoint's event types: every type


def endpoint_id() -> str:
    return ids.new_id("whk")


def delivery_id() -> str:
    return ids.new_id("dlv")


class DisabledReason(models.TextChoices):
    NONE = "", "active"
    OWNER = "owner", "disabled by its owner"
    OPERATOR = "operator", "disabled by an operator"
    GONE = "gone", "the receiver answered 410 Gone"
    FAILED = "failed", "a delivery failed for the whole retry window"


# The reasons the API names (null while active).
DISABLED_REASONS = tuple(v for v in DisabledReason.values if v)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=endpoint_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    event_types = models.JSONField(default=list, help_text='Event types sent, or ["all"].')
    description = models.CharField(max_length=200, blank=True, default="")
    # The signing secret is derived from this seed and the server's key (secret_of):
    # the database alone cannot sign, and the secret is never stored to be shown again.
    secret_seed = models.CharField(max_length=64, editable=False)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=16, choices=DisabledReason.choices,
                                       blank=True, default="")
    # The same clock as Event.created_at: an endpoint receives the events written after it.
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    # Delivery state: the head event's next try (backoff), the lease of the worker sending
    # (no lock is held while it posts), and whether a delivery task is queued.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    lease_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    wake_queued = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("owner", "created_at", "id"), name="whk_owner_created")]
        constraints = [
            models.CheckConstraint(condition=Q(disabled_reason__in=DisabledReason.values),
                                   name="whk_disabled_reason_valid"),
            models.CheckConstraint(condition=Q(active=True, disabled_reason="")
                                   | Q(active=False) & ~Q(disabled_reason=""),
                                   name="whk_disabled_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    def receives(self, event_type: str) -> bool:
        return ALL in self.event_types or event_type in self.event_types


class WebhookCursor(models.Model):
    """The last event of a stream that ``endpoint`` has received (or given up on): the
    stream of a position's events, or of a portfolio's own events (those of no position)."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="cursors")
    # The position's id, or the portfolio's (their prefixes differ: pos_, pfl_); a plain id,
    # like the log's (events.models.Event): events sit below positions.
    stream_id = models.CharField(max_length=32, db_index=True)
    last_event_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=("endpoint", "stream_id"),
                                               name="whk_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} {self.stream_id} at event {self.last_event_id}"


class WebhookDelivery(models.Model):
    """One event sent to one endpoint: pending until a 2xx, failed after the retry window."""

    id = models.CharField(primary_key=True, max_length=32, default=delivery_id, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries")
    event = models.ForeignKey("events.Event", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("endpoint", "created_at", "id"), name="dlv_endpoint")]
        constraints = [
            models.UniqueConstraint(fields=("endpoint", "event"), name="dlv_once_per_event"),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values),
                                   name="dlv_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.id} event {self.event_id} -> {self.endpoint_id} {self.status}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, kept for support: when, what came back, how long."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE,
                                 related_name="attempts")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ("delivery", "number")
        constraints = [models.UniqueConstraint(fields=("delivery", "number"),
                                               name="whk_attempt_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"


def secret_of(endpoint: WebhookEndpoint) -> str:
    """The endpoint's signing secret, derived from its stored seed and the server's key
    (``VOLBAL_WEBHOOK_SECRET_KEY``): HMAC needs the secret itself, so it cannot be hashed like
    a password, and this way a copy of the database alone cannot sign."""
    mac = hmac.new(settings.VOLBAL_WEBHOOK_SECRET_KEY.encode(),
                   f"volbal-webhook:{endpoint.id}:{endpoint.secret_seed}".encode(),
                   hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")
