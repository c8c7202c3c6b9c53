"""The performance endpoints of a position and of a portfolio (docs/returns.md): the figures
(``…/performance``), the workbook (``…/performance.xlsx``) and the picture
(``…/performance.png``), one implementation for both viewsets."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from positions.reports import PERFORMANCE_FILE_ACTIONS, performance_file
from positions.serializers import (
    PERFORMANCE_ERRORS,
    PERFORMANCE_FILES,
    PERFORMANCE_PARAMETERS,
    PICTURE_ERRORS,
    PerformanceSerializer,
    performance_body,
    performance_span,
)
from volbal.schema import errors, read_errors
from volbal.throttling import EXPENSIVE

FLOWS = {
    "position": "its opening, deposits and withdrawals on it, transfers in and out of it",
    "portfolio": "its opening cash, deposits and withdrawals on it and on its positions, and a "
                 "position's value as it joins (+) or leaves (-); transfers inside it are not "
                 "flows",
}


def performance_views(noun: str):
    """A viewset base with the three performance actions of a ``noun`` (``position`` or
    ``portfolio``); the viewset answers ``performance_of(request, pk, since=, until=)`` with
    ``(id, title of its picture, Performance)``, 404 for another owner's."""
    not_found = errors((404, f"{noun}_not_found"))

    class PerformanceViews:
        @property
        def throttle_scope(self):
            # drawing a picture or writing a workbook costs; the figures alone do not
            return (EXPENSIVE if getattr(self, "action", None) in PERFORMANCE_FILE_ACTIONS
                    else None)

        @extend_schema(
            summary=f"The {noun}'s returns over a span, with a daily series",
            description="Time-weighted return (the span cut at every flow, each piece valued at "
            "the prices known at its ends, chain-linked), money-weighted return (the annual "
            "XIRR of the flows and the end value), net flows, start and end value, and the "
            f"value at each session's close. The {noun}'s flows: {FLOWS[noun]}. A return that "
            "cannot be stated is null with its reason. 409 `price_unknown` when a position "
            "held shares at an instant no price of its ticker was known.",
            parameters=PERFORMANCE_PARAMETERS,
            responses={200: PerformanceSerializer, **not_found,
                       **read_errors(*PERFORMANCE_ERRORS)},
        )
        @action(detail=True, methods=["get"])
        def performance(self, request, pk=None):
            obj_id, _title, perf = self.performance_of(request, pk, **performance_span(request))
            return Response({f"{noun}_id": obj_id, **performance_body(perf)})

        def _performance_file(self, request, pk, ext: str):
            obj_id, title, perf = self.performance_of(request, pk, **performance_span(request))
            return performance_file(perf, ext, name=obj_id, title=title)

        @extend_schema(summary=f"The {noun}'s returns as an xlsx workbook",
                       parameters=PERFORMANCE_PARAMETERS,
                       responses={**PERFORMANCE_FILES["xlsx"], **not_found,
                                  **read_errors(*PERFORMANCE_ERRORS, (429, "throttled"))})
        @action(detail=True, methods=["get"], url_path="performance.xlsx",
                url_name="performance-xlsx")
        def performance_xlsx(self, request, pk=None):
            return self._performance_file(request, pk, "xlsx")

        @extend_schema(summary=f"The {noun}'s returns as a picture",
                       parameters=PERFORMANCE_PARAMETERS,
                       responses={**PERFORMANCE_FILES["png"], **not_found,
                                  **read_errors(*PERFORMANCE_ERRORS[:1], *PICTURE_ERRORS,
                                              (429, "throttled"))})
        @action(detail=True, methods=["get"], url_path="performance.png",
                url_name="performance-png")
        def performance_png(self, request, pk=None):
            return self._performance_file(request, pk, "png")

    return PerformanceViews
