"""A backtest and its report: the JSON document, a terminal table, a PNG, a workbook, a CSV.

Pure (no Django). matplotlib and openpyxl are imported only by the functions that draw or
write with them, so a run that does not ask for a picture or a workbook never loads them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import numpy as np

from positions.strategy import rules
from positions.strategy.backtest import benchmarks, engine, metrics
from positions.strategy.export import cells

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
    try:
        strat = engine.run(series, cfg, setup, dividends, exact=exact, progress=progress)
        runs = benchmarks.run_all(series, cfg, setup, dividends, exact=exact)
    except InvalidOperation:  # a quantity or amount past 28 significant digits
        raise engine.SetupError({"cash": "The cash and prices are too large for exact decimal "
                                         "arithmetic (28 significant digits); scale them "
                                         "down."}) from None
    mine = measure(series, strat, cfg, setup.cash)
    bench = {name: measure(series, r, cfg, setup.cash) for name, r in runs.items()}
    held = bench["held_mix"]
    return Report(
        series, cfg, setup, dividends, strat, held.run, mine.equity, mine.weight, held.equity,
        held.weight, mine.metrics, held.metrics, bench,
        benchmarks.attribution(mine.metrics, {k: b.metrics for k, b in bench.items()},
                               setup.cash),
        metrics.annualised_note(series.seconds),
    )


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _num(x, places: int = 6):
    """A JSON number: Decimals exactly (via their shortest float), floats rounded."""
    if x is None:
        return None
    if isinstance(x, bool):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, Decimal):
        return float(x)
    x = float(x)
    if not math.isfinite(x):
        return None
    return round(x, places)


def metrics_json(m: dict) -> dict:
    """A run's metrics as JSON numbers (None where undefined)."""
    out = {}
    for k, v in m.items():
        if k == "final_qty":
            out[k] = _num(v, 8)
        elif k in ("buys", "sells"):
            out[k] = int(v)
        elif k == "max_drawdown_days":
            out[k] = _num(v, 4)
        else:
            out[k] = _num(v, 6)
    return out


def _attribution_json(att: dict) -> dict:
    out = {}
    for k, v in att.items():
        out[k] = {n: _num(x, 6) for n, x in v.items()} if isinstance(v, dict) else _num(v, 6)
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
        "orders": [
            {
                "date": label(o.bar),
                "side": o.side,
                "qty": _num(o.qty, 8),
                "price": _num(o.price, 6),
                "commission": _num(o.commission, 6),
                "kind": o.kind,
            }
            for o in rep.strategy.orders
        ],
    }


# --------------------------------------------------------------------------------------------
# Terminal table
# --------------------------------------------------------------------------------------------


def _pct(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:,.{digits}f} %"


def _ratio(x) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _money(x) -> str:
    return "n/a" if x is None else f"{float(x):,.2f}"


def _days(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f} d" if x >= 10 else f"{x:,.2f} d"


def _fmt_frac(x) -> str:
    """A configuration fraction as a percent for a sentence: 0.03 -> '3 %'."""
    s = format((Decimal(str(x)) * 100).normalize(), "f")
    return f"{s} %"


def describe(rep: Report) -> list[str]:
    s = rep.series
    cfg = rep.cfg
    n = len(s)
    kind = "intraday" if s.intraday else "daily"
    name = f" of {s.name}" if s.name else ""
    lines = [
        f"Backtest{name}, {s.label(0)} to {s.label(n - 1)}: {n:,} {kind} bars, "
        f"{rep.dividends_in_range} dividend{'s' if rep.dividends_in_range != 1 else ''}",
        f"Strategy: trigger {_fmt_frac(cfg.trigger_pct)}, {cfg.sizing} sizing "
        f"(ratio {cfg.rebalance_ratio}), band {_fmt_frac(cfg.guard_low)} to "
        f"{_fmt_frac(cfg.guard_high)}, min notional {cfg.min_notional}, commission "
        f"{_fmt_frac(cfg.commission_rate)}, at most {cfg.max_orders_per_day} orders a day",
        f"Start: cash {_money(rep.setup.cash)}, stock weight {_fmt_frac(rep.setup.start_weight)}, "
        f"slippage {rep.setup.slippage_bps} bps",
    ]
    return lines


def _turnover(x) -> str:
    return "n/a" if x is None else _ratio(x) + "x"


