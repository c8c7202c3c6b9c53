"""The work a backtest asks for, known before it runs, so a request for too much is refused up
front instead of holding a server process for minutes (docs/api.md#limits).

The series is scanned in bulk (cheap per bar); what costs is each evaluation of the rules at a
bar (exact decimals). A run evaluates at most every bar, and its evaluations follow its trades,
which ``max_orders_per_day`` caps: a run of B bars over D days expects at most
min(B, D x max_orders_per_day) evaluations (a hot trigger on 100,000 minute bars reaches it:
~70 days x 5 = 350). A request of several runs (a sweep) asks for the sum over its runs."""

from __future__ import annotations

import numpy as np

# ~0.35 ms each on one core: 20,000 evaluations is about 7 s of one server process.
MAX_EVALUATIONS = 20_000


def expected_evaluations(series, max_orders_per_day: int) -> int:
    """The evaluations one run over ``series`` may need (see the module's note)."""
    bars = len(series)
    days = int(np.unique(series.days).size) if bars else 0
    return min(bars, days * max_orders_per_day)


def work_problem(series, max_orders_per_day: int, runs: int = 1,
                 limit: int = MAX_EVALUATIONS) -> str | None:
    """A sentence when ``runs`` runs over ``series`` ask for more than ``limit`` evaluations,
    naming the limit; ``None`` when the work is within it."""
    one = expected_evaluations(series, max_orders_per_day)
    total = one * runs
    if total <= limit:
        return None
    days = int(np.unique(series.days).size)
    what = f"{len(series):,} bars over {days:,} days at up to {max_orders_per_day} orders a day"
    if runs != 1:
        what += f", {runs:,} runs"
    return (f"This request may evaluate the strategy {total:,} times ({what}); at most "
            f"{limit:,} evaluations are accepted per request: shorten the series (start, end) "
            f"or lower max_orders_per_day.")
