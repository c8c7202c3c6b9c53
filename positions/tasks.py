"""Background tasks of the positions app, on the job queue's default queue (django-tasks,
database backend); the research jobs' task is ``positions.research.tasks``, on its own queue.

A task is thin: it takes an id and calls a service (patterns.md 3.4). Workers: ``manage.py
db_worker`` (any number, any machine); ``manage.py serve`` starts one beside the local web
server."""

from __future__ import annotations

from django_tasks import TaskContext, task


@task(takes_context=True)
def trade_cycle_run(context: TaskContext) -> str:
    """One scheduled trade cycle, then the next one queued (positions/trade_schedule.py)."""
    from positions.trade_schedule import scheduled_run

    worker = getattr(context.task_result, "worker_ids", None) or [""]
    return scheduled_run(task_id=str(context.task_result.id), worker=worker[-1])
