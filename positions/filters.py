"""Query filters (django-filter) for the positions list and the events list."""

from __future__ import annotations

import django_filters

from events.models import Event, EventType
from positions.models import Position


class PositionFilter(django_filters.FilterSet):
    ticker = django_filters.CharFilter(field_name="ticker", lookup_expr="iexact")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Position
        fields = ("ticker", "created_after", "created_before")


class EventFilter(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(choices=EventType.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("type", "since", "until")
