"""Reads of the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from events.models import Event


def events_for_position(*, position_id: str) -> QuerySet[Event]:
    return Event.objects.filter(position_id=position_id).order_by("id")


def last_event(*, position_id: str) -> Event | None:
    """The position's latest event: what last changed it, when and by whom."""
    return Event.objects.filter(position_id=position_id).order_by("-id").first()
