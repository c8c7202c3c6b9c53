"""manage.py apply_split TICKER RATIO --date D: record a split on every position in a ticker."""

from __future__ import annotations

import datetime as dt
import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from events.actor import ActorCommand
from positions.strategy import rules
from positions.workflows.corporate_actions import split_announce_ticker
from volbal.errors import DomainError


class Command(ActorCommand):  # its events name it (events.actor)
    help = ("Record a stock split of RATIO, new:old shares exactly (2:1 for 2-for-1, 1:3 for "
            "1-for-3 reverse; a decimal that states it exactly, 2 or 0.5, is taken too) effective "
            "--date for every position in TICKER, and apply it if that date "
            "has come (otherwise the trade cycle applies it on the date, before it evaluates). "
            "Each position gets it exactly once, however often or concurrently this runs; a "
            "position with another ratio on that date, a split that cannot apply, and a ticker no "
            "position holds are reported and the command exits 1.")

    def add_arguments(self, parser):
        parser.add_argument("ticker")
        parser.add_argument("ratio", help='new:old shares, e.g. "1:3", or an exact decimal.')
        parser.add_argument("--date", required=True, help="Effective date (YYYY-MM-DD).")

    def handle(self, *args, ticker, ratio, date, **options):
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise CommandError(f"--date {date!r} is not an ISO date (YYYY-MM-DD)") from None
        try:
            k = rules.split_ratio(ratio)
        except rules.RuleError as exc:
            raise CommandError(f"RATIO: {exc.message}") from None
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # on stderr, and only on a terminal (disable=None)
                bar = tqdm(total=total, desc=f"split {ticker}", unit="position", disable=None)
            bar.update(done - bar.n)

        try:
            report = split_announce_ticker(ticker=ticker, ratio=k, effective_date=day,
                                           progress=progress)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if bar is not None:
            bar.close()
        if not (report.recorded or report.existing or report.conflicts or report.failed):
            self.stderr.write(f"No position holds {ticker.strip().upper()}: nothing was "
                              "recorded (a typo in the ticker?).")
            sys.exit(1)
        self.stdout.write(f"{len(report.recorded)} recorded, {len(report.existing)} already "
                          f"had it, {len(report.applied)} applied.")
        for pid in report.conflicts:
            self.stderr.write(f"{pid}: another split is recorded on {day}; left alone.")
        for pid, reason in report.failed:
            self.stderr.write(f"{pid}: not applied: {reason}")
        if report.conflicts or report.failed:
            sys.exit(1)
