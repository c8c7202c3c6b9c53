"""A backtest and its report: the run with its benchmarks measured, the JSON document, the
terminal table and the end-of-day series. Pure (no Django). The files (CSV, workbook, plot) are
written by :mod:`positions.strategy.export`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from positions.strategy import formats, ladder, rules
from positions.strategy.backtest import benchmarks, engine, metrics

ORDER_KEYS = ("date", "side", "qty", "price", "commission", "kind")


@dataclass
class Benchmark:
    """One benchmark's run, its equity and weight after each bar, and its metrics."""

    run: engine.Run
    equity: np.ndarray
    weight: np.ndarray
    metrics: dict


@dataclass
class Report:
    series: object  # data.Series
    cfg: rules.Config
    setup: engine.Setup
    dividends: list
    strategy: engine.Run
    hold: engine.Run  # the held mix (benchmarks["held_mix"].run)
    equity: np.ndarray
    weight: np.ndarray
    hold_equity: np.ndarray
    hold_weight: np.ndarray
    metrics: dict
    hold_metrics: dict
    benchmarks: dict[str, Benchmark] = field(default_factory=dict)  # keyed by benchmarks.NAMES
    attribution: dict = field(default_factory=dict)
    note: str | None = None  # why the annualised figures are null, when they are
    # fill: limit: the run beside the same series under next_bar ({"limit": .., "next_bar": ..},
    # each fill_summary's)
    comparison: dict | None = None

    @property
    def dividends_in_range(self) -> int:
        """The dividends that go ex inside the series (after its first bar): those the run
        credits, not every one loaded."""
        ex, _pay = engine.schedule(self.series.days, self.dividends)
        return sum(len(found) for found in ex.values())

    @property
    def notes(self) -> list[str]:
        return [self.note] if self.note else []


def measure(series, run: engine.Run, cfg: rules.Config, cash) -> Benchmark:
    """A run's equity and weight after each bar, and its metrics."""
    equity, weight = metrics.equity_and_weight(series.prices, run)
    return Benchmark(run, equity, weight,
                     metrics.summary(series, run, cfg, cash, equity=equity, weight=weight))


def backtest(series, cfg: rules.Config, setup: engine.Setup = engine.Setup(),
             dividends: Iterable = (), *, exact: bool = True,
             progress: Callable[[int], None] | None = None) -> Report:
    """Run the strategy and its three benchmarks over ``series`` and measure them all."""
    dividends = list(dividends)
    with engine.exact_arithmetic():  # the runs and their measures: a limit run's next_bar too
        strat = engine.run(series, cfg, setup, dividends, exact=exact, progress=progress)
        runs = benchmarks.run_all(series, cfg, setup, dividends, exact=exact)
        mine = measure(series, strat, cfg, setup.cash)
        bench = {name: measure(series, r, cfg, setup.cash) for name, r in runs.items()}
        comparison = None
        if setup.fill == "limit":
            nb = engine.run(series, cfg, dataclasses.replace(setup, fill="next_bar"),
                            dividends, exact=exact)
            comparison = {"limit": fill_summary(mine, cfg),
                          "next_bar": fill_summary(measure(series, nb, cfg, setup.cash), cfg)}
    held = bench["held_mix"]
    return Report(
        series, cfg, setup, dividends, strat, held.run, mine.equity, mine.weight, held.equity,
        held.weight, mine.metrics, held.metrics, bench,
        benchmarks.attribution(mine.metrics, {k: b.metrics for k, b in bench.items()},
                               setup.cash),
        metrics.annualised_note(series.seconds), comparison,
    )


def slippage_to_trigger(run: engine.Run, cfg: rules.Config) -> float | None:
    """The average distance of a run's fills from their triggers, in basis points (positive:
    worse than the trigger; a buy above it, a sell below): each order after the opening
    against the ladder's rung of its side for the state in force before its bar (the state a
    resting order was derived from, or a market order placed on)."""
    rows = run.change_bar
    rested = {k: rung for k, rung, _limit in run.rungs}  # a resting fill knows its rung
    out = []
    for i, o in enumerate(run.orders):
        if o.kind == "opening":
            continue
        t = rested.get(i)
        if t is None:
            k = int(np.searchsorted(rows, o.bar, "left")) - 1
            anchor = run.change_anchor[k]
            if k < 0 or np.isnan(anchor):
                continue
            state = rules.State(*(Decimal(repr(float(x))) for x in (
                run.change_qty[k], run.change_cash[k], run.change_receivable[k], anchor)))
            lad = ladder.ladder(state, cfg, explain=False)
            rung = lad.buy if o.side == rules.BUY else lad.sell
            if rung is None or rung.always:
                continue
            t = rung.price
        t = float(t)
        px = float(o.price)
        out.append((px / t - 1) * 1e4 if o.side == rules.BUY else (1 - px / t) * 1e4)
    return sum(out) / len(out) if out else None


