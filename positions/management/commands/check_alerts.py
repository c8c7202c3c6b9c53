"""manage.py check_alerts [--loop --interval S]: the periodic alert checks
(positions/workflows/alerts.py)."""

from __future__ import annotations

import contextlib
from collections import Counter

from django.conf import settings
from django.core.management.base import CommandError

from events.actor import Actor, ActorCommand, acting
from positions.workflows.alerts import alerts_check
from volbal import clock
from volbal.repeat import run_every


class Command(ActorCommand):  # its events name it (events.actor)
    help = ("Run the alert checks once: during an exchange session, price_stale on the active "
            "positions of a ticker with no new price for VOLBAL_PRICE_STALE_AFTER minutes, and "
            "cycle_missed on the positions that depend on the trade cycle when none has run "
            "for VOLBAL_CYCLE_MISSED_AFTER minutes. Each alert is recorded once per position "
            "and episode however often this runs. One line per alert recorded and a summary.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true",
                            help="Repeat every --interval seconds (until --passes, or stopped).")
        parser.add_argument("--interval", type=float, default=60.0,
                            help="Seconds between the starts of two passes (default 60).")
        parser.add_argument("--passes", type=int, default=0,
                            help="With --loop: stop after this many passes (0: never).")

    def handle(self, *args, loop, interval, passes, **options):
        if interval <= 0 or passes < 0:
            raise CommandError("--interval must be > 0 and --passes >= 0.")

        def once() -> None:
            with acting(Actor.worker("alerts")) if loop else contextlib.nullcontext():
                alerts = alerts_check()
            for event in alerts:
                self.stdout.write(f"{event.position_id} {event.type}: {event.message}")
            counts = Counter(event.type for event in alerts)
            shown = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            self.stdout.write(
                f"Alerts checked at {clock.now().isoformat()}: "
                + (f"{len(alerts)} recorded ({shown})." if alerts else "none new.")
                + f" (VOLBAL_PRICE_STALE_AFTER={settings.VOLBAL_PRICE_STALE_AFTER} min, "
                f"VOLBAL_CYCLE_MISSED_AFTER={settings.VOLBAL_CYCLE_MISSED_AFTER} min)")

        run_every(once, loop=loop, interval=interval, times=passes)

