"""The /v1/sweeps endpoints: sweeps and walk-forwards as background jobs (issue 13 item 4).

``POST /v1/sweeps`` checks the request as the commands do (the same strategy and run fields as
``POST /v1/backtests``, the grid, metric and window lengths of ``manage.py sweep`` and
``walkforward``), stores the job and enqueues it; a worker (``manage.py db_worker``) runs it."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from positions import sweeps
from positions.backtest_api import BacktestSetupSerializer
from positions.models import SweepKind, SweepStatus
from positions.strategy.backtest import data
from positions.strategy.research import sweep as research
from volbal.api import keyset_page
from volbal.errors import ApiError
from volbal.schema import PAGING, errors, idempotency_header, page_of, read_errors, write_errors
from volbal.throttling import EXPENSIVE

NOT_FOUND = errors((404, "sweep_not_found"))
# Why a job of another kind than a sweep has no heatmap, by its kind.
NO_HEATMAP = {SweepKind.WALKFORWARD: "A walk-forward has no heatmap; its windows are in the "
                                     "results.",
              SweepKind.BACKTEST: "A backtest job has no heatmap; its daily equity is in its "
                                  "csv and xlsx."}
MAX_TOP = 100


@extend_schema_field({"oneOf": [
    {"type": "string", "example": "0.02:0.08:0.02"},
    {"type": "array", "minItems": 1, "items": {"oneOf": [{"type": "number"}, {"type": "string"}]}},
]})
class GridValues(serializers.Field):
    """One grid field's values: ``"start:stop:step"``, ``"v1,v2,..."`` or a list (numbers
    stay exact: they become the command's ``--grid`` text)."""

    def to_internal_value(self, data):
        ok = isinstance(data, str) or (
            isinstance(data, list) and data
            and all(isinstance(v, (str, int, Decimal)) and not isinstance(v, bool)
                    for v in data))
        if not ok:
            raise serializers.ValidationError(
                "Give \"start:stop:step\", \"v1,v2,...\" or a list of values.")
        return data

    def to_representation(self, value):
        return value


class SweepRequestSerializer(BacktestSetupSerializer):
    """A sweep or walk-forward job: the grid, the series, the ranking metric (and the windows
    of a walk-forward), with every strategy field off the grid and the run's set-up as a
    backtest takes them."""

    # A backtest job is started by POST /v1/backtests, not here.
    kind = serializers.ChoiceField(choices=[SweepKind.SWEEP, SweepKind.WALKFORWARD],
                                   help_text="`sweep` (every cell of the grid) or `walkforward` "
                                             "(rolling train/test windows).")
    series = serializers.ListField(
        child=serializers.ChoiceField(choices=data.SAMPLE_TICKERS), min_length=1,
        max_length=len(data.SAMPLE_TICKERS),
        help_text="Bundled samples to run on (a walk-forward takes one).")
    grid = serializers.DictField(
        child=GridValues(), allow_empty=False,
        help_text="Strategy field -> its values: `\"start:stop:step\"` (inclusive), "
                  "`\"v1,v2,...\"` or a list; the cells are every combination (as `manage.py "
                  "sweep --grid`).")
    metric = serializers.ChoiceField(choices=research.CELL_METRICS, default="sharpe",
                                     help_text="The ranking metric, averaged over the series.")
    top = serializers.IntegerField(min_value=1, max_value=MAX_TOP, default=10,
                                   help_text="How many ranked cells to show and re-run exact.")
    exact = serializers.BooleanField(default=False,
                                     help_text="Every cell on the exact Decimal path (default: "
                                               "floats, the top cells re-run exact).")
    train = serializers.CharField(required=False, max_length=16,
                                  help_text="Walk-forward train window: bars (750) or a span "
                                            "(90d, 6m, 3y).")
    test = serializers.CharField(required=False, max_length=16,
                                 help_text="Walk-forward test window, the step between windows.")


class SweepSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.ChoiceField(choices=SweepKind.choices)
    status = serializers.ChoiceField(choices=SweepStatus.choices)
    progress = serializers.DictField(help_text=(
        "`done` and `total` in `unit`: `runs` (backtests of one cell on one series, per "
        "window) or a backtest job's `bars`; `fraction`; and for a sweep or walk-forward the "
        "same runs as `cells` and `exact_reruns` (each `{done, total}`: every cell, then the "
        "top cells again on the exact path unless `exact`), null for a backtest job."))
    params = serializers.DictField(help_text="The request, normalised (a backtest job's without "
                                             "its series: `bars` and `dividends` count them).")
    error = serializers.CharField(allow_blank=True)
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    ranked = serializers.ListField(
        child=serializers.DictField(), allow_null=True,
        help_text="A sweep's top cells, best first (rank, cell, params, score, score_exact, "
                  "stability, per series metrics); a walk-forward's windows. Null until done "
                  "(and for a backtest job).")
    results = serializers.DictField(
        allow_null=True, help_text="The rest of the results: best cell, benchmarks, invalid "
                                   "cells (sweep); the stitched out-of-sample run (walk-forward); "
                                   "a backtest job's answer, the document `POST /v1/backtests` "
                                   "answers with 200 (BacktestResult).")
    links = serializers.DictField(
        child=serializers.CharField(allow_null=True),
        help_text="`self`, `cancel`, and once succeeded `csv`, `xlsx` (every metric of every "
                  "cell and series; a backtest job's daily equity and its workbook) and "
                  "`heatmap` (a sweep over two or more fields).")


def job_body(request, sweep) -> dict:
    """A job as the API shows it (also a backtest job's 202 from ``POST /v1/backtests``)."""
    def url(name):
        path = reverse(f"sweep-{name}", kwargs={"pk": sweep.id})
        return request.build_absolute_uri(path)

    done = sweep.status == SweepStatus.SUCCEEDED
    results = dict(sweep.results or {}) if done else None
    ranked = None
    if results is not None and sweep.kind != SweepKind.BACKTEST:
        ranked = results.pop("top", None) if sweep.kind == SweepKind.SWEEP \
            else results.pop("windows", None)
    heatmap = done and sweep.kind == SweepKind.SWEEP and len(sweep.params["grid"]) >= 2
    return {
        "id": sweep.id,
        "kind": sweep.kind,
        "status": sweep.status,
        "progress": sweeps.progress_of(sweep),
        "params": sweep.params,
        "error": sweep.error,
        "cancel_requested": sweep.cancel_requested,
        "created_at": sweep.created_at,
        "started_at": sweep.started_at,
        "finished_at": sweep.finished_at,
        "ranked": ranked,
        "results": results,
        "links": {
            "self": url("detail"),
            "cancel": url("cancel"),
            "csv": url("results-csv") if done else None,
            "xlsx": url("results-xlsx") if done else None,
            "heatmap": url("heatmap") if heatmap else None,
        },
    }


def _finished(sweep):
    if sweep.status != SweepStatus.SUCCEEDED:
        raise ApiError("sweep_not_finished",
                       f"Sweep {sweep.id} is {sweep.status}; its results exist once it has "
                       "succeeded.", status=409)


_BINARY = {"type": "string", "format": "binary"}


