"""The research jobs' task on the job queue (django-tasks, database backend), on its own queue,
``research`` (settings.RESEARCH_QUEUE), so that a worker can be dedicated to it and the trade
cycle's workers never wait behind a sweep (docs/research.md#jobs).

A task is thin: it takes an id and calls the worker code (docs/architecture.md#background-jobs); the
job's own row (:class:`~positions.research.models.ResearchJob`) carries the status users see. The
services enqueue it inside the transaction that creates the row: the queue is this database, so both
commit together. Workers: ``manage.py db_worker --queue-name research``; ``manage.py serve`` starts
one beside the local web server and the default queue's worker."""

from __future__ import annotations

from django.conf import settings
from django_tasks import TaskContext, task

from events.actor import Actor, acting
from positions.research.worker import job_execute


@task(takes_context=True, queue_name=settings.RESEARCH_QUEUE)
def research_job_run(context: TaskContext, job_id: str) -> str:
    """Run the research job ``job_id`` (a sweep, walk-forward or backtest); its final status."""
    worker = getattr(context.task_result, "worker_ids", None) or [""]
    with acting(Actor.worker("sweep")):
        return job_execute(job_id, worker_id=worker[-1])
