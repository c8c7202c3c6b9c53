"""Shared by the research jobs' tests: a real worker run and the smallest sweep request."""

from __future__ import annotations

from django_tasks_db.management.commands.db_worker import Worker

from positions.research.tasks import research_job_run

# A sweep of 4 cells on one series over one year (its top 4 re-run exact: 8 runs).
TINY = {"kind": "sweep", "series": ["IBM"], "start": "2010-01-01", "end": "2010-12-31",
        "grid": {"trigger_pct": "0.03,0.05", "guard_low": [0.2, 0.3]}, "metric": "total_return"}


def run_worker(queue: str = research_job_run.queue_name) -> int:
    """Run django-tasks-db's own worker of ``queue`` (default the research jobs'; batch mode:
    until the queue is empty); tasks it ran."""
    worker = Worker(queue_names=[queue], interval=0, batch=True, backend_name="default",
                    startup_delay=False, max_tasks=None, worker_id="test-worker",
                    excluded_queue_names=[])
    worker.run()
    return worker._run_tasks
