"""manage.py deliver_webhooks [--loop]: send every due webhook endpoint's next events."""

from __future__ import annotations

from events.actor import ActorCommand
from events.webhooks.delivery import deliver_pass
from volbal.repeat import run_every


class Command(ActorCommand):  # its events name it (events.actor)
    help = ("Send the next events of every active webhook endpoint that is not waiting to "
            "retry, in order, one pass (the job queue's workers do the same work as events "
            "are written; this is for cron or a dedicated process). --loop repeats every "
            "--interval seconds until stopped.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Repeat until interrupted.")
        parser.add_argument("--interval", type=float, default=5.0,
                            help="Seconds between passes with --loop (default 5).")
        parser.add_argument("--batch", type=int, default=100,
                            help="Events sent to one endpoint before moving to the next.")

    def handle(self, *args, loop, interval, batch, **options):
        try:
            run_every(lambda: self._pass(deliver_pass, batch), loop=loop, interval=interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def _pass(self, deliver_pass, batch):
        totals = {"delivered": 0, "failed": 0, "gave_up": 0}
        endpoints = set()

        def report(outcome):
            if not outcome.claimed:
                return
            endpoints.add(outcome.endpoint_id)
            totals["delivered"] += outcome.delivered
            totals["failed"] += outcome.failed_attempts
            totals["gave_up"] += outcome.gave_up
            line = (f"{outcome.endpoint_id}: {outcome.delivered} delivered, "
                    f"{outcome.failed_attempts} failed attempts")
            if outcome.errors:
                line += f" ({'; '.join(outcome.errors[:3])})"
            if outcome.gave_up:
                line += ", disabled"
            self.stdout.write(line)

        deliver_pass(batch=batch, on_endpoint=report)
        self.stdout.write(f"{len(endpoints)} endpoints, {totals['delivered']} events "
                          f"delivered, {totals['failed']} failed attempts, {totals['gave_up']} "
                          "endpoints disabled")
