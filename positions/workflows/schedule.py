"""The trade cycle on the job queue (``manage.py trade --schedule S`` / ``--unschedule``).

The schedule is one row (:class:`~positions.models.TradeSchedule`) naming the one queued task
that carries it on. That task (:func:`trade_cycle_run`, below, run by any
``manage.py db_worker``) runs one cycle, then queues the next run ``interval`` seconds after
its own start (``run_after``) and names it in the row. Every change of the row happens with the
row locked, so however many times the schedule is started, and however many workers run, one
task at a time carries it: a task the row does not name (left from an earlier schedule, or
queued twice) does nothing and queues nothing. Stopping disables the row and deletes the
queued task; a run already under way finishes its cycle and queues nothing."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django_tasks import TaskContext, task
from django_tasks_db.models import DBTaskResult

from positions.models import TradeSchedule
from positions.workflows import cycle
from volbal import clock

# A task marked running for longer than this is taken for a worker that died with it
# (django-tasks leaves such a task RUNNING): starting the schedule again queues a new one.
STALE = dt.timedelta(minutes=10)

# The schedule's interval, in seconds: shorter runs cycles back to back, longer than a day
# leaves the live loop idle for sessions (and inf overflows the next run's time).
MIN_INTERVAL, MAX_INTERVAL = 1.0, 86400.0


def interval_problem(interval: float) -> str | None:
    """Why ``interval`` cannot be the schedule's (a sentence), or None when it can."""
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:  # also refuses nan
        return (f"--schedule must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds "
                f"(1 s to 1 day), not {interval:g}.")
    return None


def _locked() -> TradeSchedule:
    TradeSchedule.objects.bulk_create([TradeSchedule(pk=1)], ignore_conflicts=True)
    return TradeSchedule.objects.select_for_update().get(pk=1)


def _alive(task_id: str) -> bool:
    """The task is queued, or running and not stale."""
    if not task_id:
        return False
    task = DBTaskResult.objects.filter(id=task_id).first()
    if task is None:
        return False
    if task.status == "READY":
        return True
    return task.status == "RUNNING" and (task.started_at is None
                                         or task.started_at > clock.now() - STALE)


def _enqueue(row: TradeSchedule, run_after: dt.datetime | None) -> None:
    task = trade_cycle_run.using(run_after=run_after) if run_after else trade_cycle_run
    row.task_id = str(task.enqueue().id)


def schedule_start(*, interval: float) -> tuple[TradeSchedule, bool]:
    """Run the cycle every ``interval`` seconds on the job queue. Returns the schedule and
    whether a task was queued (False: one already carries the schedule; it takes the new
    interval when it queues its successor)."""
    problem = interval_problem(interval)
    if problem:
        raise ValueError(problem)
    with transaction.atomic():
        row = _locked()
        row.enabled, row.interval_seconds = True, float(interval)
        queued = not _alive(row.task_id)
        if queued:
            _enqueue(row, None)
        row.save()
    return row, queued


def schedule_stop() -> tuple[TradeSchedule, int]:
    """Stop the schedule: the row disabled and its queued task deleted. Returns the schedule
    and how many queued tasks were deleted."""
    with transaction.atomic():
        row = _locked()
        deleted = 0
        if row.task_id:
            deleted, _ = DBTaskResult.objects.filter(id=row.task_id, status="READY").delete()
        row.enabled, row.task_id = False, ""
        row.save()
    return row, deleted


def scheduled_run(*, task_id: str, worker: str = "") -> str:
    """The scheduled task's work: if the schedule names this task, one trade cycle, then the
    next run queued ``interval`` seconds after this one started. A one-line outcome."""
    started = clock.now()
    with transaction.atomic():
        row = _locked()
        if not row.enabled or row.task_id != task_id:
            return "Not the schedule's task (stopped, or queued twice): nothing done."
    result = cycle.trade_cycle(source="worker", worker=worker or None)
    with transaction.atomic():
        row = _locked()
        if not row.enabled or row.task_id != task_id:
            return result.row.message + " The schedule was stopped or restarted: no next run."
        _enqueue(row, started + dt.timedelta(seconds=row.interval_seconds))
        row.save()
    return result.row.message + f" Next run queued for {row.interval_seconds:g} s after this one."


# The task lives beside the schedule it carries on: the schedule queues it and it runs the
# schedule's next step (one module, no import cycle).
@task(takes_context=True)
def trade_cycle_run(context: TaskContext) -> str:
    """One scheduled trade cycle, then the next one queued (:func:`scheduled_run`)."""
    worker = getattr(context.task_result, "worker_ids", None) or [""]
    return scheduled_run(task_id=str(context.task_result.id), worker=worker[-1])
