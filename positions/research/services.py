"""Research jobs (sweeps, walk-forwards, large backtests): create (within the quotas), cancel,
read, purge, read their files back, apply a sweep's cell to a position. Running one is
:mod:`positions.research.worker`'s (the task calls it).

The computation is the research code the commands run (``positions.strategy.research``); the
request is read by :mod:`positions.research.requests`, the same functions for the API and the
worker. Quotas (docs/research.md#jobs): at most ``VOLBAL_RESEARCH_MAX_JOB_RUNS`` backtests in
one job; at most ``VOLBAL_RESEARCH_MAX_ACTIVE_JOBS`` queued or running jobs, holding at most
``VOLBAL_RESEARCH_MAX_QUEUED_RUNS`` runs not yet done, per user."""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Sum

from orders.services import position_configure_replacing_rungs
from positions.research import requests
from positions.research.history import history_for
from positions.research.models import FINISHED, JobKind, JobStatus, ResearchJob
from positions.research.tasks import research_job_run
from positions.research.worker import jobs_reap
from positions.strategy.export import charts
from positions.strategy.research import sweep as research
from volbal import clock
from volbal.errors import DomainError
from volbal.renderers import dumps_exact


def not_found(sweep_id: str) -> DomainError:
    return DomainError("sweep_not_found", f"No sweep {sweep_id} among yours.", status=404)


