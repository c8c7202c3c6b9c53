"""Sweep and walk-forward jobs (issue 13 item 4): create, run (in a worker), cancel, reap, read
their files, apply a cell to a position. Every write to a Sweep row is here.

The computation is the research code the commands run (``positions.strategy.research``): this
module only turns a job's stored parameters into its ``Spec`` and series, reports progress, and
stores what came out.

Status changes are compare-and-set UPDATEs (patterns.md 3.3): queued -> running is claimed by one
worker only; cancel moves a queued job straight to cancelled and asks a running one to stop (it
checks between chunks of cells and ends cancelled); a running job whose worker has written no
heartbeat for ``VOLBAL_SWEEP_STALE_SECONDS`` is failed by :func:`sweeps_reap` (run on every read
and by every worker before it claims), so a crashed worker never leaves a job RUNNING forever."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from positions.models import Sweep, SweepKind, SweepStatus
from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.research import sweep as research
from positions.strategy.research import walkforward
from volbal import clock
from volbal.errors import DomainError

HEARTBEAT_SECONDS = 15
# The most backtests (one cell on one series or window) one job may run: a walk-forward of
# one-bar windows over a large grid would otherwise queue billions.
MAX_JOB_RUNS = 1_000_000
PROGRESS_SECONDS = 0.5


def not_found(sweep_id: str) -> DomainError:
    return DomainError("sweep_not_found", f"No sweep {sweep_id} among yours.", status=404)


class Cancelled(Exception):
    """Raised from the progress hook when the job was asked to stop."""


# --------------------------------------------------------------------------------------------
# Parameters -> the research code's inputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    spec: research.Spec
    items: list
    train: object = None  # walkforward.Length
    test: object = None
    windows: tuple = ()

    @property
    def total(self) -> int:
        per = research.total_runs(self.spec, self.items)
        return per * len(self.windows) if self.windows else per


def _text(v) -> str:
    return format(v, "f") if isinstance(v, Decimal) else str(v)


def normalise(data_: dict) -> dict:
    """A validated request as stored JSON: decimals as exact strings, the grid as the
    command's ``field=values`` texts."""
    strategy = {f.name: _text(data_[f.name]) if data_[f.name] is not None else None
                for f in dataclasses.fields(rules.Config) if f.name in data_}
    # A list of [field, values] pairs: a JSON object's key order is not kept (jsonb), and the
    # order of the axes is the grid's (cell numbers, the heatmap's default x and y).
    grid = [[name, values if isinstance(values, str) else ",".join(_text(v) for v in values)]
            for name, values in data_["grid"].items()]
    return {
        "kind": data_["kind"],
        "series": list(data_["series"]),
        "grid": grid,
        "metric": data_.get("metric", "sharpe"),
        "top": data_.get("top", 10),
        "exact": data_.get("exact", False),
        "start": data_.get("start"),
        "end": data_.get("end"),
        "cash": _text(data_["cash"]),
        "start_weight": _text(data_["start_weight"]),
        "slippage_bps": _text(data_["slippage_bps"]),
        "train": data_.get("train"),
        "test": data_.get("test"),
        "strategy": strategy,
    }


