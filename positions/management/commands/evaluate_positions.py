"""manage.py evaluate_positions [--ticker T] [--submit]: cron-safe, one line per position.

The trade cycle's evaluation step (positions.cycle.evaluate_positions) over every position;
``manage.py trade`` runs the whole cycle."""

from __future__ import annotations

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions.models import Position
from positions.workflows.cycle import evaluate_positions


class Command(ActorCommand):  # its events and prices name it (events.actor)
    help = ("Evaluate every position at its latest known price (the ticker's newest stored "
            "price, or the position's last fill when newer) and, with --submit, "
            "place the proposals. Safe from cron and concurrently: each position is locked while "
            "evaluated, and one already evaluated with --submit at the latest price is skipped "
            "(a run without --submit only looks and never stops a later --submit run).")

    def add_arguments(self, parser):
        parser.add_argument("--ticker", help="Only positions in this ticker.")
        parser.add_argument("--submit", action="store_true", help="Submit the proposals.")

    def handle(self, *args, ticker, submit, **options):
        ids = Position.objects.order_by("created_at", "id")
        if ticker:
            ids = ids.filter(ticker=ticker.strip().upper())
        tickers = dict(ids.values_list("id", "ticker"))
        counts = {"evaluated": 0, "submitted": 0, "skipped": 0}
        failed = 0
        for position_id, line in evaluate_positions(list(tickers), submit=submit):
            pos_ticker = tickers[position_id]
            if line is None:
                counts["skipped"] += 1
                self.stdout.write(f"{position_id} {pos_ticker}: skipped, already evaluated at "
                                  "the latest price")
                continue
            if line.failed or line.text.startswith("refused: "):
                failed += line.failed
                self.stdout.write(f"{position_id} {pos_ticker}: {line.text}")
                continue
            counts["evaluated"] += 1
            counts["submitted"] += line.submitted
            self.stdout.write(f"{position_id} {pos_ticker} {line.text}")
        summary = ", ".join(f"{v} {k}" for k, v in counts.items())
        self.stdout.write(summary + (f", {failed} failed." if failed else "."))
        if failed:
            raise CommandError(f"{failed} position(s) could not be evaluated (see above).")