class SweepViewSet(viewsets.ViewSet):
    lookup_value_regex = "[^/]+"

    @property
    def throttle_scope(self):
        # Starting a job and drawing a picture cost; polling a job's status does not.
        return EXPENSIVE if getattr(self, "action", None) in ("create", "heatmap") else None

    @extend_schema(
        summary="Start a sweep or walk-forward job",
        description=(
            "Checks the request as `manage.py sweep`/`walkforward` do, stores the job and "
            "queues it; a worker runs it (202). Poll `GET /v1/sweeps/{id}` for its status and "
            "progress, then its ranked cells and the links to the files and the heatmap."),
        request=SweepRequestSerializer,
        parameters=[idempotency_header(required=False)],
        responses={202: SweepSerializer, 200: SweepSerializer,
                   **write_errors((409, "idempotency_signature_mismatch"), (429, "throttled"))},
        examples=[OpenApiExample("A sweep on IBM", request_only=True, value={
            "kind": "sweep", "series": ["IBM"], "start": "2005-01-01",
            "grid": {"trigger_pct": "0.02:0.08:0.02", "guard_low": [0.2, 0.3]}}),
            OpenApiExample("A walk-forward", request_only=True, value={
                "kind": "walkforward", "series": ["IBM"], "train": "3y", "test": "1y",
                "grid": {"trigger_pct": "0.02:0.08:0.02"}, "metric": "cagr"})],
        tags=["sweeps"],
    )
    def create(self, request):
        ser = SweepRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        params = sweeps.normalise(ser.validated_data)
        try:
            sweep = sweeps.sweep_create(owner=request.user, params=params)
        except sweeps.ParamError as exc:
            raise ApiError("validation_error", f"Invalid input. {exc.field}: {exc}",
                           fields={exc.field: str(exc)}) from None
        body = job_body(request, sweep)
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": body["links"]["self"]})

    @extend_schema(summary="Your sweep jobs, oldest first", parameters=[*PAGING],
                   responses={200: page_of("SweepPage", {"sweeps": SweepSerializer(many=True)}),
                              **read_errors()},
                   tags=["sweeps"])
    def list(self, request):
        items, next_cursor = keyset_page(request, sweeps.sweeps_of(owner=request.user))
        return Response({"sweeps": [job_body(request, s) for s in items], "next": next_cursor})

    @extend_schema(summary="A sweep job: status, progress, ranked cells, links",
                   responses={200: SweepSerializer, **NOT_FOUND, **read_errors()},
                   tags=["sweeps"])
    def retrieve(self, request, pk=None):
        return Response(job_body(request, sweeps.sweep_get(owner=request.user, sweep_id=pk)))

    @extend_schema(summary="Cancel a sweep job",
                   description="A queued job is cancelled at once; a running one stops at its "
                               "next chunk of cells and ends `cancelled`; a finished one is "
                               "answered as it is.",
                   request=None, parameters=[idempotency_header(required=False)],
                   responses={200: SweepSerializer, **NOT_FOUND,
                              **write_errors((409, "idempotency_signature_mismatch"))},
                   tags=["sweeps"])
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(job_body(request, sweeps.sweep_cancel(owner=request.user, sweep_id=pk)))

    @extend_schema(
        summary="A sweep's heatmap picture",
        description="The metric over two grid parameters, the others held at the best cell's "
                    "values (the picture says which), the best cell outlined.",
        parameters=[
            OpenApiParameter("x", str, description="x parameter (default the first grid)."),
            OpenApiParameter("y", str, description="y parameter (default the second grid)."),
            OpenApiParameter("metric", str, enum=[*research.CELL_METRICS],
                             description="Default the ranking metric."),
        ],
        responses={(200, "image/png"): OpenApiResponse(_BINARY, description="PNG"),
                   **NOT_FOUND,
                   **errors((400, "validation_error"), (409, "sweep_not_finished"),
                            (429, "throttled"))},
        tags=["sweeps"],
    )
    @action(detail=True, methods=["get"], url_path="heatmap.png", url_name="heatmap")
    def heatmap(self, request, pk=None):
        sweep = sweeps.sweep_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        if sweep.kind != SweepKind.SWEEP:
            msg = NO_HEATMAP[sweep.kind]
            raise ApiError("validation_error", f"Invalid input. {msg}",
                           fields={"kind": f"{sweep.kind}: {msg}"})
        q = request.query_params
        try:
            png = sweeps.heatmap_png(sweep, q.get("x"), q.get("y"), q.get("metric"))
        except research.GridError as exc:
            names = [n for n in ("x", "y", "metric") if q.get(n) and repr(q.get(n)) in str(exc)]
            raise ApiError("validation_error", f"Invalid input. {exc}",
                           fields={n: str(exc) for n in names or ["x", "y"]}) from None
        return HttpResponse(png, content_type="image/png")

    @extend_schema(summary="Every metric of every cell and series, CSV",
                   responses={(200, "text/csv"): OpenApiResponse(_BINARY, description="CSV"),
                              **NOT_FOUND, **errors((409, "sweep_not_finished"))},
                   tags=["sweeps"])
    @action(detail=True, methods=["get"], url_path="results.csv", url_name="results-csv")
    def results_csv(self, request, pk=None):
        sweep = sweeps.sweep_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        resp = HttpResponse(sweep.results_csv, content_type="text/csv; charset=utf-8")
        resp["Content-Disposition"] = f'attachment; filename="{sweep.id}.csv"'
        return resp

    @extend_schema(
        summary="The results workbook (xlsx)",
        responses={(200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"):
                   OpenApiResponse(_BINARY, description="xlsx"),
                   **NOT_FOUND, **errors((409, "sweep_not_finished"))},
        tags=["sweeps"])
    @action(detail=True, methods=["get"], url_path="results.xlsx", url_name="results-xlsx")
    def results_xlsx(self, request, pk=None):
        sweep = sweeps.sweep_get(owner=request.user, sweep_id=pk)
        _finished(sweep)
        resp = HttpResponse(bytes(sweep.results_xlsx), content_type=(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        resp["Content-Disposition"] = f'attachment; filename="{sweep.id}.xlsx"'
        return resp
