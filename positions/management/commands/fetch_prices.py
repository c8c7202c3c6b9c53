"""manage.py fetch_prices [--tickers A,B] [--history --start D --end D]: prices from the feed
(docs/marketdata.md#fetching-by-hand)."""

from __future__ import annotations

import datetime as dt
import sys

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.marketdata.configured import configured_feed
from positions.marketdata.port import FeedError
from positions.workflows.feed import closes_backfill, held_tickers, prices_fetch
from volbal import clock


def day_option(raw: str | None, option: str) -> dt.date | None:
    if raw is None:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{option} {raw!r} is not an ISO date (YYYY-MM-DD)") from None


def feed_or_fail():
    """The configured feed, or a CommandError saying why there is none."""
    try:
        feed = configured_feed()
    except FeedError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    if feed is None:
        raise CommandError("no feed is configured: set VOLBAL_PRICE_FEED (alpaca or file)")
    return feed


def tickers_option(raw: str | None) -> list[str]:
    return [t for t in (raw or "").split(",") if t.strip()]


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Record the latest trade of each ticker (--tickers; default the tickers of the "
            "active positions, those holding shares or cash, whether or not they rely on the "
            "trade cycle, which itself prices only those that do) from the feed "
            "VOLBAL_PRICE_FEED names, with the trade's own time and the feed as source, as the "
            "trade cycle does; with --history, record the raw daily closes from --start to "
            "--end (default today) at each session's close instead. Exits 1 when a ticker "
            "could not be priced.")

    def add_arguments(self, parser):
        parser.add_argument("--tickers", help="comma-separated tickers (default: those of "
                                                "the active positions)")
        parser.add_argument("--history", action="store_true",
                            help="backfill daily closes from --start to --end")
        parser.add_argument("--start", help="first session of --history (ISO date)")
        parser.add_argument("--end", help="last session of --history (ISO date, default today)")

    def handle(self, *args, tickers, history, start, end, **options):
        first, last = day_option(start, "--start"), day_option(end, "--end")
        if (first or last) and not history:
            raise CommandError("--start and --end go with --history")
        if history and first is None:
            raise CommandError("--history needs --start")
        feed = feed_or_fail()
        wanted = tickers_option(tickers) or held_tickers()
        if not wanted:
            self.stdout.write("No tickers: no active position holds any, and --tickers gives "
                              "none.")
            return
        if history:
            report = closes_backfill(feed=feed, tickers=wanted, start=first,
                                     end=last or clock.trading_day())
            for ticker, n in report.recorded.items():
                self.stdout.write(f"{ticker}: {n} daily closes recorded from {feed.name}")
            for ticker, why in report.failed.items():
                self.stderr.write(f"{ticker}: not fetched: {why}")
            if report.failed:
                sys.exit(1)
            return
        report = prices_fetch(feed=feed, tickers=wanted)
        for ticker, trade in report.recorded.items():
            self.stdout.write(f"{ticker}: {trade.price} at {trade.ts.isoformat()} "
                              f"({feed.name})")
        for ticker, why in report.unpriced.items():
            self.stderr.write(f"{ticker}: not priced: {why}")
        self.stdout.write(f"{len(report.recorded)} prices recorded"
                          + (f", {len(report.unpriced)} tickers not priced: "
                             f"{', '.join(report.unpriced)}." if report.unpriced else "."))
        if report.unpriced:
            sys.exit(1)
