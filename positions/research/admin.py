"""The admin's research jobs: status, progress, a sweep's heatmap and top cells, and "apply this
cell to a position" through the position's configuration service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from positions.models import Position
from positions.research.models import JobKind, JobStatus, ResearchJob
from volbal.admin import ReadOnlyAdminMixin
from volbal.errors import DomainError

# The research code (numpy, the backtest engine, the sweep) and the jobs' services are imported
# by the screen's columns and views, not at django.setup(), which imports every admin module
# for every command (manage.py sweep, trade, backtest, a server worker).


class ApplyCellForm(forms.Form):
    position = forms.ModelChoiceField(queryset=Position.objects.order_by("id"),
                                      help_text="Its strategy fields on the grid are set to the "
                                                "cell's values (the others are kept).")


@admin.register(ResearchJob)
class ResearchJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Jobs are started through the API; their rows are the workers' to write.
    list_display = ("id", "owner", "kind", "status", "progress", "created_at", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("id", "owner__username")
    fields = ("id", "owner", "kind", "status", "progress", "error", "params", "created_at",
              "started_at", "finished_at", "heatmap", "top_cells")
    readonly_fields = fields

    @admin.display(description="progress")
    def progress(self, obj):
        from positions.research import services

        return services.progress_text(obj)

    def get_urls(self):
        return [
            path("<path:object_id>/heatmap.png", self.admin_site.admin_view(self.heatmap_view),
                 name="research_researchjob_heatmap"),
            path("<path:object_id>/apply/<int:cell>/", self.admin_site.admin_view(
                self.apply_view), name="research_researchjob_apply"),
            *super().get_urls(),
        ]

    def _sweep(self, request, object_id) -> ResearchJob:
        sweep = self.get_object(request, unquote(object_id))
        if sweep is None:
            raise Http404("No such research job.")
        return sweep

    def heatmap_view(self, request, object_id):
        sweep = self._sweep(request, object_id)
        if sweep.status != JobStatus.SUCCEEDED or sweep.kind != JobKind.SWEEP:
            raise Http404("No heatmap: the sweep has not succeeded.")
        from positions.research import services
        from positions.strategy.research import sweep as research

        try:
            png = services.heatmap_png(sweep, None, None, None)
        except research.GridError as exc:
            raise Http404(str(exc)) from None
        return HttpResponse(png, content_type="image/png")

    @admin.display(description="heatmap")
    def heatmap(self, obj):
        if (obj.status != JobStatus.SUCCEEDED or obj.kind != JobKind.SWEEP
                or len(obj.params.get("grid", {})) < 2):
            return "-"
        return format_html("<img src='{}' alt='heatmap of sweep {}' width='800'>",
                           reverse("admin:research_researchjob_heatmap", args=[quote(obj.pk)]),
                           obj.pk)

    @admin.display(description="top cells")
    def top_cells(self, obj):
        if obj.status != JobStatus.SUCCEEDED or obj.kind != JobKind.SWEEP:
            return "-"
        from positions.research import services

        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td><a href='{}'>apply this cell to a position</a></td></tr>",
            ((e["rank"], e["cell"], ", ".join(f"{k}={v}" for k, v in e["params"].items()),
              e["score"], e["stability"],
              reverse("admin:research_researchjob_apply", args=[quote(obj.pk), e["cell"]]))
             for e in services.top_cells(obj)))
        return format_html("<table><tr><th>rank</th><th>cell</th><th>parameters</th>"
                           "<th>{}</th><th>stability</th><th></th></tr>{}</table>",
                           obj.params.get("metric"), rows)

    def apply_view(self, request, object_id, cell):
        sweep = self._sweep(request, object_id)
        if not request.user.has_perm("positions.change_position"):
            raise PermissionDenied
        if sweep.kind != JobKind.SWEEP:
            raise Http404("Only a sweep has cells.")
        from positions.research import requests, services
        from positions.strategy.research import sweep as research

        try:
            label = research.Spec.label(requests.spec_of(sweep.params), cell)  # no history read
        except (IndexError, ValueError):
            raise Http404("No such cell.") from None
        form = ApplyCellForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            position = form.cleaned_data["position"]
            try:
                services.job_apply_cell(sweep=sweep, cell=cell, position_id=position.pk)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                LogEntry.objects.log_actions(
                    user_id=request.user.pk, queryset=[position], action_flag=CHANGE,
                    change_message=f"Applied cell {cell} of sweep {sweep.pk}: {label}")
                self.message_user(request, f"Cell {cell} ({label}) applied to {position.pk}.",
                                  messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:positions_position_change", args=[quote(position.pk)]))
        return TemplateResponse(request, "admin/research/researchjob/apply.html", {
            **self.admin_site.each_context(request), "sweep": sweep, "cell": cell,
            "label": label, "form": form, "title": f"Apply cell {cell}"})
