"""The audit log in the admin: read-only for everyone, superusers included."""

from __future__ import annotations

from django.contrib import admin

from events.models import Event
from volbal.admin import shown_time


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    # the message is what an operator reads: ids are in it, in the filters and one click away
    list_display = ("id", "time", "type", "ticker", "actor_shown", "message")
    list_filter = ("type", "actor_source", "created_at")
    search_fields = ("position__id", "order__id", "message", "actor_name")
    list_select_related = ("position", "order")
    readonly_fields = (
        "id",
        "position",
        "order",
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

    @admin.display(description="ticker", ordering="position__ticker")
    def ticker(self, obj):
        return obj.position.ticker

    @admin.display(description="actor", ordering="actor_name")
    def actor_shown(self, obj):
        return str(obj.actor)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


from events.webhooks import admin as webhooks_admin  # noqa: E402,F401  (registers its screens)
