"""Background tasks of the positions app, on the one job queue (django-tasks, database backend).

A task is thin: it takes an id and calls a service (patterns.md 3.4); the job's own row (e.g.
``Sweep``) carries the status users see. Enqueue one with ``sweep_run.enqueue(sweep.id)``, inside
the transaction that creates the row: the queue is this database, so both commit together.
Workers: ``manage.py db_worker`` (any number, any machine); ``manage.py serve`` starts one
beside the local web server."""

from __future__ import annotations

from django_tasks import TaskContext, task


@task(takes_context=True)
def sweep_run(context: TaskContext, sweep_id: str) -> str:
    """Run the sweep or walk-forward job ``sweep_id``; its final status."""
    from events.actor import Actor, acting
    from positions.sweeps import sweep_execute

    worker = getattr(context.task_result, "worker_ids", None) or [""]
    with acting(Actor.worker("sweep")):
        return sweep_execute(sweep_id, worker_id=worker[-1])

