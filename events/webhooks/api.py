"""The /v1/webhooks endpoints: register, read, change and delete your endpoints; their
deliveries with every attempt. The secret is in the answer to POST only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from events.models import EventType
from events.webhooks import selectors, services, transport
from events.webhooks.models import ALL, DISABLED_REASONS, DeliveryStatus
from volbal.api import MissingBeforeNotAllowed, StrictSerializer, keyset_page
from volbal.schema import PAGING, errors, page_of, read_errors, write_errors
from volbal.throttling import EXPENSIVE

NOT_FOUND = errors((404, "webhook_not_found"))
TYPES = [ALL, *EventType.values]
_URL_ERRORS = (400, "webhook_url_invalid or webhook_url_not_allowed or unknown_event_type")


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, trim_whitespace=False,
                                help_text="http(s) URL that receives the events. Private, "
                                          "loopback and link-local addresses are refused.")
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=40), min_length=1, max_length=len(TYPES),
        default=[ALL], help_text=f"Event types to send, or [\"{ALL}\"] (the default).")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                        default="")


class WebhookUpdateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, required=False, trim_whitespace=False)
    event_types = serializers.ListField(child=serializers.CharField(max_length=40),
                                        min_length=1, max_length=len(TYPES), required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    active = serializers.BooleanField(required=False, help_text=(
        "false disables (events wait, none is skipped); true re-enables and retries from "
        "the first undelivered event, with a new retry window."))


class WebhookSerializer(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=TYPES))
    description = serializers.CharField(allow_blank=True)
    active = serializers.BooleanField()
    disabled_reason = serializers.ChoiceField(
        choices=DISABLED_REASONS, allow_null=True,
        help_text="Why it is disabled (owner, operator, gone: the receiver answered 410, "
                  "failed: a delivery failed for the whole retry window); null while active.")
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text="When a failing event is tried again (null: not waiting).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret. Shown this once: store it.")


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True,
                                           help_text="The receiver's answer; null if none.")
    error = serializers.CharField(allow_blank=True, help_text=(
        "Why no answer came: a code and a sentence (webhook_url_not_allowed, "
        "webhook_host_unresolvable, timeout, tls_failed, connection_failed); the addresses "
        "involved are shown to operators only."))
    duration_ms = serializers.IntegerField()


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField()
    event_id = serializers.IntegerField()
    event_type = serializers.ChoiceField(choices=EventType.choices)
    position_id = serializers.CharField(allow_blank=True,
                                        help_text="Empty for a portfolio's own event.")
    portfolio_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempt_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True, help_text="The last attempt's error.")
    attempts = AttemptSerializer(many=True)


def _body(endpoint) -> dict:
    return {"id": endpoint.id, "url": endpoint.url, "event_types": endpoint.event_types,
            "description": endpoint.description, "active": endpoint.active,
            "disabled_reason": endpoint.disabled_reason or None,
            "next_attempt_at": endpoint.next_attempt_at, "created_at": endpoint.created_at,
            "updated_at": endpoint.updated_at}


def _delivery(d) -> dict:
    return {"id": d.id, "event_id": d.event_id, "event_type": d.event.type,
            "position_id": d.event.position_id, "portfolio_id": d.event.portfolio_id,
            "status": d.status,
            "attempt_count": d.attempt_count, "created_at": d.created_at,
            "next_attempt_at": d.next_attempt_at, "delivered_at": d.delivered_at,
            "last_status_code": d.last_status_code,
            "last_error": transport.public_error(d.last_error),
            "attempts": [{"number": a.number, "at": a.at, "status_code": a.status_code,
                          "error": transport.public_error(a.error),
                          "duration_ms": a.duration_ms}
                         for a in d.attempts.all()]}


class WebhookViewSet(MissingBeforeNotAllowed, viewsets.ViewSet):
    lookup_value_regex = "[^/]+"
    # A replay of the registration (same Idempotency-Key) answers the endpoint without its
    # secret: the secret is shown once and never stored (orders.middleware).
    replay_omits = ("secret",)

    @property
    def throttle_scope(self):
        # Registering or changing an endpoint points this server's requests somewhere.
        return EXPENSIVE if getattr(self, "action", None) in ("create", "partial_update") \
            else None

    @extend_schema(
        summary="Register a webhook endpoint",
        description="Events of your positions and portfolios whose type is listed are POSTed "
                    "to the URL in order per position (and per portfolio for a portfolio's own "
                    "events), at least once, signed (`Volbal-Signature: t=<unix "
                    "time>,v1=<hex HMAC-SHA256 of \"t.body\">`, with the secret returned here "
                    "once) with the event id in `Volbal-Event-Id` for de-duplication.",
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer,
                   **write_errors(_URL_ERRORS, (409, "webhook_limit_reached"),
                                  (429, "throttled"))},
        examples=[OpenApiExample("Fills and alerts", request_only=True, value={
            "url": "https://example.com/volbal", "event_types": ["order_filled",
                                                                 "webhook_failed"]})],
        tags=["webhooks"])
    def create(self, request):
        ser = WebhookCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_create(owner=request.user, **ser.validated_data)
        return Response({**_body(endpoint), "secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Your webhook endpoints, oldest first", parameters=[*PAGING],
                   responses={200: page_of("WebhookPage",
                                           {"webhooks": WebhookSerializer(many=True)}),
                              **read_errors()},
                   tags=["webhooks"])
    def list(self, request):
        items, next_cursor = keyset_page(request, selectors.webhooks_of(owner=request.user))
        return Response({"webhooks": [_body(e) for e in items], "next": next_cursor})

    @extend_schema(summary="A webhook endpoint (never its secret)",
                   responses={200: WebhookSerializer, **NOT_FOUND, **read_errors()},
                   tags=["webhooks"])
    def retrieve(self, request, pk=None):
        return Response(_body(selectors.webhook_get(owner=request.user, endpoint_id=pk)))

    @extend_schema(summary="Change a webhook endpoint; disable or re-enable it",
                   request=WebhookUpdateSerializer,
                   responses={200: WebhookSerializer, **NOT_FOUND,
                              **write_errors(_URL_ERRORS, (429, "throttled"))},
                   tags=["webhooks"])
    def partial_update(self, request, pk=None):
        ser = WebhookUpdateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        endpoint = services.webhook_update(owner=request.user, endpoint_id=pk,
                                           **ser.validated_data)
        return Response(_body(endpoint))

    @extend_schema(summary="Delete a webhook endpoint with its deliveries",
                   responses={204: None, **NOT_FOUND, **read_errors()}, tags=["webhooks"])
    def destroy(self, request, pk=None):
        services.webhook_delete(owner=request.user, endpoint_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="An endpoint's deliveries with every attempt, oldest first",
                   parameters=[*PAGING],
                   responses={200: page_of("WebhookDeliveryPage",
                                           {"deliveries": DeliverySerializer(many=True)},
                                           {"webhook_id": serializers.CharField()}),
                              **NOT_FOUND, **read_errors()},
                   tags=["webhooks"])
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        endpoint = selectors.webhook_get(owner=request.user, endpoint_id=pk)
        items, next_cursor = keyset_page(request, selectors.deliveries_of(endpoint=endpoint))
        return Response({"webhook_id": endpoint.id, "deliveries": [_delivery(d) for d in items],
                         "next": next_cursor})
