"""manage.py process_dividends [--date D]: run daily (cron); safe to run often and at once."""

from __future__ import annotations

import datetime as dt
import sys

from django.conf import settings
from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.workflows.corporate_actions import dividends_process
from volbal import clock


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Move every due dividend through its steps up to --date (default: today in "
            "VOLBAL_TRADING_TZ; a later date is refused): on the ex-date the net amount becomes "
            "receivable and the anchor drops by the dividend per share; on the pay-date the net "
            "amount moves to cash. Each step happens exactly once, however often or "
            "concurrently this runs; missed days are caught up in order. A step that fails is "
            "rolled back alone, recorded (dividend_step_failed) and printed; the others "
            "proceed, and the command then exits 1.")

    def add_arguments(self, parser):
        parser.add_argument("--date", help="Process as of this ISO date (YYYY-MM-DD), today "
                            "or earlier.")

    def handle(self, *args, date, **options):
        today = None
        if date:
            try:
                today = dt.date.fromisoformat(date)
            except ValueError:
                raise CommandError(f"--date {date!r} is not an ISO date (YYYY-MM-DD)") from None
            if today > clock.trading_day():
                raise CommandError(
                    f"--date {today} is after today ({clock.trading_day()} in "
                    f"{settings.VOLBAL_TRADING_TZ}): a dividend step is never taken early.")
        report = dividends_process(today=today)
        for div_id in report.effective:
            self.stdout.write(f"{div_id}: effective (ex-date reached)")
        for div_id in report.paid:
            self.stdout.write(f"{div_id}: paid")
        for failure in report.failed:
            self.stderr.write(str(failure))
        self.stdout.write(f"{len(report.effective)} dividends became effective, "
                          f"{len(report.paid)} were paid"
                          + (f", {len(report.failed)} steps FAILED." if report.failed else "."))
        if report.failed:
            sys.exit(1)