_TABLE_ROWS = (
    ("Total return", lambda m: _pct(m["total_return"])),
    ("CAGR", lambda m: _pct(m["cagr"])),
    ("Volatility (annual)", lambda m: _pct(m["volatility"])),
    ("Sharpe", lambda m: _ratio(m["sharpe"])),
    ("Sortino", lambda m: _ratio(m["sortino"])),
    ("Max drawdown", lambda m: _pct(m["max_drawdown"])),
    ("Max drawdown duration", lambda m: _days(m["max_drawdown_days"])),
    ("Buys / sells", lambda m: f"{m['buys']:,} / {m['sells']:,}"),
    ("Commissions", lambda m: _money(m["commissions"])),
    ("Dividends (net, paid)", lambda m: _money(m["dividends"])),
    ("Turnover (per year)", lambda m: _turnover(m["turnover"])),
    ("Bars inside the band", lambda m: _pct(m["in_band_share"], 1)),
    ("Final shares", lambda m: f"{float(m['final_qty']):,.4f}"),
    ("Final cash", lambda m: _money(m["final_cash"])),
    ("Final value", lambda m: _money(m["final_value"])),
)


def attribution_lines(rep: Report) -> list[str]:
    """The attribution of the excess return over the held mix, in sentences for a terminal."""
    a = rep.attribution
    if not a:
        return []
    d, k = a["dividends"], a["commissions"]
    return [
        "Attribution (total returns, fractions of the starting cash):",
        f"  excess over the held mix     {_pct(a['excess_over_held_mix']):>10}  = strategy "
        f"{_pct(a['strategy_return'])} - held mix {_pct(a['held_mix_return'])}",
        f"  rebalancing premium          {_pct(a['rebalancing_premium']):>10}  = fixed mix "
        f"{_pct(a['fixed_mix_return'])} - held mix {_pct(a['held_mix_return'])}",
        f"  trigger's timing             {_pct(a['trigger_timing']):>10}  = strategy "
        f"{_pct(a['strategy_return'])} - fixed mix {_pct(a['fixed_mix_return'])}",
        "  dividends received           " + ", ".join(
            f"{_who(n)} {_pct(v)}" for n, v in d.items()),
        "  commissions paid             " + ", ".join(
            f"{_who(n)} {_pct(v, 3)}" for n, v in k.items()),
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


def _cell(name: str, v):
    if name == "date":
        return str(v)
    v = float(v)
    if not math.isfinite(v):
        return ""
    return round(v, 8 if name == "qty" else 6)


def write_equity_csv(rep: Report, path) -> None:
    d = daily(rep)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cells.row(DAILY_COLUMNS))
        cols = [d[c] for c in DAILY_COLUMNS]
        for row in zip(*cols, strict=True):
            w.writerow(cells.row(_cell(c, v) for c, v in zip(DAILY_COLUMNS, row, strict=True)))


_SUMMARY_LABELS = {
    "total_return": "Total return", "cagr": "CAGR", "volatility": "Volatility (annual)",
    "sharpe": "Sharpe", "sortino": "Sortino", "max_drawdown": "Max drawdown",
    "max_drawdown_days": "Max drawdown duration (days)", "buys": "Buys", "sells": "Sells",
    "commissions": "Commissions", "dividends": "Dividends (net, paid)",
    "turnover": "Turnover (per year)", "in_band_share": "Bars inside the band",
    "final_qty": "Final shares", "final_cash": "Final cash", "final_value": "Final value",
}
_PERCENT = {"total_return", "cagr", "volatility", "max_drawdown", "in_band_share"}


def bar_time(series, i: int):
    """Bar ``i``'s time for a workbook cell: a ``date`` for daily data, else the wall-clock
    ``datetime`` as written (a spreadsheet has no UTC offsets)."""
    t = series.times[i]
    if not series.intraday:
        return t.astype("datetime64[D]").item()
    return t.astype("datetime64[s]").item()


def style_header(ws, row: int, ncols: int) -> None:
    """Bold the header cells of ``row``."""
    from openpyxl.styles import Font

    bold = Font(bold=True)
    for cell in ws[row][:ncols]:
        cell.font = bold


def table_sheet(ws, header, rows, *, date_format: str | None = None, freeze_col: str = "A",
                widths: dict | None = None) -> None:
    """A sheet holding one table: a bold header row frozen in place, a filter over the whole
    table, dates (the first column, when ``date_format``) stored as dates."""
    cells.append(ws, list(header))
    style_header(ws, 1, len(header))
    for row in rows:
        cells.append(ws, list(row))
    if date_format:
        for (cell,) in ws.iter_rows(min_row=2, max_col=1):
            cell.number_format = date_format
    ws.freeze_panes = f"{freeze_col}2"
    ws.auto_filter.ref = ws.dimensions
    for col, w in (widths or {}).items():
        ws.column_dimensions[col].width = w


