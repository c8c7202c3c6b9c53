"""The audit log in the admin: read-only for everyone, superusers included."""

from __future__ import annotations

from django.contrib import admin

from events.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "type", "position", "order", "message")
    list_filter = ("type", "created_at")
    search_fields = ("position__id", "order__id", "message")
    list_select_related = ("position", "order")
    readonly_fields = (
        "id",
        "position",
        "order",
        "type",
        "message",
        "inputs",
        "outputs",
        "created_at",
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
