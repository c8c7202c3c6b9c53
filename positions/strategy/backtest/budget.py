"""The work a backtest asks for, known before it runs, so a request for too much is refused up
front instead of holding a server process for minutes (docs/api.md#limits).

The series is scanned in bulk (cheap per bar); what costs is each evaluation of the rules at a
bar (exact decimals). A run evaluates at most every bar, and its evaluations follow its trades,
which ``max_orders_per_day`` caps: a run of B bars over D days expects at most
min(B, D x max_orders_per_day) evaluations (a hot trigger on 100,000 minute bars reaches it:
~70 days x 5 = 350). A request of several runs (a sweep) asks for the sum over its runs.

Resting orders (``fill: limit``) cost far more per trade: whenever a fill (or a new day's
daily cap) changes the book, the resting pair is derived again (``ladder.resting``: the
ladder's searches on both sides, each an evaluation per step), about 116 evaluations a
derivation; the hottest run measured made 166 a bar (543,966 on the 3,270 bars of the AAPL
sample, where the count above said 3,270). And while nothing rests (the daily cap reached, no
shares or no cash) each bar is evaluated at its close. A limit run is counted as every bar, plus
:data:`LIMIT_EVALUATIONS_PER_CHANGE` for each bar that may change its book: each trade and each
day, at most every bar. That is an estimate, not a bound: one derivation can take thousands (a
fixed-fraction ladder just above min_notional on whole shares climbs its rounding teeth: 2,491),
so the request that answers at once also caps the derivations as they run
(``engine.evaluation_cap``)."""

from __future__ import annotations

import numpy as np

# Measured on one core (bench machine, 2026-12): a market-fill run's evaluation ~35 us, a limit
# run's ~11 us; 20,000 evaluations are well under a second of one server process.
MAX_EVALUATIONS = 20_000

# The evaluations a limit run may make each time its book changes (see the module's note).
LIMIT_EVALUATIONS_PER_CHANGE = 170


def expected_evaluations(series, max_orders_per_day: int, fill: str = "same_bar") -> int:
    """The evaluations one run over ``series`` may need with fill policy ``fill`` (see the
    module's note)."""
    bars = len(series)
    days = int(np.unique(series.days).size) if bars else 0
    trades = min(bars, days * max_orders_per_day)
    if fill == "limit":  # a derivation at most once a bar, after a trade or a day's cap
        return bars + min(bars, trades + days) * LIMIT_EVALUATIONS_PER_CHANGE
    return trades


def work_problem(series, max_orders_per_day: int, runs: int = 1,
                 limit: int = MAX_EVALUATIONS, fill: str = "same_bar") -> str | None:
    """A sentence when ``runs`` runs over ``series`` ask for more than ``limit`` evaluations,
    naming the limit; ``None`` when the work is within it."""
    one = expected_evaluations(series, max_orders_per_day, fill)
    total = one * runs
    if total <= limit:
        return None
    days = int(np.unique(series.days).size)
    what = f"{len(series):,} bars over {days:,} days at up to {max_orders_per_day} orders a day"
    if fill == "limit":
        what += (f", resting limit orders (each trade and day: up to "
                 f"{LIMIT_EVALUATIONS_PER_CHANGE} evaluations)")
    if runs != 1:
        what += f", {runs:,} runs"
    return (f"This request may evaluate the strategy {total:,} times ({what}); at most "
            f"{limit:,} evaluations are accepted per request: shorten the series (start, end) "
            f"or lower max_orders_per_day.")