def write_xlsx(rep: Report, path) -> None:
    """A workbook: Summary (metrics beside the benchmarks, the attribution, the inputs),
    Orders, Daily. Dates are dates; every header row is frozen; every table has a filter."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    for line in describe(rep):
        cells.append(ws, [line])
    ws["A1"].font = bold
    cells.append(ws, [])
    names = [benchmarks.LABELS[k] for k in rep.benchmarks]
    header = ["Metric", "Strategy", *names, "Key"]
    cells.append(ws, header)
    top = ws.max_row
    style_header(ws, top, len(header))
    cols = [rep.metrics] + [b.metrics for b in rep.benchmarks.values()]
    js = [metrics_json(m) for m in cols]
    last = 1 + len(cols)
    for k in metrics.METRIC_NAMES:
        cells.append(ws, [_SUMMARY_LABELS[k], *(m[k] for m in js), k])
        fmt = _number_format(k)
        if fmt:
            for cell in ws[ws.max_row][1:last]:
                cell.number_format = fmt
    ws.auto_filter.ref = f"A{top}:{get_column_letter(len(header))}{ws.max_row}"
    ws.freeze_panes = f"B{top + 1}"
    att = rep.attribution
    if att:
        cells.append(ws, [])
        cells.append(ws, ["Attribution", "Fraction", "", "", "", "Key"])
        style_header(ws, ws.max_row, 6)
        for key, label in (("excess_over_held_mix", "Excess over the held mix"),
                           ("rebalancing_premium", "Rebalancing premium (fixed - held mix)"),
                           ("trigger_timing", "Trigger's timing (strategy - fixed mix)")):
            cells.append(ws, [label, att[key], "", "", "", key])
            ws[ws.max_row][1].number_format = "0.00%"
        for key, label in (("dividends", "Dividends received"),
                           ("commissions", "Commissions paid")):
            cells.append(ws, [label, *(att[key][n] for n in ("strategy", *rep.benchmarks)), key])
            for cell in ws[ws.max_row][1:last]:
                cell.number_format = "0.000%"
    for note in rep.notes:
        cells.append(ws, [])
        cells.append(ws, [f"Note: {note}"])
    cells.append(ws, [])
    cells.append(ws, ["Input", "Value"])
    style_header(ws, ws.max_row, 2)
    cfg = rep.cfg
    for name in cfg.__dataclass_fields__:
        v = getattr(cfg, name)
        cells.append(ws, [name, float(v) if isinstance(v, Decimal) else v])
    for name in ("cash", "start_weight", "slippage_bps"):
        cells.append(ws, [name, float(getattr(rep.setup, name))])
    ws.column_dimensions["A"].width = 40
    for i in range(2, len(header) + 1):
        ws.column_dimensions[get_column_letter(i)].width = 18

    s = rep.series
    fmt = "yyyy-mm-dd hh:mm:ss" if s.intraday else "yyyy-mm-dd"
    table_sheet(
        wb.create_sheet("Orders"),
        ("date", "side", "qty", "price", "notional", "commission", "kind"),
        ([bar_time(s, o.bar), o.side, float(o.qty), float(o.price), float(o.notional),
          float(o.commission), o.kind] for o in rep.strategy.orders),
        date_format=fmt, widths={"A": 20, "G": 20})

    d = daily(rep)
    cols = [d[c] for c in DAILY_COLUMNS]
    table_sheet(
        wb.create_sheet("Daily"), DAILY_COLUMNS,
        ([v.item() if c == "date" else _cell(c, v)
          for c, v in zip(DAILY_COLUMNS, row, strict=True)] for row in zip(*cols, strict=True)),
        date_format="yyyy-mm-dd", freeze_col="B", widths={"A": 12})
    wb.save(path)


def draw_price_panel(ax, times, prices, anchor_times, anchors, trades, *,
                     title: str = "Price, trades and anchor") -> None:
    """The price line, the anchor as a step line (None or NaN where unset) and each trade
    ``(time, side, price)`` as a green up (buy) or red down (sell) triangle: the top panel of
    the backtest plot and the position's picture in the admin."""
    ax.plot(times, [float(p) for p in prices], color="#3b5b92", lw=1.0, label="Price")
    ax.step(anchor_times, [np.nan if a is None else float(a) for a in anchors], where="post",
            color="#e08a00", lw=0.9, ls="--", alpha=0.9, label="Anchor")
    ms = 40 if len(trades) < 300 else 18
    for side, marker, color, label in (("BUY", "^", "#1a9850", "Buy"),
                                       ("SELL", "v", "#d73027", "Sell")):
        mine = [(t, float(p)) for t, s, p in trades if s == side]
        if mine:
            ax.scatter([t for t, _ in mine], [p for _, p in mine], marker=marker, s=ms,
                       color=color, edgecolor="white", linewidth=0.4, zorder=3,
                       label=f"{label} ({len(mine):,})")
    ax.set_ylabel("Price")
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(loc="upper left", fontsize=9, ncol=4, framealpha=0.85)