def fill_summary(b: Benchmark, cfg: rules.Config) -> dict:
    """What a fill policy made of the series: total return, trades, average slippage to the
    trigger (bps), and the equity after each bar (for the picture; not in the JSON)."""
    return {"total_return": b.metrics["total_return"], "trades": len(b.run.orders),
            "avg_slippage_to_trigger_bps": slippage_to_trigger(b.run, cfg),
            "final_value": b.metrics["final_value"], "equity": b.equity}


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def metrics_json(m: dict) -> dict:
    """A run's metrics as JSON numbers (None where undefined)."""
    out = {}
    for k, v in m.items():
        if k == "final_qty":
            out[k] = formats.number(v, 8)
        elif k in ("buys", "sells"):
            out[k] = None if v is None else int(v)  # None: a portfolio benchmark's curve
        elif k == "max_drawdown_days":
            out[k] = formats.number(v, 4)
        else:
            out[k] = formats.number(v, 6)
    return out


def _attribution_json(att: dict) -> dict:
    out = {}
    for k, v in att.items():
        out[k] = ({n: formats.number(x, 6) for n, x in v.items()} if isinstance(v, dict)
                  else formats.number(v, 6))
    return out


def document(rep: Report) -> dict:
    """The JSON document: the strategy's metrics, the three benchmarks' (``buy_and_hold`` is
    the held mix under its former name), the attribution, notes and every order."""
    label = rep.series.label
    return {
        "metrics": metrics_json(rep.metrics),
        "buy_and_hold": metrics_json(rep.hold_metrics),
        "benchmarks": {k: metrics_json(b.metrics) for k, b in rep.benchmarks.items()},
        "attribution": _attribution_json(rep.attribution),
        "notes": rep.notes,
        **({"comparison": {k: {"total_return": formats.number(v["total_return"], 6),
                               "trades": v["trades"],
                               "avg_slippage_to_trigger_bps": formats.number(
                                   v["avg_slippage_to_trigger_bps"], 4)}
                           for k, v in rep.comparison.items()}} if rep.comparison else {}),
        "orders": [
            {
                "date": label(o.bar),
                "side": o.side,
                "qty": formats.number(o.qty, 8),
                "price": formats.number(o.price, 6),
                "commission": formats.number(o.commission, 6),
                "kind": o.kind,
            }
            for o in rep.strategy.orders
        ],
    }


# --------------------------------------------------------------------------------------------
# Terminal table
# --------------------------------------------------------------------------------------------


def describe(rep: Report) -> list[str]:
    s = rep.series
    cfg = rep.cfg
    n = len(s)
    kind = "intraday" if s.intraday else "daily"
    name = f" of {s.name}" if s.name else ""
    lines = [
        f"Backtest{name}, {s.label(0)} to {s.label(n - 1)}: {n:,} {kind} bars, "
        f"{rep.dividends_in_range} dividend{'s' if rep.dividends_in_range != 1 else ''}",
        f"Strategy: trigger {formats.fraction(cfg.trigger_pct)}, {cfg.sizing} sizing "
        f"(ratio {cfg.rebalance_ratio}), band {formats.fraction(cfg.guard_low)} to "
        f"{formats.fraction(cfg.guard_high)}, min notional {cfg.min_notional}, commission "
        f"{formats.fraction(cfg.commission_rate)}, at most {cfg.max_orders_per_day} orders a "
        "day",
        f"Start: cash {formats.money(rep.setup.cash)}, stock weight "
        f"{formats.fraction(rep.setup.start_weight)}, "
        f"slippage {rep.setup.slippage_bps} bps",
    ]
    return lines


