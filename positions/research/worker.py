"""Running a research job, in the worker (the task ``positions.research.tasks.research_job_run``
calls :func:`job_execute`): claim it, run the research code with progress and cancel checks,
store its results or its error; and :func:`jobs_reap`, which fails the jobs of a worker that died.

Status changes are compare-and-set UPDATEs (docs/architecture.md#background-jobs): queued -> running
is claimed by one worker only; a running job stops (cancelled) at its next chunk of cells once asked
to; a running job whose worker has written no heartbeat for ``VOLBAL_SWEEP_STALE_SECONDS`` is failed
by :func:`jobs_reap` (run on every read and by every worker before it claims), so a crashed worker
never leaves a job RUNNING forever."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import tempfile
import threading
import time
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import connection

from positions.research import requests
from positions.research.history import history_for
from positions.research.models import JobKind, JobStatus, ResearchJob
from positions.strategy import rules
from positions.strategy.backtest import engine, report
from positions.strategy.backtest import portfolio as pf
from positions.strategy.export import tables
from positions.strategy.research import output, walkforward
from positions.strategy.research import sweep as research
from volbal import clock

HEARTBEAT_SECONDS = 15
PROGRESS_SECONDS = 0.5


class Cancelled(Exception):
    """Raised from the progress hook when the job was asked to stop."""


def jobs_reap(*, now=None) -> int:
    """Fail every running job whose worker has gone silent (no heartbeat for
    ``VOLBAL_SWEEP_STALE_SECONDS``): one conditional UPDATE; how many."""
    now = now or clock.now()
    stale = now - _seconds(settings.VOLBAL_SWEEP_STALE_SECONDS)
    return ResearchJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).update(
        status=JobStatus.FAILED, finished_at=now,
        error=f"worker_lost: the worker stopped answering (no heartbeat for "
              f"{settings.VOLBAL_SWEEP_STALE_SECONDS} s); run the sweep again.")


def _seconds(n):
    return dt.timedelta(seconds=n)


def _heartbeat(sweep_id: str, stop: threading.Event) -> None:
    """Every HEARTBEAT_SECONDS while the job runs, from its own connection: a long chunk of
    cells does not look like a dead worker; a dead worker stops beating."""
    try:
        while not stop.wait(HEARTBEAT_SECONDS):
            ResearchJob.objects.filter(pk=sweep_id, status=JobStatus.RUNNING).update(
                heartbeat_at=clock.now())
    finally:
        connection.close()


def job_execute(sweep_id: str, *, worker_id: str = "") -> str:
    """Run one job: claim it (queued -> running, or nothing if it was cancelled or taken),
    run the research code with progress and cancel checks, store results or the error. Returns
    the final status."""
    jobs_reap()
    now = clock.now()
    if not ResearchJob.objects.filter(pk=sweep_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now,
            worker_id=worker_id[:64]):
        return (ResearchJob.objects.filter(pk=sweep_id).values_list("status", flat=True).first()
                or "")
    sweep = ResearchJob.objects.get(pk=sweep_id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(sweep_id, stop), daemon=True)
    beat.start()
    if sweep.kind == JobKind.BACKTEST:
        try:
            return _backtest_execute(sweep)
        finally:
            stop.set()
    try:
        job = requests.build(sweep.params, history_for(sweep.params))
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
        if sweep.kind == JobKind.SWEEP:
            res = research.run(job.spec, job.items, jobs=jobs, dask_address=address,
                               progress=progress)
            results, state, csv_text, xlsx = _sweep_outputs(res)
        else:
            res = walkforward.run(job.spec, job.items[0], job.train, job.test, jobs=jobs,
                                  dask_address=address, exact=True, progress=progress)
            results, state, csv_text, xlsx = _wf_outputs(res)
    except Cancelled:
        return _finish(sweep_id, JobStatus.CANCELLED, error="cancelled on request")
    except (requests.RequestError, research.GridError, engine.SetupError, rules.RuleError) as exc:
        return _finish(sweep_id, JobStatus.FAILED, error=str(exc))
    except Exception as exc:  # recorded on the job, then the worker marks its task failed
        _finish(sweep_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        stop.set()
    return _finish(sweep_id, JobStatus.SUCCEEDED, progress_done=job.total, results=results,
                   state=state, results_csv=csv_text, results_xlsx=xlsx)


def _backtest_execute(sweep: ResearchJob) -> str:
    """A backtest job: the stored request read as ``POST /v1/backtests`` reads it, run with
    progress (bars) and cancel checks; the result is the endpoint's document, the files its
    daily equity (CSV) and workbook (the command's ``--equity-csv`` and ``--xlsx``)."""
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
        state = sweep.state or {}
        if "options" not in state:  # queued by a version that stored the request alone
            raise requests.RequestError("request_outdated", "The job was stored by an earlier "
                                        "version of the service; post the backtest again.")
        # volbal.parsers brings REST framework's parsers, renderers and serializers (a fifth of
        # every manage.py command's start-up, which imports this module through the admin):
        # loaded by the one job kind that parses a stored request body
        from volbal.parsers import loads_exact

        parsed = requests.backtest(state["options"], loads_exact(state["request"]),
                                   history_for(state["options"]))
        rep = backtest_run(parsed, progress=progress)
        csv_text, xlsx = _files(tables.write_equity_csv, tables.write_backtest_xlsx, rep)
        doc = _clean(report.document(rep))
    except Cancelled:
        return _finish(sweep.id, JobStatus.CANCELLED, error="cancelled on request")
    except requests.RequestError as exc:  # checked when it was posted: only a change of code
        return _finish(sweep.id, JobStatus.FAILED, error=f"{exc.code}: {exc.message}")
    except Exception as exc:  # recorded on the job, then the worker marks its task failed
        _finish(sweep.id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    return _finish(sweep.id, JobStatus.SUCCEEDED, progress_done=total, results=doc,
                   results_csv=csv_text, results_xlsx=xlsx)


def _tick(sweep_id: str, done: int) -> None:
    """Store the progress and the heartbeat; raise Cancelled when the job was asked to stop."""
    ResearchJob.objects.filter(pk=sweep_id, status=JobStatus.RUNNING).update(
        progress_done=done, heartbeat_at=clock.now())
    row = ResearchJob.objects.filter(pk=sweep_id).values("status", "cancel_requested").first()
    if row is None or row["cancel_requested"] or row["status"] != JobStatus.RUNNING:
        raise Cancelled


def _finish(sweep_id: str, status: str, **fields) -> str:
    """running -> ``status`` (only from running: a reaped job stays failed)."""
    ResearchJob.objects.filter(pk=sweep_id, status=JobStatus.RUNNING).update(
        status=status, finished_at=clock.now(), heartbeat_at=clock.now(), **fields)
    return ResearchJob.objects.filter(pk=sweep_id).values_list("status", flat=True).first() or ""


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
    doc = output.document(res)
    doc.pop("results")  # every cell and series: the CSV and the workbook hold them
    state = {"values": _clean(res.values.tolist()), "score": _clean(res.score.tolist()),
             "stability": _clean(res.stability.tolist()), "ranking": list(res.ranking),
             "errors": {str(k): v for k, v in res.errors.items()},
             "seconds": res.seconds, "workers": res.workers}
    csv_text, xlsx = _files(tables.write_sweep_csv, tables.write_sweep_xlsx, res)
    return _clean(doc), state, csv_text, xlsx


def _wf_outputs(res):
    csv_text, xlsx = _files(tables.write_walkforward_csv, tables.write_walkforward_xlsx, res)
    return _clean(output.wf_document(res)), None, csv_text, xlsx




@contextlib.contextmanager
def refused():
    """What the engine refuses in a checked request, as a RequestError: a set-up
    (engine.SetupError, numbers past exact arithmetic among them: validation_error naming its
    fields) or a portfolio (backtest.portfolio.PortfolioError: its code)."""
    try:
        yield
    except engine.SetupError as exc:
        raise requests.RequestError("validation_error", f"Invalid input. {exc}",
                                    fields=exc.fields) from None
    except pf.PortfolioError as exc:
        raise requests.RequestError(exc.code, exc.message,
                                    fields={exc.field: exc.message}) from None


def backtest_run(parsed: requests.Backtest, progress=None) -> report.Report:
    """The backtest of a checked request (its strategy and three benchmarks); RequestError for
    a set-up the engine refuses."""
    with refused():
        return report.backtest(parsed.series, parsed.cfg, parsed.setup, parsed.dividends,
                               progress=progress)


def portfolio_run(parsed: requests.PortfolioBacktest) -> pf.PortfolioRun:
    """The portfolio backtest of a checked request (its benchmarks too); RequestError for what
    the engine refuses, as :func:`backtest_run`."""
    with refused():
        return pf.simulate(parsed.holdings, parsed.cfg, parsed.setup, parsed.rebalance,
                           parsed.band)