def write_position_plot(path, *, title: str, prices: list, anchors: list, fills: list,
                        zone=None) -> None:
    """One live position's picture (PNG to ``path``, a file name or a binary file): its
    ticker's price with its fills and its anchor over time, drawn as the backtest plot's top
    panel. ``prices`` are ``(time, price)``, ``anchors`` ``(time, anchor or None)`` (each
    holds until the next), ``fills`` ``(time, side, price)``; times are aware datetimes, drawn
    in ``zone``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2), layout="constrained")
    ends = [t for t, *_ in (*prices, *anchors, *fills)]
    if anchors and ends:  # the last anchor holds to the end of the picture
        anchors = [*anchors, (max(ends), anchors[-1][1])]
    draw_price_panel(ax, [t for t, _ in prices], [p for _, p in prices],
                     [t for t, _ in anchors], [a for _, a in anchors], fills, title=title)
    ax.grid(True, alpha=0.3)
    loc = mdates.AutoDateLocator(tz=zone)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=zone))
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def _number_format(key: str) -> str | None:
    if key in _PERCENT:
        return "0.00%"
    if key in ("sharpe", "sortino", "turnover"):
        return "0.00"
    if key in ("commissions", "dividends", "final_cash", "final_value"):
        return "#,##0.00"
    return None


_BENCH_COLORS = ("#7f7f7f", "#d62728", "#2ca02c")


def write_plot(rep: Report, path) -> None:
    """Three stacked panels: price with the buys, sells and the anchor; equity against the
    three benchmarks, with the attribution; the stock weight inside its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    s = rep.series
    n = len(s)
    times = s.times
    # A long intraday series is drawn from its daily closes; the orders keep their own times.
    idx = s.day_ends if n > 20000 else np.arange(n)
    x = times[idx]
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(13, 10), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1.4]},
        layout="constrained",
    )
    name = s.name or "the series"
    m = rep.metrics
    versus = ", ".join(f"{benchmarks.LABELS[k].lower()} {_pct(b.metrics['total_return'], 1)}"
                       for k, b in rep.benchmarks.items())
    fig.suptitle(
        f"Volatility balancing on {name}, {s.label(0)} to {s.label(n - 1)}\n"
        f"strategy {_pct(m['total_return'], 1)} vs {versus}",
        fontsize=12, fontweight="bold",
    )

    orders = rep.strategy.orders
    draw_price_panel(ax1, x, s.prices[idx], x, metrics.state_at(rep.strategy, idx)["anchor"],
                     [(times[o.bar], o.side, o.price) for o in orders])

    ax2.plot(x, rep.equity[idx], color="#1f77b4", lw=1.3,
             label=f"Strategy ({_money(m['final_value'])})")
    for (k, b), color in zip(rep.benchmarks.items(), _BENCH_COLORS, strict=False):
        ax2.plot(x, b.equity[idx], color=color, lw=1.0,
                 label=f"{benchmarks.LABELS[k]} ({_money(b.metrics['final_value'])})")
    ax2.axhline(float(rep.setup.cash), color="black", lw=0.6, ls=":")
    ax2.set_ylabel("Position value")
    ax2.set_title("Equity against the benchmarks (dividends credited)", loc="left", fontsize=11)
    ax2.legend(loc="upper left", fontsize=9, framealpha=0.85)
    a = rep.attribution
    if a:
        ax2.text(0.99, 0.03,
                 f"Excess over the held mix {_pct(a['excess_over_held_mix'], 1)} = "
                 f"rebalancing premium {_pct(a['rebalancing_premium'], 1)} + "
                 f"trigger's timing {_pct(a['trigger_timing'], 1)}",
                 transform=ax2.transAxes, ha="right", va="bottom", fontsize=9,
                 bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85,
                       "edgecolor": "#cccccc"})

    low, high = float(rep.cfg.guard_low), float(rep.cfg.guard_high)
    ax3.axhspan(low, high, color="#1a9850", alpha=0.10, label="Band")
    ax3.axhline(low, color="#1a9850", lw=0.8, ls="--")
    ax3.axhline(high, color="#1a9850", lw=0.8, ls="--")
    ax3.plot(x, rep.weight[idx], color="#6a3d9a", lw=0.9, label="Stock weight")
    ax3.set_ylim(0, 1)
    ax3.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax3.set_ylabel("Stock weight")
    ax3.set_title(f"Weight inside its band ({_pct(m['in_band_share'], 1)} of bars)",
                  loc="left", fontsize=11)
    ax3.legend(loc="upper left", fontsize=9, ncol=2, framealpha=0.85)

    for ax in (ax1, ax2, ax3):
        ax.grid(True, alpha=0.3)
    finish(fig, ax3, path)


def finish(fig, bottom, path) -> None:
    """Concise dates on the bottom axis, then the picture saved and closed."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    loc = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(loc)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    fig.savefig(path, dpi=110)
    plt.close(fig)