_TABLE_ROWS = (
    ("Total return", lambda m: formats.pct(m["total_return"])),
    ("CAGR", lambda m: formats.pct(m["cagr"])),
    ("Volatility (annual)", lambda m: formats.pct(m["volatility"])),
    ("Sharpe", lambda m: formats.ratio(m["sharpe"])),
    ("Sortino", lambda m: formats.ratio(m["sortino"])),
    ("Max drawdown", lambda m: formats.pct(m["max_drawdown"])),
    ("Max drawdown duration", lambda m: formats.days(m["max_drawdown_days"])),
    ("Buys / sells", lambda m: f"{m['buys']:,} / {m['sells']:,}"),
    ("Commissions", lambda m: formats.money(m["commissions"])),
    ("Dividends (net, paid)", lambda m: formats.money(m["dividends"])),
    ("Turnover (per year)", lambda m: formats.turnover(m["turnover"])),
    ("Bars inside the band", lambda m: formats.pct(m["in_band_share"], 1)),
    ("Final shares", lambda m: f"{float(m['final_qty']):,.4f}"),
    ("Final cash", lambda m: formats.money(m["final_cash"])),
    ("Final value", lambda m: formats.money(m["final_value"])),
)


def attribution_lines(rep: Report) -> list[str]:
    """The attribution of the excess return over the held mix, in sentences for a terminal."""
    a = rep.attribution
    if not a:
        return []
    d, k = a["dividends"], a["commissions"]
    pct = formats.pct
    return [
        "Attribution (total returns, fractions of the starting cash):",
        f"  excess over the held mix     {pct(a['excess_over_held_mix']):>10}  = strategy "
        f"{pct(a['strategy_return'])} - held mix {pct(a['held_mix_return'])}",
        f"  rebalancing premium          {pct(a['rebalancing_premium']):>10}  = fixed mix "
        f"{pct(a['fixed_mix_return'])} - held mix {pct(a['held_mix_return'])}",
        f"  trigger's timing             {pct(a['trigger_timing']):>10}  = strategy "
        f"{pct(a['strategy_return'])} - fixed mix {pct(a['fixed_mix_return'])}",
        "  dividends received           " + ", ".join(
            f"{_who(n)} {formats.pct(v)}" for n, v in d.items()),
        "  commissions paid             " + ", ".join(
            f"{_who(n)} {formats.pct(v, 3)}" for n, v in k.items()),
    ]


def _who(name: str) -> str:
    return "strategy" if name == "strategy" else benchmarks.LABELS[name].lower()


def table(rep: Report) -> str:
    """The metrics beside the three benchmarks, the attribution and any note, for a
    terminal."""
    cols = [("Strategy", rep.metrics)] + [
        (benchmarks.LABELS[k], b.metrics) for k, b in rep.benchmarks.items()]
    rows = [(label, *(f(m) for _, m in cols)) for label, f in _TABLE_ROWS]
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(name), *(len(r[i + 1]) for r in rows)) for i, (name, _) in
              enumerate(cols)]
    out = describe(rep)
    out.append("")
    out.append(f"{'':<{w0}}  " + "  ".join(f"{name:>{w}}" for (name, _), w in
                                           zip(cols, widths, strict=True)))
    out.append(f"{'-' * w0}  " + "  ".join("-" * w for w in widths))
    out.extend(f"{r[0]:<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in
                                             zip(r[1:], widths, strict=True)) for r in rows)
    lines = attribution_lines(rep)
    if lines:
        out.append("")
        out.extend(lines)
    if rep.comparison:
        out.append("")
        out.append("Resting orders against next-bar market orders on the same series:")
        for k, v in rep.comparison.items():
            slip = v["avg_slippage_to_trigger_bps"]
            out.append(f"  {k:<9} return {float(v['total_return']) * 100:8.2f} %, "
                       f"{v['trades']:5d} trades, average slippage to the trigger "
                       + ("n/a" if slip is None else f"{slip:+.1f} bps"))
    for note in rep.notes:
        out.append("")
        out.append(f"Note: {note}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Daily series (CSV, workbook, plot)
# --------------------------------------------------------------------------------------------

DAILY_COLUMNS = ("date", "close", "equity", "held_mix", "stock_held", "fixed_mix", "weight",
                 "qty", "cash", "receivable", "anchor", "drawdown")


def daily(rep: Report) -> dict[str, np.ndarray]:
    """End-of-day values (the last bar of each calendar day)."""
    idx = rep.series.day_ends
    state = metrics.state_at(rep.strategy, idx)
    eq = rep.equity
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / np.where(peak > 0, peak, 1.0) - 1.0, 0.0)
    return {
        "date": rep.series.times[idx].astype("datetime64[D]"),
        "close": rep.series.prices[idx],
        "equity": eq[idx],
        **{k: b.equity[idx] for k, b in rep.benchmarks.items()},
        "weight": rep.weight[idx],
        "qty": state["qty"],
        "cash": state["cash"],
        "receivable": state["receivable"],
        "anchor": state["anchor"],
        "drawdown": dd[idx],
    }

