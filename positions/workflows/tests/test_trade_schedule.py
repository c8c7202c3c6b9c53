"""The trade cycle on the job queue (docs/operations.md#commands): ``manage.py trade --schedule S``
queues one task; a worker runs it (django-tasks-db's own Worker claiming it from the database): one
cycle, then the next run queued S seconds after this one's start; starting again never makes a
second schedule; a task the schedule does not name does nothing; ``--unschedule`` stops it."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from positions.models import Position, TradeCycle, TradeSchedule
from positions.workflows import cycle
from positions.workflows.schedule import trade_cycle_run

# Committed for real, as in production: the worker runs each task outside a transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _always_in_session(settings):
    settings.VOLBAL_CALENDAR = ""  # trade whatever the hour of the run


def run_worker() -> int:
    """Run the queue's worker until no task is ready; how many tasks it ran."""
    worker = Worker(queue_names=["default"], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test-worker",
                    excluded_queue_names=[])
    worker.run()
    return worker._run_tasks


def trade(*args) -> str:
    out = io.StringIO()
    call_command("trade", *args, stdout=out)
    return out.getvalue()


def ready():
    return list(DBTaskResult.objects.filter(status="READY"))


def test_a_schedule_runs_one_cycle_and_queues_the_next_at_its_interval():
    # No position: on SQLite a test that commits cannot clean append-only events away (the
    # cycle's own work is tested in test_trade_cycle.py; here: that the queue runs it).
    assert "scheduled every 30 s" in trade("--schedule", "30")
    first = ready()
    assert len(first) == 1 and first[0].task_path.endswith("trade_cycle_run")
    assert TradeSchedule.objects.get().task_id == str(first[0].id)

    before = timezone.now()
    assert run_worker() == 1  # the next run is not due yet: the batch worker stops
    ran = TradeCycle.objects.get()
    assert ran.market_open and ran.worker == "test-worker"
    assert DBTaskResult.objects.get(id=first[0].id).status == "SUCCESSFUL"
    (following,) = ready()
    assert TradeSchedule.objects.get().task_id == str(following.id)
    assert before + dt.timedelta(seconds=29) < following.run_after \
        < timezone.now() + dt.timedelta(seconds=30)

    # Due now: the worker runs it, it queues the one after; still one queued at a time.
    DBTaskResult.objects.filter(id=following.id).update(run_after=timezone.now())
    assert run_worker() == 1
    assert TradeCycle.objects.count() == 2
    assert len(ready()) == 1 and ready()[0].id != following.id


def test_starting_again_changes_the_interval_and_never_makes_a_second_schedule():
    trade("--schedule", "60")
    out = trade("--schedule", "15")
    assert "already scheduled" in out
    (task,) = ready()
    schedule = TradeSchedule.objects.get()
    assert (schedule.enabled, schedule.interval_seconds, schedule.task_id) == \
        (True, 15.0, str(task.id))


def test_a_task_the_schedule_does_not_name_does_nothing_and_queues_nothing():
    trade("--schedule", "60")
    (carrier,) = ready()
    stray = trade_cycle_run.enqueue()  # e.g. queued by hand, or left from an old schedule
    DBTaskResult.objects.filter(id=carrier.id).update(run_after=timezone.now()
                                                      + dt.timedelta(hours=1))
    assert run_worker() == 1  # only the stray one is due
    assert DBTaskResult.objects.get(id=stray.id).return_value.startswith("Not the schedule")
    assert TradeCycle.objects.count() == 0
    assert [t.id for t in ready()] == [carrier.id]


def test_unschedule_removes_the_queued_run_and_a_run_under_way_queues_no_next(monkeypatch):
    trade("--schedule", "60")
    (task,) = ready()
    assert "1 queued run(s) removed" in trade("--unschedule")
    assert ready() == [] and TradeSchedule.objects.get().enabled is False
    assert run_worker() == 0 and TradeCycle.objects.count() == 0

    # A run that started before the stop finishes its cycle and queues nothing after it.
    trade("--schedule", "60")
    (task,) = ready()
    original = cycle.trade_cycle

    def stopped_meanwhile(**kwargs):
        result = original(**kwargs)
        trade("--unschedule")
        return result

    monkeypatch.setattr(cycle, "trade_cycle", stopped_meanwhile)
    assert run_worker() == 1
    assert TradeCycle.objects.count() == 1 and ready() == []
    assert "no next run" in DBTaskResult.objects.get(id=task.id).return_value


def test_schedule_arguments_are_checked():
    with pytest.raises(CommandError, match="--schedule must be between 1 and 86400"):
        trade("--schedule", "0")
    # inf would overflow the next run's time after the first cycle (a dead schedule); a
    # nanosecond would run cycles back to back; nan compares false with everything
    for every in ("inf", "1e300", "1e-9", "0.5", "86401", "nan", "-5"):
        with pytest.raises(CommandError, match="--schedule must be between"):
            trade("--schedule", every)
    with pytest.raises(CommandError, match="one of"):
        trade("--schedule", "5", "--unschedule")
    assert not TradeSchedule.objects.exists() and ready() == []
    assert not Position.objects.exists()
