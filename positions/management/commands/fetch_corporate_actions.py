"""manage.py fetch_corporate_actions [--tickers A,B] [--start D --end D]: splits and cash
dividends from the feed (docs/marketdata.md#corporate-actions)."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.management.commands.fetch_prices import feed_or_fail, tickers_option
from positions.workflows.corporate_actions import dividends_process, splits_apply_due
from positions.workflows.feed import corporate_actions_fetch
from volbal import clock
from volbal.options import day_range


class Command(ActorCommand):  # its events name it (events.actor)
    help = ("Record the splits and cash dividends of the tickers (--tickers; default the "
            "tickers of the active positions, those holding shares or cash) "
            "from the feed VOLBAL_PRICE_FEED names, for every position that held the ticker "
            "before the action's date (opened before that day began), each once however often "
            "this runs (keyed by the feed's action), then apply the due splits and dividend "
            "steps as process_dividends and the trade cycle do; an announced action dated "
            "later is recorded pending and applied when due. --start defaults to the earliest "
            "day a position in the tickers opened (or a week before the day the last fetch "
            "reached), --end to 30 days after today.")

    def add_arguments(self, parser):
        parser.add_argument("--tickers", help="comma-separated tickers (default: those of "
                                                "the active positions)")
        parser.add_argument("--start", help="first ex-date (ISO date)")
        parser.add_argument("--end", help="last ex-date (ISO date, default 30 days after "
                                          "today: actions announced ahead)")

    def handle(self, *args, tickers, start, end, **options):
        first, last = day_range(start, end)
        today = clock.trading_day()
        feed = feed_or_fail()
        report = corporate_actions_fetch(feed=feed, tickers=tickers_option(tickers),
                                         start=first, end=last)
        if report.error is not None:
            raise CommandError(f"{report.error.code}: {report.error.message}")
        for line in report.recorded:
            self.stdout.write(f"recorded: {line}")
        for line in report.conflicts:
            self.stderr.write(f"not recorded (another on that date): {line}")
        for line in report.failed:
            self.stderr.write(f"FAILED: {line}")
        splits = splits_apply_due(today=today)
        dividends = dividends_process(today=today)
        failed = len(report.failed) + len(splits.failed) + len(dividends.failed)
        self.stdout.write(
            f"{len(report.recorded)} recorded, {report.existing} already recorded, "
            f"{report.before_opened} for a position opened on or after its date; "
            f"{report.applied + len(splits.applied)} splits "
            f"applied, {len(dividends.effective)} dividends effective, {len(dividends.paid)} "
            f"paid" + (f", {failed} FAILED." if failed else "."))
        if failed:
            sys.exit(1)
