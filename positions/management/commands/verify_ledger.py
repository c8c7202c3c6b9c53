"""manage.py verify_ledger: exits 1 and lists every difference when the books do not agree."""

from __future__ import annotations

import sys

from events.actor import ActorCommand
from events.selectors import last_event
from positions.alerts import ledger_differences_record
from positions.ledger import ledger_verify


class Command(ActorCommand):  # the alerts it records name it (events.actor)
    help = ("Replay every position from its opening values through its fills and dividend "
            "steps, in the order they happened, with the rules the live path uses (same "
            "rounding), and compare its shares, cash, dividend receivable and each dividend's "
            "entitlement and amounts; check each order's filled quantity and commission "
            "against its fills and that every order and fill has its event. Prints each "
            "difference, with who last changed the position through the service, and exits 1 "
            "if any. With --record-alerts (the nightly run) each position found different also "
            "gets a ledger_difference alert with its differences, once per distinct set of them.")

    def add_arguments(self, parser):
        parser.add_argument("--record-alerts", action="store_true",
                            help="Record a ledger_difference alert on each position found "
                            "different (not again while its differences stay the same).")

    def handle(self, *args, record_alerts=False, **options):
        report = ledger_verify()
        for difference in report.differences:
            self.stdout.write(f"DIFFERENCE {difference}")
        for position_id in dict.fromkeys(d.position_id for d in report.differences):
            # who last changed it through the service: a change with no event came from outside
            last = last_event(position_id=position_id)
            if last is not None:
                self.stdout.write(f"  {position_id} last recorded change: {last.type} "
                                  f"(event {last.pk}, {last.created_at:%Y-%m-%d %H:%M:%S %Z}) "
                                  f"by {last.actor}")
        summary = (f"{report.positions} positions, {report.orders} orders, {report.fills} "
                   f"fills, {report.dividends} dividends checked")
        if record_alerts:  # after the lines above: the alert is not "the last change"
            alerts = ledger_differences_record(report.differences)
            different = len({d.position_id for d in report.differences})
            self.stdout.write(f"{len(alerts)} ledger_difference alerts recorded ("
                              f"{different - len(alerts)} positions already alerted with the "
                              "same differences).")
        if report.differences:
            self.stderr.write(f"ledger NOT ok: {len(report.differences)} differences; {summary}")
            sys.exit(1)
        self.stdout.write(f"ledger ok: {summary}.")
