"""manage.py trade [--loop --interval S | --schedule S | --unschedule]: the trade cycle
(positions/workflows/cycle.py), here or on the job queue (positions/workflows/schedule.py)."""

from __future__ import annotations

import os
import sys

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.workflows.cycle import BATCH, trade_cycle, trade_cycle_workers
from positions.workflows.schedule import interval_problem, schedule_start, schedule_stop
from volbal.repeat import run_every


class Command(ActorCommand):  # its events name it (events.actor)
    # Cron starts it every minute, and several at once split a cycle: no system checks at each
    # start (they import every URLconf, the whole API layer: ~0.15 s of CPU per process, as
    # much as 500 positions' evaluation). `manage.py check --deploy` runs them at deployment
    # (docs/operations.md).
    requires_system_checks: list = []
    help = ("Run one trade cycle: due dividends, day orders past their session expire, then (in "
            "an exchange session) every position whose ticker has a price newer than its last "
            "evaluation has its broker polled and is evaluated at that price, submitting when "
            "auto_submit is on; new orders go to their brokers; brokers are polled for fills. "
            "One summary line per cycle, kept for the admin. Several runs at once split the "
            "positions between them, as do the --workers of one run. One cycle exits 1 when it "
            "counted errors (a step failed: the feed, a split, an evaluation, a broker), so "
            "cron can tell; --loop goes on.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true",
                            help="Repeat every --interval seconds (until --cycles, or stopped).")
        parser.add_argument("--interval", type=float, default=60.0,
                            help="Seconds between the starts of two cycles (default 60).")
        parser.add_argument("--cycles", type=int, default=0,
                            help="With --loop: stop after this many cycles (0: never).")
        parser.add_argument("--batch", type=int, default=BATCH,
                            help=f"Positions claimed at a time (default {BATCH}).")
        parser.add_argument("--workers", type=int, default=1,
                            help="Run each cycle in N processes forked once this one has "
                                 "started (Django and the calendar loaded once, not N times): "
                                 "they split the positions as N separate runs would, each "
                                 "stores its own cycle row; one summary line sums them "
                                 "(default 1: this process runs the cycle).")
        parser.add_argument("--quiet", action="store_true",
                            help="Only the summary line, not one line per position.")
        parser.add_argument("--schedule", type=float, metavar="S", default=None,
                            help="Run no cycle here: schedule one every S seconds on the job "
                                 "queue (workers: manage.py db_worker). Again: changes S, never "
                                 "a second schedule.")
        parser.add_argument("--unschedule", action="store_true",
                            help="Stop the schedule on the job queue.")

    def handle(self, *args, loop, interval, cycles, batch, quiet, schedule, unschedule,
               workers, **options):
        if interval <= 0 or batch < 1 or cycles < 0:
            raise CommandError("--interval must be > 0, --batch >= 1 and --cycles >= 0.")
        if not 1 <= workers <= 64:
            raise CommandError("--workers must be 1 to 64.")
        if workers > 1 and not hasattr(os, "fork"):
            raise CommandError("--workers needs os.fork (POSIX); run separate processes.")
        if schedule is not None or unschedule:
            if workers > 1:  # a job worker runs the scheduled cycle: more db_workers scale it
                raise CommandError("--workers runs cycles here: not with --schedule or "
                                   "--unschedule (more db_worker processes run more at once).")
            return self.schedule(schedule, unschedule, loop)

        def progress(claimed: int, line: str) -> None:
            if not quiet:
                self.stdout.write(line)

        errors = []

        def once() -> None:
            source = "worker" if loop else "cron"
            if workers > 1:  # each cycle forks its workers; --loop: anew for every cycle
                result = trade_cycle_workers(workers, batch_size=batch, source=source,
                                             progress=progress)
            else:
                result = trade_cycle(batch_size=batch, source=source, progress=progress)
            self.stdout.write(result.row.message)
            for error in result.errors:  # what the summary's errors were, even with --quiet
                self.stdout.write(f"  error: {error}")
            errors[:] = [result.row.errors]

        run_every(once, loop=loop, interval=interval, times=cycles)
        if not loop and errors and errors[0]:
            self.stdout.flush()
            sys.exit(1)

    def schedule(self, every: float | None, stop: bool, loop: bool) -> None:
        if loop or (every is not None and stop):
            raise CommandError("Use one of --loop, --schedule S and --unschedule.")
        if stop:
            row, deleted = schedule_stop()
            self.stdout.write(f"Schedule stopped ({deleted} queued run(s) removed).")
            return
        problem = interval_problem(every)
        if problem:
            raise CommandError(problem)
        row, queued = schedule_start(interval=every)
        self.stdout.write(
            f"Trade cycle scheduled every {row.interval_seconds:g} s on the job queue "
            + (f"(first run queued: task {row.task_id})." if queued else
               f"(already scheduled: task {row.task_id} carries it on with the new interval)."))
