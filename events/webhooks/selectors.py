"""Reads of webhook endpoints and deliveries, owner-scoped."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from events.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from volbal.errors import DomainError


def not_found(endpoint_id) -> DomainError:
    return DomainError("webhook_not_found", f"No webhook endpoint {endpoint_id} among yours.",
                       status=404)


def webhooks_of(*, owner) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=owner)


def webhook_get(*, owner, endpoint_id: str) -> WebhookEndpoint:
    endpoint = webhooks_of(owner=owner).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise not_found(endpoint_id)
    return endpoint


def deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return (WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
            .prefetch_related(Prefetch("attempts",
                                       queryset=WebhookAttempt.objects.order_by("number"))))