def progress_of(sweep: ResearchJob) -> dict:
    """A job's progress as the API and the admin show it: ``done`` of ``total`` in its
    ``unit`` (``runs``: one cell on one series, per window; ``bars``: a backtest job's), and
    for a sweep or walk-forward the same runs told as ``cells`` and ``exact_reruns`` (each
    ``done`` of ``total``; in float mode the top cells run again on the exact path), null for a
    backtest job."""
    body = {"done": sweep.progress_done, "total": sweep.progress_total,
            "fraction": round(sweep.fraction, 4),
            "unit": "bars" if sweep.kind == JobKind.BACKTEST else "runs",
            "cells": None, "exact_reruns": None}
    if sweep.kind == JobKind.BACKTEST:
        return body
    try:
        spec = requests.spec_of(sweep.params)
    except requests.RequestError:  # stored before a change of the rules: the runs alone
        return body
    series = requests.series_names(sweep.params)
    per = research.total_runs(spec, series)  # a walk-forward's total is per window
    windows = max(1, sweep.progress_total // per) if per else 1
    body.update(research.progress_counts(spec, len(series), sweep.progress_done, windows))
    return body


def progress_text(sweep: ResearchJob) -> str:
    """``cells 30/30, exact re-runs 10/10 (100%)``; a backtest job's ``bars 252/252
    (100%)``."""
    p = progress_of(sweep)
    what = (research.progress_text(p) if p["cells"] is not None
            else f"{p['unit']} {p['done']:,}/{p['total']:,}")
    return f"{what} ({sweep.fraction:.0%})"


# --------------------------------------------------------------------------------------------
# Create (within the quotas), cancel, read, purge
# --------------------------------------------------------------------------------------------


def _within_quota(owner, runs: int) -> None:
    """Refuse a job of ``runs`` backtests beyond one job's cap (400), or one the owner's queued
    and running jobs leave no room for (429); the owner's row locked first, so two concurrent
    requests cannot both take the last room. Inside the creating transaction."""
    cap = settings.VOLBAL_RESEARCH_MAX_JOB_RUNS
    if runs > cap:
        raise requests.ParamError("grid", f"the job would run {runs:,} backtests (cells x "
                                          f"series or holdings, x windows); at most {cap:,} a job "
                                          "(VOLBAL_RESEARCH_MAX_JOB_RUNS)")
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = ResearchJob.objects.filter(owner=owner).exclude(status__in=FINISHED)
    jobs = settings.VOLBAL_RESEARCH_MAX_ACTIVE_JOBS
    if active.count() >= jobs:
        raise DomainError("research_quota_exceeded",
                          f"You have {jobs} research jobs queued or running, the most "
                          "(VOLBAL_RESEARCH_MAX_ACTIVE_JOBS); wait for one to finish or cancel "
                          "one.", status=429)
    queued = active.exclude(kind=JobKind.BACKTEST).aggregate(
        n=Sum(F("progress_total") - F("progress_done")))["n"] or 0
    limit = settings.VOLBAL_RESEARCH_MAX_QUEUED_RUNS
    if queued + runs > limit:
        raise DomainError("research_quota_exceeded",
                          f"Your queued and running jobs have {queued:,} backtests still to run; "
                          f"this one's {runs:,} would pass the most, {limit:,} "
                          "(VOLBAL_RESEARCH_MAX_QUEUED_RUNS); wait for them or cancel one.",
                          status=429)


def job_create(*, owner, params: dict) -> ResearchJob:
    """A sweep or walk-forward (``params``: :func:`requests.normalise`'s), checked and within
    the quotas, stored and its task enqueued in one transaction (the queue is this database:
    the task row commits or rolls back with the job and the idempotency record)."""
    job = requests.build(params, history_for(params))
    with transaction.atomic():
        _within_quota(owner, job.runs)
        return _enqueued(ResearchJob.objects.create(owner=owner, kind=params["kind"],
                                                    params=params, progress_total=job.total))


def backtest_job_create(*, owner, request: dict, options: dict,
                        parsed: requests.Backtest) -> ResearchJob:
    """A backtest above the synchronous size limit as a job (kind ``backtest``), stored and
    enqueued in one transaction like a sweep. ``request`` is the ``POST /v1/backtests`` body,
    kept whole (exact JSON) with its ``options`` (:func:`requests.backtest_options`) for the
    worker, which reads them as the endpoint did; the request without its series is what the
    job shows as its params. The progress counts the strategy run's bars."""
    params = {"kind": JobKind.BACKTEST, **requests.clean_exact(parsed.summary)}
    with transaction.atomic():
        _within_quota(owner, 0)
        return _enqueued(ResearchJob.objects.create(
            owner=owner, kind=JobKind.BACKTEST, params=params,
            state={"request": dumps_exact(request).decode("utf-8"), "options": options},
            progress_total=len(parsed.series)))


def _enqueued(job: ResearchJob) -> ResearchJob:
    result = research_job_run.enqueue(job.id)
    job.task_id = str(result.id)
    ResearchJob.objects.filter(pk=job.pk).update(task_id=job.task_id)
    return job


def job_get(*, owner, sweep_id: str) -> ResearchJob:
    jobs_reap()
    try:
        return ResearchJob.objects.get(owner=owner, pk=sweep_id)
    except ResearchJob.DoesNotExist:
        raise not_found(sweep_id) from None


def jobs_of(*, owner):
    jobs_reap()
    return ResearchJob.objects.filter(owner=owner).defer("state", "results_csv", "results_xlsx")


def job_cancel(*, owner, sweep_id: str) -> ResearchJob:
    """A queued job is cancelled at once; a running one is asked to stop (it ends cancelled at
    its next chunk of cells); a finished one is left as it is."""
    sweep = job_get(owner=owner, sweep_id=sweep_id)
    now = clock.now()
    if ResearchJob.objects.filter(pk=sweep.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now):
        return ResearchJob.objects.get(pk=sweep.pk)
    ResearchJob.objects.filter(pk=sweep.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    return ResearchJob.objects.get(pk=sweep.pk)


def jobs_purge(*, older_than: dt.timedelta, now=None) -> int:
    """Delete the finished jobs (their stored requests and files with them) that finished more
    than ``older_than`` ago; queued and running ones are kept whatever their age. How many."""
    cutoff = (now or clock.now()) - older_than
    deleted, _ = ResearchJob.objects.filter(status__in=FINISHED,
                                            finished_at__lt=cutoff).delete()
    return deleted


# --------------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------------


def _array(rows) -> np.ndarray:
    return np.array([[[math.nan if v is None else v for v in s] for s in c] for c in rows],
                    dtype=float)


def result_of(sweep: ResearchJob) -> research.Result:
    """A finished sweep's research Result again, from what was stored (for the heatmap): the
    same spec from the same parameters, the series by name only (nothing loaded or fetched:
    a job by ticker or with a portfolio's tickers reads no history here)."""
    spec = requests.spec_of(sweep.params)
    st = sweep.state

    def vec(xs):
        return np.array([math.nan if v is None else v for v in xs], dtype=float)

    items = [research.Item(name, None, ()) for name in requests.series_names(sweep.params)]
    return research.Result(spec, items, [], _array(st["values"]),
                           {int(k): v for k, v in st["errors"].items()}, vec(st["score"]),
                           vec(st["stability"]), list(st["ranking"]), seconds=st["seconds"],
                           workers=st["workers"])


def heatmap_png(sweep: ResearchJob, x: str | None, y: str | None, metric: str | None) -> bytes:
    """The heatmap picture of a finished sweep (the command's ``--heatmap``). Raises
    research.GridError for a bad x, y or metric."""
    res = result_of(sweep)
    buf = io.BytesIO()
    charts.write_heatmap(res, buf, x or None, y or None, metric or None)
    return buf.getvalue()


def top_cells(sweep: ResearchJob) -> list[dict]:
    """The ranked cells shown (sweep) or the windows (walk-forward)."""
    results = sweep.results or {}
    return results.get("top") if sweep.kind == JobKind.SWEEP else results.get("windows") or []


def cell_params(sweep: ResearchJob, cell: int) -> dict:
    """A sweep cell's strategy fields (the grid's values at that cell), as rules.Config holds
    them. Raises ParamError for a cell outside the grid."""
    spec = requests.spec_of(sweep.params)  # the grid alone: no series loaded or fetched
    if not 0 <= cell < spec.n_cells:
        raise requests.ParamError(
            "cell", f"cell {cell} is not in the grid (0 to {spec.n_cells - 1})")
    return spec.values(cell)


def job_apply_cell(*, sweep: ResearchJob, cell: int, position_id: str, owner=None):
    """Apply a sweep cell's strategy fields to a position through the position's configuration
    service (the one PATCH /v1/positions/{id} uses); its ``config_changed`` event names the
    sweep and the cell. ``owner`` None: the operator's admin, any owner's position."""
    if sweep.kind != JobKind.SWEEP or sweep.status != JobStatus.SUCCEEDED:
        raise DomainError("sweep_not_applicable",
                          "Only a cell of a succeeded sweep can be applied to a position.")
    try:
        changes = cell_params(sweep, cell)
    except requests.ParamError as exc:
        raise DomainError("validation_error", str(exc), status=400,
                          fields={"cell": str(exc)}) from None
    return position_configure_replacing_rungs(
        owner=owner, position_id=position_id, changes=changes,
        origin={"sweep_id": sweep.id, "cell": cell,
                "label": requests.spec_of(sweep.params).label(cell)})
