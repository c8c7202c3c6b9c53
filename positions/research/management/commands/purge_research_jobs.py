"""``manage.py purge_research_jobs --older-than DAYS``: delete the research jobs (sweeps,
walk-forwards, backtest jobs) that finished more than DAYS days ago, with their stored requests,
results and files; queued and running jobs are kept. For cron, beside ``prune_db_task_results``
(the queue's own task rows)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from positions.research.services import jobs_purge

MAX_DAYS = 36_600  # a century: beyond, the cutoff date overflows


class Command(BaseCommand):
    help = ("Delete the research jobs that finished more than --older-than DAYS days ago (their "
            "requests, results and files with them); queued and running jobs are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                            help="finished more than this many days ago (0: every finished job)")

    def handle(self, *args, **opts):
        days = opts["older_than"]
        if not 0 <= days <= MAX_DAYS:
            raise CommandError(f"--older-than must be between 0 and {MAX_DAYS} days, not {days}.")
        deleted = jobs_purge(older_than=dt.timedelta(days=days))
        self.stdout.write(f"{deleted} finished research job(s) older than {days} day(s) "
                          "deleted.")