class ParamError(ValueError):
    """A parameter the research code refuses: its field and one sentence."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def build(params: dict) -> Job:
    """The job's Spec, series and windows from its stored parameters, with the checks the
    commands make (raises ParamError naming the field)."""
    spec = spec_of(params)
    wf = params["kind"] == SweepKind.WALKFORWARD
    items = []
    for ticker in params["series"]:
        try:
            series, dividends = data.load_sample(ticker)
            series = series.between(params.get("start"), params.get("end"))
        except data.DataError as exc:
            msg = str(exc)
            field = next((n for n in ("start", "end") if msg.startswith(n)), "series")
            raise ParamError(field, f"{ticker}: {msg}") from None
        items.append(research.Item(ticker, series, tuple(dividends)))
    if not wf:
        return _bounded(Job(spec, items))
    if len(items) != 1:
        raise ParamError("series", "a walk-forward runs on one series")
    try:
        train = walkforward.parse_length(params.get("train") or "", "train")
        test = walkforward.parse_length(params.get("test") or "", "test")
        wins = walkforward.windows(items[0].series, train, test)
    except research.GridError as exc:
        field = "test" if str(exc).startswith("test") else "train"
        raise ParamError(field, str(exc)) from None
    return _bounded(Job(spec, items, train, test, tuple(wins)))


def spec_of(params: dict) -> research.Spec:
    """The job's Spec from its stored parameters (no series loaded; raises ParamError)."""
    values = {}
    for name, raw in params["strategy"].items():
        if raw is None:
            continue
        try:
            values[name] = research.parse_value(name, raw)
        except research.GridError as exc:
            raise ParamError(name, str(exc)) from None
    cfg = rules.Config(**values)
    setup = engine.Setup(cash=Decimal(params["cash"]), start_weight=Decimal(params["start_weight"]),
                         slippage_bps=Decimal(params["slippage_bps"]))
    for name, why in {**rules.config_errors(cfg), **engine.setup_errors(setup)}.items():
        raise ParamError(name, why)
    try:
        axes = tuple(research.parse_axis(f"{name}={values_}")
                     for name, values_ in params["grid"])
    except research.GridError as exc:
        raise ParamError("grid", str(exc)) from None
    wf = params["kind"] == SweepKind.WALKFORWARD
    try:
        spec = research.Spec(cfg, axes, setup, metric=params["metric"], exact=params["exact"],
                             top=min(params["top"], 3) if wf else params["top"])
    except research.GridError as exc:
        raise ParamError("metric" if "metric" in str(exc) else "grid", str(exc)) from None
    return spec


