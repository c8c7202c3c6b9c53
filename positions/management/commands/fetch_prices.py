"""manage.py fetch_prices [--tickers A,B] [--history --start D --end D]: prices from the feed
(docs/marketdata.md#fetching-by-hand)."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.marketdata.configured import configured_feed
from positions.marketdata.port import FeedError
from positions.services import ticker_normalize
from positions.workflows.feed import closes_backfill, held_tickers, prices_fetch
from volbal import clock, market
from volbal.errors import DomainError
from volbal.options import day_range


def feed_or_fail():
    """The configured feed, or a CommandError saying why there is none."""
    try:
        feed = configured_feed()
    except FeedError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    if feed is None:
        raise CommandError("no feed is configured: set VOLBAL_PRICE_FEED (alpaca or file)")
    return feed


def tickers_option(raw: str | None) -> list[str] | None:
    """``--tickers A,B``: each checked as the API checks a ticker (one rule,
    :func:`positions.services.ticker_normalize`); None when the option is absent. Given, it
    must name at least one ticker (an empty list never means "all")."""
    if raw is None:
        return None
    names = [t for t in raw.split(",") if t.strip()]
    if not names:
        raise CommandError(f"--tickers {raw!r} names no ticker (leave it out for the tickers "
                           "of the active positions)")
    out = []
    for name in names:
        try:
            out.append(ticker_normalize(name))
        except DomainError as exc:
            raise CommandError(f"--tickers: {name.strip()[:40]!r}: {exc.message}") from None
    return list(dict.fromkeys(out))


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Record the latest trade of each ticker (--tickers; default the tickers of the "
            "active positions, those holding shares or cash, whether or not they rely on the "
            "trade cycle, which itself prices only those that do) from the feed "
            "VOLBAL_PRICE_FEED names, with the trade's own time and the feed as source, as the "
            "trade cycle does; with --history, record the raw daily closes from --start to "
            "--end (default: the last closed session; a later end is cut to it, a session's "
            "bar being final after its close) at each session's close instead. Exits 1 when "
            "a ticker could not be priced.")

    def add_arguments(self, parser):
        parser.add_argument("--tickers", help="comma-separated tickers (default: those of "
                                                "the active positions)")
        parser.add_argument("--history", action="store_true",
                            help="backfill daily closes from --start to --end")
        parser.add_argument("--start", help="first session of --history (ISO date)")
        parser.add_argument("--end", help="last session of --history (ISO date, default the "
                                          "last closed session)")

    def handle(self, *args, tickers, history, start, end, **options):
        first, last = day_range(start, end)
        if (first or last) and not history:
            raise CommandError("--start and --end go with --history")
        if history and first is None:
            raise CommandError("--history needs --start")
        feed = feed_or_fail()
        wanted = tickers_option(tickers)
        wanted = held_tickers() if wanted is None else wanted
        if not wanted:
            self.stdout.write("No tickers: no active position holds any, and --tickers gives "
                              "none.")
            return
        if history:
            closed = market.last_closed_session(clock.now())
            if last is not None and last > closed:
                self.stderr.write(f"--end {last} cut to the last closed session, {closed}: a "
                                  "session's bar is final after its close")
            last = min(last or closed, closed)
            if last < first:
                raise CommandError(f"no closed session from --start {first}: the last closed "
                                   f"session is {closed}")
            report = closes_backfill(feed=feed, tickers=wanted, start=first, end=last)
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
