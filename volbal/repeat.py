"""The ``--loop --interval S`` of the commands that run a pass of work (``trade``,
``check_alerts``, ``deliver_webhooks``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def run_every(once: Callable[[], None], *, loop: bool, interval: float, times: int = 0) -> None:
    """Call ``once()``; with ``loop``, again every ``interval`` seconds counted from the start
    of the previous call (at once when it took longer), until ``times`` calls (0: until
    stopped)."""
    done = 0
    while True:
        started = time.monotonic()
        once()
        done += 1
        if not loop or (times and done >= times):
            return
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