def progress_of(sweep: Sweep) -> dict:
    """A job's progress as the API and the admin show it: ``done`` of ``total`` in its
    ``unit`` (``runs``: one cell on one series, per window; ``bars``: a backtest job's), and
    for a sweep or walk-forward the same runs told as ``cells`` and ``exact_reruns`` (each
    ``done`` of ``total``; in float mode the top cells run again on the exact path), null for a
    backtest job."""
    body = {"done": sweep.progress_done, "total": sweep.progress_total,
            "fraction": round(sweep.fraction, 4),
            "unit": "bars" if sweep.kind == SweepKind.BACKTEST else "runs",
            "cells": None, "exact_reruns": None}
    if sweep.kind == SweepKind.BACKTEST:
        return body
    try:
        spec = spec_of(sweep.params)
    except ParamError:  # stored before a change of the rules: the runs alone
        return body
    series = sweep.params["series"]
    per = research.total_runs(spec, series)  # a walk-forward's total is per window
    windows = max(1, sweep.progress_total // per) if per else 1
    body.update(research.progress_counts(spec, len(series), sweep.progress_done, windows))
    return body


def progress_text(sweep: Sweep) -> str:
    """``cells 30/30, exact re-runs 10/10 (100%)``; a backtest job's ``bars 252/252
    (100%)``."""
    p = progress_of(sweep)
    what = (research.progress_text(p) if p["cells"] is not None
            else f"{p['unit']} {p['done']:,}/{p['total']:,}")
    return f"{what} ({sweep.fraction:.0%})"


def _bounded(job: Job) -> Job:
    if job.total > MAX_JOB_RUNS:
        raise ParamError("grid", f"the job would run {job.total:,} backtests (cells x series, "
                                 f"x windows); at most {MAX_JOB_RUNS:,}")
    return job


# --------------------------------------------------------------------------------------------
# Create, cancel, read
# --------------------------------------------------------------------------------------------


def sweep_create(*, owner, params: dict) -> Sweep:
    """Store the job and enqueue its task in one transaction (the queue is this database: the
    task row commits or rolls back with the Sweep and the idempotency record)."""
    from positions.tasks import sweep_run

    job = build(params)
    with transaction.atomic():
        sweep = Sweep.objects.create(owner=owner, kind=params["kind"], params=params,
                                     progress_total=job.total)
        result = sweep_run.enqueue(sweep.id)
        Sweep.objects.filter(pk=sweep.pk).update(task_id=str(result.id))
        sweep.task_id = str(result.id)
    return sweep


def backtest_create(*, owner, request: dict, summary: dict, bars: int) -> Sweep:
    """A backtest above the synchronous size limit as a job (kind ``backtest``), stored and
    enqueued in one transaction like a sweep. ``request`` is the checked ``POST /v1/backtests``
    body, kept whole (exact JSON) for the worker, which reads it as the endpoint does;
    ``summary`` (the request without its series) is what the job shows as its params. The
    progress counts the strategy run's bars."""
    from positions.tasks import sweep_run
    from volbal.renderers import dumps_exact

    params = {"kind": SweepKind.BACKTEST, **_clean_exact(summary)}
    with transaction.atomic():
        sweep = Sweep.objects.create(owner=owner, kind=SweepKind.BACKTEST, params=params,
                                     state={"request": dumps_exact(request).decode("utf-8")},
                                     progress_total=bars)
        result = sweep_run.enqueue(sweep.id)
        Sweep.objects.filter(pk=sweep.pk).update(task_id=str(result.id))
        sweep.task_id = str(result.id)
    return sweep


def _clean_exact(x):
    """JSON for a job's params: decimals as their exact text (as :func:`normalise` stores
    them)."""
    if isinstance(x, Decimal):
        return _text(x)
    if isinstance(x, dict):
        return {str(k): _clean_exact(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_exact(v) for v in x]
    return x


def sweeps_reap(*, now=None) -> int:
    """Fail every running job whose worker has gone silent (no heartbeat for
    ``VOLBAL_SWEEP_STALE_SECONDS``): one conditional UPDATE; how many."""
    now = now or clock.now()
    stale = now - _seconds(settings.VOLBAL_SWEEP_STALE_SECONDS)
    return Sweep.objects.filter(status=SweepStatus.RUNNING, heartbeat_at__lt=stale).update(
        status=SweepStatus.FAILED, finished_at=now,
        error=f"worker_lost: the worker stopped answering (no heartbeat for "
              f"{settings.VOLBAL_SWEEP_STALE_SECONDS} s); run the sweep again.")


def _seconds(n):
    return dt.timedelta(seconds=n)


def sweep_get(*, owner, sweep_id: str) -> Sweep:
    sweeps_reap()
    try:
        return Sweep.objects.get(owner=owner, pk=sweep_id)
    except Sweep.DoesNotExist:
        raise not_found(sweep_id) from None


def sweeps_of(*, owner):
    sweeps_reap()
    return Sweep.objects.filter(owner=owner).defer("state", "results_csv", "results_xlsx")


def sweep_cancel(*, owner, sweep_id: str) -> Sweep:
    """A queued job is cancelled at once; a running one is asked to stop (it ends cancelled at
    its next chunk of cells); a finished one is left as it is."""
    sweep = sweep_get(owner=owner, sweep_id=sweep_id)
    now = clock.now()
    if Sweep.objects.filter(pk=sweep.pk, status=SweepStatus.QUEUED).update(
            status=SweepStatus.CANCELLED, cancel_requested=True, finished_at=now):
        return Sweep.objects.get(pk=sweep.pk)
    Sweep.objects.filter(pk=sweep.pk, status=SweepStatus.RUNNING).update(cancel_requested=True)
    return Sweep.objects.get(pk=sweep.pk)


# --------------------------------------------------------------------------------------------
# Running (in the worker)
# --------------------------------------------------------------------------------------------


def _heartbeat(sweep_id: str, stop: threading.Event) -> None:
    """Every HEARTBEAT_SECONDS while the job runs, from its own connection: a long chunk of
    cells does not look like a dead worker; a dead worker stops beating."""
    try:
        while not stop.wait(HEARTBEAT_SECONDS):
            Sweep.objects.filter(pk=sweep_id, status=SweepStatus.RUNNING).update(
                heartbeat_at=clock.now())
    finally:
        connection.close()


def sweep_execute(sweep_id: str, *, worker_id: str = "") -> str:
    """Run one job: claim it (queued -> running, or nothing if it was cancelled or taken),
    run the research code with progress and cancel checks, store results or the error. Returns
    the final status."""
    sweeps_reap()
    now = clock.now()
    if not Sweep.objects.filter(pk=sweep_id, status=SweepStatus.QUEUED).update(
            status=SweepStatus.RUNNING, started_at=now, heartbeat_at=now,
            worker_id=worker_id[:64]):
        return Sweep.objects.filter(pk=sweep_id).values_list("status", flat=True).first() or ""
    sweep = Sweep.objects.get(pk=sweep_id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(sweep_id, stop), daemon=True)
    beat.start()
    if sweep.kind == SweepKind.BACKTEST:
        try:
            return _backtest_execute(sweep)
        finally:
            stop.set()
    try:
        job = build(sweep.params)
        done = 0
        last = [0.0]

        def progress(runs: int) -> None:
            nonlocal done
            done = min(done + runs, job.total)
            t = time.monotonic()
            if t - last[0] < PROGRESS_SECONDS and done < job.total:
                return
            last[0] = t
            _tick(sweep_id, done)

        _tick(sweep_id, 0)
        jobs = settings.VOLBAL_SWEEP_JOBS
        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        if sweep.kind == SweepKind.SWEEP:
            res = research.run(job.spec, job.items, jobs=jobs, dask_address=address,
                               progress=progress)
            results, state, csv_text, xlsx = _sweep_outputs(res)
        else:
            res = walkforward.run(job.spec, job.items[0], job.train, job.test, jobs=jobs,
                                  dask_address=address, exact=True, progress=progress)
            results, state, csv_text, xlsx = _wf_outputs(res)
    except Cancelled:
        return _finish(sweep_id, SweepStatus.CANCELLED, error="cancelled on request")
    except (ParamError, research.GridError, engine.SetupError, rules.RuleError) as exc:
        return _finish(sweep_id, SweepStatus.FAILED, error=str(exc))
    except Exception as exc:  # recorded on the job, then the worker marks its task failed
        _finish(sweep_id, SweepStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.set()
    return _finish(sweep_id, SweepStatus.SUCCEEDED, progress_done=job.total, results=results,
                   state=state, results_csv=csv_text, results_xlsx=xlsx)


def _backtest_execute(sweep: Sweep) -> str:
    """A backtest job: the stored request read as ``POST /v1/backtests`` reads it, run with
    progress (bars) and cancel checks; the result is the endpoint's document, the files its
    daily equity (CSV) and workbook (the command's ``--equity-csv`` and ``--xlsx``)."""
    from rest_framework.exceptions import APIException

    from positions import backtest_api
    from positions.strategy.backtest import report
    from positions.strategy.export import tables
    from volbal.parsers import loads_exact

    total = sweep.progress_total
    last = [0.0]

    def progress(bar: int) -> None:
        t = time.monotonic()
        if t - last[0] < PROGRESS_SECONDS and bar < total:
            return
        last[0] = t
        _tick(sweep.id, min(bar, total))

    try:
        _tick(sweep.id, 0)
        parsed = backtest_api.parse_request(loads_exact(sweep.state["request"]))
        rep = backtest_api.run(parsed, progress=progress)
        csv_text, xlsx = _files(tables.write_equity_csv, tables.write_backtest_xlsx, rep)
        doc = _clean(report.document(rep))
    except Cancelled:
        return _finish(sweep.id, SweepStatus.CANCELLED, error="cancelled on request")
    except APIException as exc:  # checked when it was posted: only a change of code could
        message = getattr(exc, "message", None) or str(exc.detail)
        return _finish(sweep.id, SweepStatus.FAILED, error=f"{exc.get_codes()}: {message}")
    except Exception as exc:  # recorded on the job, then the worker marks its task failed
        _finish(sweep.id, SweepStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    return _finish(sweep.id, SweepStatus.SUCCEEDED, progress_done=total, results=doc,
                   results_csv=csv_text, results_xlsx=xlsx)


def _tick(sweep_id: str, done: int) -> None:
    """Store the progress and the heartbeat; raise Cancelled when the job was asked to stop."""
    Sweep.objects.filter(pk=sweep_id, status=SweepStatus.RUNNING).update(
        progress_done=done, heartbeat_at=clock.now())
    row = Sweep.objects.filter(pk=sweep_id).values("status", "cancel_requested").first()
    if row is None or row["cancel_requested"] or row["status"] != SweepStatus.RUNNING:
        raise Cancelled


def _finish(sweep_id: str, status: str, **fields) -> str:
    """running -> ``status`` (only from running: a reaped job stays failed)."""
    Sweep.objects.filter(pk=sweep_id, status=SweepStatus.RUNNING).update(
        status=status, finished_at=clock.now(), heartbeat_at=clock.now(), **fields)
    return Sweep.objects.filter(pk=sweep_id).values_list("status", flat=True).first() or ""


def _clean(x):
    """JSON without NaN or infinities (PostgreSQL's jsonb refuses them): null instead."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, Decimal):
        return float(x)
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def _files(write_csv, write_xlsx, res) -> tuple[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        csv_path, xlsx_path = os.path.join(tmp, "r.csv"), os.path.join(tmp, "r.xlsx")
        write_csv(res, csv_path)
        write_xlsx(res, xlsx_path)
        with open(csv_path, encoding="utf-8") as f, open(xlsx_path, "rb") as g:
            return f.read(), g.read()


def _sweep_outputs(res):
    from positions.strategy.export import tables
    from positions.strategy.research import output

    doc = output.document(res)
    doc.pop("results")  # every cell and series: the CSV and the workbook hold them
    state = {"values": _clean(res.values.tolist()), "score": _clean(res.score.tolist()),
             "stability": _clean(res.stability.tolist()), "ranking": list(res.ranking),
             "errors": {str(k): v for k, v in res.errors.items()},
             "seconds": res.seconds, "workers": res.workers}
    csv_text, xlsx = _files(tables.write_sweep_csv, tables.write_sweep_xlsx, res)
    return _clean(doc), state, csv_text, xlsx


def _wf_outputs(res):
    from positions.strategy.export import tables
    from positions.strategy.research import output

    csv_text, xlsx = _files(tables.write_walkforward_csv, tables.write_walkforward_xlsx, res)
    return _clean(output.wf_document(res)), None, csv_text, xlsx


# --------------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------------


def _array(rows) -> np.ndarray:
    return np.array([[[math.nan if v is None else v for v in s] for s in c] for c in rows],
                    dtype=float)


def result_of(sweep: Sweep) -> research.Result:
    """A finished sweep's research Result again, from what was stored (for the heatmap): the
    same spec from the same parameters, the series by name only."""
    job = build(sweep.params)
    st = sweep.state

    def vec(xs):
        return np.array([math.nan if v is None else v for v in xs], dtype=float)

    items = [research.Item(it.name, None, ()) for it in job.items]
    return research.Result(job.spec, items, [], _array(st["values"]),
                           {int(k): v for k, v in st["errors"].items()}, vec(st["score"]),
                           vec(st["stability"]), list(st["ranking"]), seconds=st["seconds"],
                           workers=st["workers"])


def heatmap_png(sweep: Sweep, x: str | None, y: str | None, metric: str | None) -> bytes:
    """The heatmap picture of a finished sweep (the command's ``--heatmap``). Raises
    research.GridError for a bad x, y or metric."""
    from positions.strategy.export import charts

    res = result_of(sweep)
    buf = io.BytesIO()
    charts.write_heatmap(res, buf, x or None, y or None, metric or None)
    return buf.getvalue()


def top_cells(sweep: Sweep) -> list[dict]:
    """The ranked cells shown (sweep) or the windows (walk-forward)."""
    results = sweep.results or {}
    return results.get("top") if sweep.kind == SweepKind.SWEEP else results.get("windows") or []


def cell_params(sweep: Sweep, cell: int) -> dict:
    """A sweep cell's strategy fields (the grid's values at that cell), as rules.Config holds
    them. Raises ParamError for a cell outside the grid."""
    job = build(sweep.params)
    if not 0 <= cell < job.spec.n_cells:
        raise ParamError("cell", f"cell {cell} is not in the grid (0 to {job.spec.n_cells - 1})")
    return job.spec.values(cell)


def sweep_apply_cell(*, sweep: Sweep, cell: int, position_id: str, owner=None):
    """Apply a sweep cell's strategy fields to a position through the position's configuration
    service (the one PATCH /v1/positions/{id} uses); its ``config_changed`` event names the
    sweep and the cell. ``owner`` None: the operator's admin, any owner's position."""
    from positions import services

    if sweep.kind != SweepKind.SWEEP or sweep.status != SweepStatus.SUCCEEDED:
        raise DomainError("sweep_not_applicable",
                          "Only a cell of a succeeded sweep can be applied to a position.")
    try:
        changes = cell_params(sweep, cell)
    except ParamError as exc:
        raise DomainError("validation_error", str(exc), status=400,
                          fields={"cell": str(exc)}) from None
    job = build(sweep.params)
    return services.position_configure(
        owner=owner, position_id=position_id, changes=changes,
        origin={"sweep_id": sweep.id, "cell": cell, "label": job.spec.label(cell)})
