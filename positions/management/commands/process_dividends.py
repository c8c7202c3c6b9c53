"""manage.py process_dividends [--date D]: run daily (cron); safe to run often and at once."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.dividends import dividends_process


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Move every due dividend through its steps up to --date (default: today in "
            "VOLBAL_TRADING_TZ): on the ex-date the net amount becomes receivable and the anchor "
            "drops by the dividend per share; on the pay-date the net amount moves to cash. "
            "Each step happens exactly once, however often or concurrently this runs; missed "
            "days are caught up in order.")

    def add_arguments(self, parser):
        parser.add_argument("--date", help="Process as of this ISO date (YYYY-MM-DD).")

    def handle(self, *args, date, **options):
        today = None
        if date:
            try:
                today = dt.date.fromisoformat(date)
            except ValueError:
                raise CommandError(f"--date {date!r} is not an ISO date (YYYY-MM-DD)") from None
        report = dividends_process(today=today)
        for div_id in report.effective:
            self.stdout.write(f"{div_id}: effective (ex-date reached)")
        for div_id in report.paid:
            self.stdout.write(f"{div_id}: paid")
        self.stdout.write(f"{len(report.effective)} dividends became effective, "
                          f"{len(report.paid)} were paid.")
