"""Reads of the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from events.models import Event


def events_for_position(*, position_id: str) -> QuerySet[Event]:
    return Event.objects.filter(position_id=position_id).order_by("id")
