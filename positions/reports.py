"""A position's or a portfolio's returns as the admin shows and downloads them
(docs/returns.md): the figures as labelled rows, an xlsx workbook and a PNG picture, drawn by
the strategy's export helpers (positions.strategy.export) from a
:class:`positions.performance.Performance`."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from volbal.admin import shown_decimal
from volbal.errors import DomainError

if TYPE_CHECKING:  # the admin screens import this module at django.setup(), for every command:
    # the performance (numpy) and the export helpers (matplotlib's callers, openpyxl's) are
    # imported by the functions that compute, write or draw
    from positions.performance import Performance

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The API's actions that draw or write a performance's files: the expensive scope throttles them
PERFORMANCE_FILE_ACTIONS = ("performance_xlsx", "performance_png")


def performance_summary(perf: Performance) -> list[tuple[str, object]]:
    """The figures as ``(label, value)`` rows; a return that is None is followed by why."""
    f = perf.figures
    rows: list[tuple[str, object]] = [
        ("Since", perf.since.isoformat()), ("Until", perf.until.isoformat()),
        ("Days", f.days), ("Start value", f.start_value), ("End value", f.end_value),
        ("Net flows", f.net_flows),
    ]
    for label, rate in (("Time-weighted return", f.time_weighted),
                        ("Money-weighted return (annual)", f.money_weighted)):
        rows.append((label, rate.value))
        if rate.value is None:
            rows.append((f"{label}: why none", rate.sentence))
        if rate.note:
            rows.append((f"{label}: note", rate.note))
    return rows


def performance_xlsx(perf: Performance) -> bytes:
    from positions.strategy.export import tables

    buffer = io.BytesIO()
    tables.write_returns_xlsx(
        buffer, summary=performance_summary(perf),
        daily=[(d.session, d.value, d.flows, d.time_weighted_return) for d in perf.daily])
    return buffer.getvalue()


def performance_png(perf: Performance, *, title: str) -> bytes:
    from positions.strategy.export import charts

    buffer = io.BytesIO()
    charts.write_returns_plot(
        buffer, title=title, days=[d.session for d in perf.daily],
        values=[d.value for d in perf.daily], flows=[d.flows for d in perf.daily],
        returns=[d.time_weighted_return for d in perf.daily])
    return buffer.getvalue()


class ReturnsAdminMixin:
    """An admin screen's returns (docs/returns.md): the ``returns_shown`` block (from the
    opening to now) and its two downloads, ``<id>/performance.xlsx`` and
    ``<id>/performance.png`` (:meth:`returns_urls`, named ``<app>_<model>_performance_xlsx``
    and ``_png``). The screen says how to compute them: ``performance_of(obj)`` and
    ``performance_title(obj)``."""

    def performance_of(self, obj) -> Performance:
        raise NotImplementedError

    def performance_title(self, obj) -> str:
        raise NotImplementedError

    def _url_name(self) -> str:
        return f"{self.model._meta.app_label}_{self.model._meta.model_name}"

    def returns_urls(self) -> list:
        name = self._url_name()
        return [path(f"<path:object_id>/performance.{ext}", self.admin_site.admin_view(view),
                     name=f"{name}_performance_{ext}")
                for ext, view in (("xlsx", self.performance_xlsx_view),
                                  ("png", self.performance_png_view))]

    def viewed(self, request, object_id):
        """The object the request may view, or 404 / 403."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("Not found.")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _file(self, request, object_id, ext: str) -> HttpResponse:
        obj = self.viewed(request, object_id)
        try:
            return performance_file(self.performance_of(obj), ext, name=obj.pk,
                                    title=self.performance_title(obj))
        except DomainError as refused:  # the admin shows the sentence, with the same status
            return HttpResponse(refused.message, status=refused.status,
                                content_type="text/plain; charset=utf-8")

    def performance_png_view(self, request, object_id):
        return self._file(request, object_id, "png")

    def performance_xlsx_view(self, request, object_id):
        return self._file(request, object_id, "xlsx")

    @admin.display(description="returns (opening to now)")
    def returns_shown(self, obj):
        return returns_html(lambda: self.performance_of(obj), self._url_name(), obj.pk)


def no_session_closed(perf: Performance) -> DomainError:
    return DomainError("no_session_closed", "No exchange session closed between "
                       f"{perf.since.isoformat()} and {perf.until.isoformat()}, so the picture "
                       "(the value at each session's close) has nothing to draw; the figures "
                       "(…/performance) and the workbook answer for any span.", status=409)


def performance_file(perf: Performance, ext: str, *, name: str, title: str) -> HttpResponse:
    """The xlsx (a download named ``<name>-performance.xlsx``) or the PNG of ``perf``; the
    PNG of a span without a closed session is 409 ``no_session_closed`` (nothing to draw)."""
    if ext == "xlsx":
        return xlsx_response(performance_xlsx(perf), f"{name}-performance.xlsx")
    if not perf.daily:
        raise no_session_closed(perf)
    return HttpResponse(performance_png(perf, title=title), content_type="image/png")


def xlsx_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _shown(label: str, value) -> str:
    if isinstance(value, Decimal):
        if "return" in label.lower():
            return f"{shown_decimal((value * 100).quantize(Decimal('0.01')))} %"
        return shown_decimal(value, money=True)
    return "none" if value is None else str(value)


def returns_html(make, url_name: str, pk) -> str:
    """The admin's returns block: the figures of ``make()`` (a Performance) as a table, a link
    to the xlsx and the picture (``admin:<url_name>_performance_xlsx`` / ``_png``); a refusal
    (no price known) is shown as its sentence, and so is a picture that has nothing to draw (no
    session closed in the span: :func:`no_session_closed`) instead of an image that cannot load."""
    try:
        perf = make()
    except DomainError as exc:
        return exc.message
    rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                            ((label, _shown(label, v)) for label, v in performance_summary(perf)))
    args = [quote(pk)]
    if perf.daily:
        picture = format_html(
            "<img src='{}' alt='value and time-weighted return over time' width='990'>",
            reverse(f"admin:{url_name}_performance_png", args=args))
    else:
        picture = format_html("<p>{}</p>", no_session_closed(perf).message)
    return format_html(
        "<table>{}</table><p><a href='{}'>Download the figures and the daily series (xlsx)</a>"
        "</p>{}", rows, reverse(f"admin:{url_name}_performance_xlsx", args=args), picture)
