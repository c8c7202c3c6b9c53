"""The admin's webhooks: endpoints (never their secret; a new one is shown once, in the message
after adding it), deliveries with their attempts, and the retry and disable actions, through
``events.webhooks.services``. Registered by ``events.admin``."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from events.webhooks.models import (
    DisabledReason,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from volbal.admin import ReadOnlyAdminMixin
from volbal.errors import DomainError


def _services():
    """events.webhooks.services (the writes, the URL checks, the HTTP transport), imported when
    a form or an action uses it, not at django.setup(), which imports every admin module."""
    from events.webhooks import services

    return services


class EndpointForm(forms.ModelForm):
    event_types = forms.CharField(initial="all", help_text='Comma-separated event types, or '
                                                           '"all".')

    class Meta:
        model = WebhookEndpoint
        fields = ("owner", "url", "event_types", "description")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:  # (the id has a default: pk is set on add too)
            self.initial["event_types"] = ", ".join(self.instance.event_types)

    def clean_event_types(self):
        types = [t.strip() for t in self.cleaned_data["event_types"].split(",") if t.strip()]
        try:
            return _services().event_types_checked(types)
        except DomainError as exc:
            raise ValidationError(exc.message) from None

    def clean(self):
        data = super().clean()
        if self.instance._state.adding and data.get("owner") is not None:
            try:  # the API's bound, checked here so a refused addition adds and logs nothing
                _services().endpoint_limit_checked(data["owner"])
            except DomainError as exc:
                raise ValidationError(exc.message) from None
        return data

    def clean_url(self):
        try:
            return _services().url_checked(self.cleaned_data["url"])
        except DomainError as exc:
            raise ValidationError(exc.message) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("id", "owner", "url", "event_types", "active", "disabled_reason",
                    "next_attempt_at", "created_at")
    list_filter = ("active", "disabled_reason")
    search_fields = ("id", "url", "owner__username")
    readonly_fields = ("id", "active", "disabled_reason", "next_attempt_at", "created_at",
                       "updated_at")
    actions = ("retry", "disable")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "owner") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                _services().webhook_update(owner=None, endpoint_id=obj.pk, url=data["url"],
                                           event_types=data["event_types"],
                                           description=data["description"])
            else:
                endpoint, secret = _services().webhook_create(
                    owner=data["owner"], url=data["url"], event_types=data["event_types"],
                    description=data["description"])
                obj.pk = endpoint.pk
                self.message_user(request, f"The signing secret of {endpoint.pk}, shown this "
                                           f"once: {secret}", messages.WARNING)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Re-enable and retry undelivered events now",
                  permissions=["change"])
    def retry(self, request, queryset):
        for endpoint in queryset:
            _services().webhook_retry(endpoint_id=endpoint.pk)
        self.message_user(request, f"{queryset.count()} endpoint(s) re-enabled; their "
                                   "undelivered events are queued.", messages.SUCCESS)

    @admin.action(description="Disable (events wait, none is skipped)", permissions=["change"])
    def disable(self, request, queryset):
        for endpoint in queryset:
            _services().webhook_disable(endpoint_id=endpoint.pk, reason=DisabledReason.OPERATOR)
        self.message_user(request, f"{queryset.count()} endpoint(s) disabled.",
                          messages.SUCCESS)


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "at", "status_code", "error", "duration_ms", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "endpoint", "event", "status", "attempt_count", "last_status_code",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status",)
    search_fields = ("id", "endpoint__id", "endpoint__url")
    list_select_related = ("endpoint", "event")
    readonly_fields = ("id", "endpoint", "event", "status", "attempt_count", "created_at",
                       "first_attempt_at", "last_attempt_at", "next_attempt_at", "delivered_at",
                       "last_status_code", "last_error")
    fields = readonly_fields
    inlines = (AttemptInline,)
