"""manage.py verify_ledger: exits 1 and lists every difference when the books do not agree."""

from __future__ import annotations

import sys

from events.actor import ActorCommand
from positions.workflows.alerts import counted, ledger_differences_record
from positions.workflows.ledger import last_book_changes, ledger_verify


class Command(ActorCommand):  # the alerts it records name it (events.actor)
    help = ("Replay every position from its opening values through its fills and dividend "
            "steps, in the order they happened, with the rules the live path uses (same "
            "rounding), and compare its shares, cash, dividend receivable and each dividend's "
            "entitlement and amounts; check each order's filled quantity and commission "
            "against its fills and that every order and fill has its event. Prints each "
            "difference, with the last change of the position's books recorded (a fill, a "
            "dividend step, a split, its opening; not an alert or an evaluation), and exits 1 "
            "if any. With --record-alerts (the nightly run) each position found different also "
            "gets a ledger_difference alert with its differences, once per distinct set of them, "
            "as does each portfolio whose unallocated cash differs (its own event).")

    def add_arguments(self, parser):
        parser.add_argument("--record-alerts", action="store_true",
                            help="Record a ledger_difference alert on each position or "
                            "portfolio found different (not again while its differences stay "
                            "the same).")

    def handle(self, *args, record_alerts=False, **options):
        report = ledger_verify()
        for difference in report.differences:
            self.stdout.write(f"DIFFERENCE {difference}")
        different = list(dict.fromkeys(d.position_id for d in report.differences))
        # the last change of the books through the services: a difference after it came from
        # outside (alerts, evaluations and the like change no books: not named)
        last_changes = last_book_changes(different)
        for position_id in different:
            last = last_changes.get(position_id)
            if last is not None:
                self.stdout.write(f"  {position_id} last recorded change: {last.type} "
                                  f"(event {last.pk}, {last.created_at:%Y-%m-%d %H:%M:%S %Z}) "
                                  f"by {last.actor}")
        summary = ", ".join(counted(n, noun) for n, noun in (
            (report.positions, "position"), (report.orders, "order"), (report.fills, "fill"),
            (report.dividends, "dividend"),
            *([(report.portfolios, "portfolio")] if report.portfolios else []))) + " checked"
        if record_alerts:
            alerts = ledger_differences_record(report.differences)
            self.stdout.write(f"{counted(len(alerts), 'ledger_difference alert')} recorded ("
                              f"{len(different) - len(alerts)} already alerted with the same "
                              "differences).")
        if report.differences:
            self.stderr.write(f"ledger NOT ok: {counted(len(report.differences), 'difference')}; "
                              f"{summary}")
            sys.exit(1)
        self.stdout.write(f"ledger ok: {summary}.")
