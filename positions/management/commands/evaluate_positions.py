"""manage.py evaluate_positions [--ticker T] [--submit]: cron-safe, one line per position."""

from __future__ import annotations

from django.core.management.base import CommandError

from events.actor import ActorCommand
from positions import services
from positions.models import Position
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt


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
        counts = {"evaluated": 0, "submitted": 0, "skipped": 0}
        failed = 0
        for position_id, pos_ticker in ids.values_list("id", "ticker"):
            try:
                result = services.position_evaluate(
                    owner=None, position_id=position_id, submit=submit, source="cron",
                    skip_if_evaluated_at_latest=True)
            except DomainError as exc:
                self.stdout.write(f"{position_id} {pos_ticker}: refused: {exc.message}")
                continue
            except Exception as exc:  # one broken position must not stop the others
                failed += 1
                self.stdout.write(f"{position_id} {pos_ticker}: failed: "
                                  f"{type(exc).__name__}: {exc}")
                continue
            if result is None:
                counts["skipped"] += 1
                self.stdout.write(f"{position_id} {pos_ticker}: skipped, already evaluated at "
                                  "the latest price")
                continue
            counts["evaluated"] += 1
            price = "no price" if result.decision is None else f"@ {fmt(result.decision.price)}"
            line = f"{position_id} {pos_ticker} {price}: {result.reason}"
            shown = result.decision and (result.decision.proposal or result.decision.blocked)
            if shown:
                line += f" {shown.side} {fmt(shown.qty)}"
            if result.order is not None:
                counts["submitted"] += 1
                line += f", submitted {result.order.id}"
            self.stdout.write(f"{line} — {result.message}")
        summary = ", ".join(f"{v} {k}" for k, v in counts.items())
        self.stdout.write(summary + (f", {failed} failed." if failed else "."))
        if failed:
            raise CommandError(f"{failed} position(s) could not be evaluated (see above).")
