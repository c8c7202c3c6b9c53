"""Query filters (django-filter) for the positions list and the events list."""

from __future__ import annotations

import datetime as dt

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from events.models import ALERT_TYPES, Event, EventType
from positions.models import Position


class _UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time converted to UTC: PostgreSQL refuses UTC offsets beyond ±15:59 that
    Python accepts (up to ±23:59), so a time is never handed to it with its own offset."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError("Enter a time between the years 1 and 9999 in UTC.",
                                  code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class PositionFilter(django_filters.FilterSet):
    ticker = django_filters.CharFilter(field_name="ticker", lookup_expr="iexact")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Position
        fields = ("ticker", "created_after", "created_before")


BOOLEAN_CHOICES = (("true", "true"), ("false", "false"))  # anything else is a 400


class EventFilter(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(choices=EventType.choices)
    alert = django_filters.ChoiceFilter(choices=BOOLEAN_CHOICES, method="filter_alert")
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("type", "alert", "since", "until")

    def filter_alert(self, queryset, name, value):
        """``alert=true``: only alerts (events.models.ALERT_TYPES); ``false``: only the rest."""
        if value == "true":
            return queryset.filter(type__in=ALERT_TYPES)
        return queryset.exclude(type__in=ALERT_TYPES)


ALERT_CHOICES = [(value, label) for value, label in EventType.choices if value in ALERT_TYPES]


class AlertFilter(django_filters.FilterSet):
    """``GET /v1/alerts``: the caller's alerts over every position and portfolio."""

    type = django_filters.MultipleChoiceFilter(choices=ALERT_CHOICES)
    position = django_filters.CharFilter(field_name="position_id")
    ticker = django_filters.CharFilter(method="filter_ticker")
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ("type", "position", "ticker", "since", "until")

    def filter_ticker(self, queryset, name, value):
        """The alerts of positions in this ticker (case-insensitive): the log keeps position
        ids, not keys (events.models.Event), so a subquery on the positions."""
        return queryset.filter(
            position_id__in=Position.objects.filter(ticker__iexact=value).values("pk"))
