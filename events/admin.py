"""The audit log in the admin: read-only for everyone, superusers included."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.db.models import OuterRef, Subquery

from events.models import ALERT_TYPES, Event
from events.webhooks import admin as _webhooks_admin  # noqa: F401  (registers its screens)
from volbal.admin import ReadOnlyAdminMixin, shown_time


class AlertFilter(admin.SimpleListFilter):
    """Alerts (events.models.ALERT_TYPES): what an operator must look at."""

    title = "alerts"
    parameter_name = "alert"

    def lookups(self, request, model_admin):
        return (("true", "Alerts only"), ("false", "Other events"))

    def queryset(self, request, queryset):
        if self.value() == "true":
            return queryset.filter(type__in=ALERT_TYPES)
        if self.value() == "false":
            return queryset.exclude(type__in=ALERT_TYPES)
        return queryset


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # the message is what an operator reads: ids are in it, in the filters and one click away
    list_display = ("id", "time", "type", "ticker", "actor_shown", "message")
    list_filter = (AlertFilter, "type", "actor_source", "created_at")
    search_fields = ("position_id", "order_id", "message", "actor_name")
    ordering = ("-id",)  # the newest first
    readonly_fields = (
        "id",
        "position_id",
        "order_id",
        "type",
        "message",
        "inputs",
        "outputs",
        "actor_shown",
        "created_at",
    )

    @admin.display(description="time", ordering="id")
    def time(self, obj):
        return shown_time(obj.created_at)

    def get_queryset(self, request):
        # The log keeps position ids, not keys (events.models.Event); the ticker is read by a
        # subquery. The position model is taken from the app registry, not imported: the log
        # is below positions (docs/architecture.md#layers-and-the-direction-of-imports).
        positions = apps.get_model("positions", "Position").objects
        return super().get_queryset(request).annotate(position_ticker=Subquery(
            positions.filter(pk=OuterRef("position_id")).values("ticker")[:1]))

    @admin.display(description="ticker", ordering="position_ticker")
    def ticker(self, obj):
        return obj.position_ticker

    @admin.display(description="actor", ordering="actor_name")
    def actor_shown(self, obj):
        return str(obj.actor)

