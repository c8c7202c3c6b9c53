"""The three benchmarks of every backtest report and the attribution of the strategy's excess
return (docs/strategy.md#benchmarks-and-attribution). Pure: numpy, the rules and the engine.

Each benchmark runs over the same bars as the strategy, is credited dividends the same way (net
of withholding, cash on the pay-date, nothing reinvested) and pays the same commission rate:

- ``held_mix``: the strategy's opening purchase (buy_to(start weight)), then nothing;
- ``stock_held``: the whole starting cash in the stock at the first bar (buy_to(1), rounded,
  commission), then nothing;
- ``fixed_mix``: the opening purchase, then on the first bar of each calendar month (after that
  bar's dividends) a trade back to the start weight: buy_to / sell_to of the start weight sized
  at the fill price (the bar price worsened by the slippage, as the opening purchase is), rounded
  toward zero like any quantity, skipped when its notional is below ``min_notional``.

Attribution of the strategy's total return R over the held mix's H, F being the fixed mix's:
R - H = (F - H) + (R - F): the *rebalancing premium* F - H and the *trigger's timing* R - F.
Dividends received and commissions paid are given beside them as fractions of the starting cash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal

import numpy as np

from positions.strategy import rules
from positions.strategy.backtest import engine

NAMES = ("held_mix", "stock_held", "fixed_mix")
LABELS = {
    "held_mix": "Held mix",
    "stock_held": "Stock held",
    "fixed_mix": "Fixed mix (monthly)",
}
DESCRIPTIONS = {
    "held_mix": "the opening purchase at the start weight, then nothing (dividends credited)",
    "stock_held": "all the starting cash in the stock at the first bar, then nothing",
    "fixed_mix": "the start weight restored on the first bar of every calendar month",
}
REBALANCE = "rebalance"  # the kind of a fixed mix's monthly order


def month_starts(days: np.ndarray) -> np.ndarray:
    """The bars (after bar 0) that are the first of a calendar month. The month can only
    change where the day does, so only the first bars of the days are converted (a million
    minute bars hold a few thousand days)."""
    starts = np.flatnonzero(days[1:] != days[:-1]) + 1
    months = days[starts].astype("datetime64[D]").astype("datetime64[M]")
    before = days[starts - 1].astype("datetime64[D]").astype("datetime64[M]")
    return starts[months != before]


class FixedMix:
    """The engine's policy of the fixed mix: on the first bar of each calendar month (after
    that bar's corporate actions) a trade back to the start weight, instead of the rules."""

    evaluates_first_bar = False

    def loop(self, book: engine.Book, start: int, fast: bool) -> None:
        starts = month_starts(book.days)
        # both ascending and without repeats: their sorted union (not np.union1d, whose
        # np.unique imports numpy.ma, a tenth of numpy's import, for nothing)
        bars = np.sort(np.concatenate((starts, book.events)))
        if len(bars) > 1:
            bars = bars[np.append(True, bars[1:] != bars[:-1])]
        monthly = set(starts.tolist())
        for j in bars[bars >= start].tolist():
            book.actions_at(j)
            if j in monthly:
                self.rebalance(book, j)
            book.record(j)

    @staticmethod
    def rebalance(book: engine.Book, j: int) -> None:
        S, C, R = book.S, book.C, book.R
        P = book.price(j)
        t = book.start_weight
        side = rules.BUY if S * P < t * (S * P + C + R) else rules.SELL
        Pf = book.fill_price(j, side)
        size = rules.buy_to if side == rules.BUY else rules.sell_to
        raw = size(t, qty=S, cash=C, receivable=R, price=Pf, commission_rate=book.c)
        if not raw > 0:
            return
        q = book.round_qty(raw)
        if side == rules.SELL:
            q = min(q, S)
        if not q > 0 or q * Pf < book.num(book.cfg.min_notional):
            return
        book.fill(j, side, q, REBALANCE)


def run_all(series, cfg: rules.Config, setup: engine.Setup = engine.Setup(),
            dividends: Iterable = (), *, exact: bool = True) -> dict[str, engine.Run]:
    """The three benchmark runs, keyed by :data:`NAMES`."""
    dividends = list(dividends)
    held = engine.run(series, cfg, setup, dividends, exact=exact, hold=True)
    stock = engine.run(series, cfg, dataclasses.replace(setup, start_weight=Decimal(1)),
                       dividends, exact=exact, hold=True)
    mix = engine.simulate(series, FixedMix(), cfg, setup, dividends, exact=exact)
    return {"held_mix": held, "stock_held": stock, "fixed_mix": mix}


def attribution(strategy: dict, bench: dict[str, dict], initial_cash) -> dict:
    """R - H = (F - H) + (R - F) from the metrics of the strategy and of the benchmarks, with
    the dividends and commissions of each as fractions of the starting cash (floats)."""
    R = float(strategy["total_return"])
    H = float(bench["held_mix"]["total_return"])
    F = float(bench["fixed_mix"]["total_return"])
    cash = float(initial_cash)
    runs = {"strategy": strategy, **bench}
    return {
        "strategy_return": R,
        "held_mix_return": H,
        "fixed_mix_return": F,
        "excess_over_held_mix": R - H,
        "rebalancing_premium": F - H,
        "trigger_timing": R - F,
        "dividends": {k: float(m["dividends"]) / cash for k, m in runs.items()},
        "commissions": {k: float(m["commissions"]) / cash for k, m in runs.items()},
    }
