"""Reads of the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from events.models import ALERT_TYPES, Event


def events_for_position(*, position_id: str) -> QuerySet[Event]:
    return Event.objects.filter(position_id=position_id).order_by("id")


def last_event(*, position_id: str) -> Event | None:
    """The position's latest event: what last changed it, when and by whom."""
    return Event.objects.filter(position_id=position_id).order_by("-id").first()


def alerts_of_owner(*, owner) -> QuerySet[Event]:
    """The alerts (``ALERT_TYPES``) on the owner's positions, oldest first."""
    return Event.objects.filter(type__in=ALERT_TYPES, position__owner=owner).order_by("id")
