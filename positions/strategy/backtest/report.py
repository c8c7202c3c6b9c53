"""A backtest and its report: the JSON document, a terminal table, a PNG, a workbook, a CSV.

Pure (no Django). matplotlib and openpyxl are imported only by the functions that draw or
write with them, so a run that does not ask for a picture or a workbook never loads them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from positions.strategy import rules
from positions.strategy.backtest import engine, metrics

ORDER_KEYS = ("date", "side", "qty", "price", "commission", "kind")


@dataclass
class Report:
    series: object  # data.Series
    cfg: rules.Config
    setup: engine.Setup
    dividends: list
    strategy: engine.Run
    hold: engine.Run
    equity: np.ndarray
    weight: np.ndarray
    hold_equity: np.ndarray
    hold_weight: np.ndarray
    metrics: dict
    hold_metrics: dict

    @property
    def dividends_in_range(self) -> int:
        """The dividends that go ex inside the series (after its first bar): those the run
        credits, not every one loaded."""
        ex, _pay = engine.schedule(self.series.days, self.dividends)
        return sum(len(found) for found in ex.values())


def backtest(series, cfg: rules.Config, setup: engine.Setup = engine.Setup(),
             dividends: Iterable = (), *, exact: bool = True,
             progress: Callable[[int], None] | None = None) -> Report:
    """Run the strategy and buy-and-hold over ``series`` and measure both."""
    dividends = list(dividends)
    try:
        strat = engine.run(series, cfg, setup, dividends, exact=exact, progress=progress)
        hold = engine.run(series, cfg, setup, dividends, exact=exact, hold=True)
    except InvalidOperation:  # a quantity or amount past 28 significant digits
        raise engine.SetupError({"cash": "The cash and prices are too large for exact decimal "
                                         "arithmetic (28 significant digits); scale them "
                                         "down."}) from None
    equity, weight = metrics.equity_and_weight(series.prices, strat)
    hold_equity, hold_weight = metrics.equity_and_weight(series.prices, hold)
    return Report(
        series, cfg, setup, dividends, strat, hold, equity, weight, hold_equity,
        hold_weight,
        metrics.summary(series, strat, cfg, setup.cash, equity=equity, weight=weight),
        metrics.summary(series, hold, cfg, setup.cash, equity=hold_equity, weight=hold_weight),
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


def _metrics_json(m: dict) -> dict:
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


def document(rep: Report) -> dict:
    """The JSON document of the issue: metrics, buy_and_hold, orders."""
    label = rep.series.label
    return {
        "metrics": _metrics_json(rep.metrics),
        "buy_and_hold": _metrics_json(rep.hold_metrics),
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


def table(rep: Report) -> str:
    """The metrics beside buy-and-hold, for a terminal."""
    a, b = rep.metrics, rep.hold_metrics
    rows = [
        ("Total return", _pct(a["total_return"]), _pct(b["total_return"])),
        ("CAGR", _pct(a["cagr"]), _pct(b["cagr"])),
        ("Volatility (annual)", _pct(a["volatility"]), _pct(b["volatility"])),
        ("Sharpe", _ratio(a["sharpe"]), _ratio(b["sharpe"])),
        ("Sortino", _ratio(a["sortino"]), _ratio(b["sortino"])),
        ("Max drawdown", _pct(a["max_drawdown"]), _pct(b["max_drawdown"])),
        ("Max drawdown duration", _days(a["max_drawdown_days"]), _days(b["max_drawdown_days"])),
        ("Buys / sells", f"{a['buys']:,} / {a['sells']:,}", f"{b['buys']:,} / {b['sells']:,}"),
        ("Commissions", _money(a["commissions"]), _money(b["commissions"])),
        ("Dividends (net, paid)", _money(a["dividends"]), _money(b["dividends"])),
        ("Turnover (per year)", _ratio(a["turnover"]) + "x" if a["turnover"] is not None
         else "n/a", _ratio(b["turnover"]) + "x" if b["turnover"] is not None else "n/a"),
        ("Bars inside the band", _pct(a["in_band_share"], 1), _pct(b["in_band_share"], 1)),
        ("Final shares", f"{float(a['final_qty']):,.4f}", f"{float(b['final_qty']):,.4f}"),
        ("Final cash", _money(a["final_cash"]), _money(b["final_cash"])),
        ("Final value", _money(a["final_value"]), _money(b["final_value"])),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len("Strategy"), *(len(r[1]) for r in rows))
    w2 = max(len("Buy & hold"), *(len(r[2]) for r in rows))
    out = describe(rep)
    out.append("")
    out.append(f"{'':<{w0}}  {'Strategy':>{w1}}  {'Buy & hold':>{w2}}")
    out.append(f"{'-' * w0}  {'-' * w1}  {'-' * w2}")
    out.extend(f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>{w2}}" for r in rows)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Daily series (CSV, workbook, plot)
# --------------------------------------------------------------------------------------------

DAILY_COLUMNS = ("date", "close", "equity", "buy_and_hold", "weight", "qty", "cash",
                 "receivable", "anchor", "drawdown")


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
        "buy_and_hold": rep.hold_equity[idx],
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
        w.writerow(DAILY_COLUMNS)
        cols = [d[c] for c in DAILY_COLUMNS]
        for row in zip(*cols, strict=True):
            w.writerow([_cell(c, v) for c, v in zip(DAILY_COLUMNS, row, strict=True)])


_SUMMARY_LABELS = {
    "total_return": "Total return", "cagr": "CAGR", "volatility": "Volatility (annual)",
    "sharpe": "Sharpe", "sortino": "Sortino", "max_drawdown": "Max drawdown",
    "max_drawdown_days": "Max drawdown duration (days)", "buys": "Buys", "sells": "Sells",
    "commissions": "Commissions", "dividends": "Dividends (net, paid)",
    "turnover": "Turnover (per year)", "in_band_share": "Bars inside the band",
    "final_qty": "Final shares", "final_cash": "Final cash", "final_value": "Final value",
}
_PERCENT = {"total_return", "cagr", "volatility", "max_drawdown", "in_band_share"}


def write_xlsx(rep: Report, path) -> None:
    """A workbook: Summary (metrics beside buy-and-hold, the inputs), Orders, Daily."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    for line in describe(rep):
        ws.append([line])
    ws["A1"].font = bold
    ws.append([])
    ws.append(["Metric", "Strategy", "Buy & hold", "Key"])
    for cell in ws[ws.max_row]:
        cell.font = bold
    a = _metrics_json(rep.metrics)
    b = _metrics_json(rep.hold_metrics)
    for k in metrics.METRIC_NAMES:
        ws.append([_SUMMARY_LABELS[k], a[k], b[k], k])
        if k in _PERCENT:
            for cell in ws[ws.max_row][1:3]:
                cell.number_format = "0.00%"
        elif k in ("sharpe", "sortino", "turnover"):
            for cell in ws[ws.max_row][1:3]:
                cell.number_format = "0.00"
        elif k in ("commissions", "dividends", "final_cash", "final_value"):
            for cell in ws[ws.max_row][1:3]:
                cell.number_format = "#,##0.00"
    ws.append([])
    ws.append(["Input", "Value"])
    ws[ws.max_row][0].font = bold
    ws[ws.max_row][1].font = bold
    cfg = rep.cfg
    for name in cfg.__dataclass_fields__:
        v = getattr(cfg, name)
        ws.append([name, float(v) if isinstance(v, Decimal) else v])
    for name in ("cash", "start_weight", "slippage_bps"):
        ws.append([name, float(getattr(rep.setup, name))])
    ws.column_dimensions["A"].width = 32
    for col in "BCD":
        ws.column_dimensions[col].width = 18

    wo = wb.create_sheet("Orders")
    wo.append(["date", "side", "qty", "price", "notional", "commission", "kind"])
    for cell in wo[1]:
        cell.font = bold
    label = rep.series.label
    for o in rep.strategy.orders:
        wo.append([label(o.bar), o.side, float(o.qty), float(o.price), float(o.notional),
                   float(o.commission), o.kind])
    wo.column_dimensions["A"].width = 22
    wo.column_dimensions["G"].width = 20

    wd = wb.create_sheet("Daily")
    wd.append(list(DAILY_COLUMNS))
    for cell in wd[1]:
        cell.font = bold
    d = daily(rep)
    cols = [d[c] for c in DAILY_COLUMNS]
    for row in zip(*cols, strict=True):
        wd.append([_cell(c, v) if c != "date" else str(v)
                   for c, v in zip(DAILY_COLUMNS, row, strict=True)])
    wd.column_dimensions["A"].width = 12
    wd.freeze_panes = "B2"
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


def write_plot(rep: Report, path) -> None:
    """Three stacked panels: price with the buys, sells and the anchor; equity against
    buy-and-hold; the stock weight inside its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
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
    m, h = rep.metrics, rep.hold_metrics
    fig.suptitle(
        f"Volatility balancing on {name}, {s.label(0)} to {s.label(n - 1)}: "
        f"strategy {_pct(m['total_return'], 1)} vs buy-and-hold {_pct(h['total_return'], 1)}",
        fontsize=13, fontweight="bold",
    )

    orders = rep.strategy.orders
    draw_price_panel(ax1, x, s.prices[idx], x, metrics.state_at(rep.strategy, idx)["anchor"],
                     [(times[o.bar], o.side, o.price) for o in orders])

    ax2.plot(x, rep.equity[idx], color="#1f77b4", lw=1.3,
             label=f"Strategy ({_money(m['final_value'])})")
    ax2.plot(x, rep.hold_equity[idx], color="#7f7f7f", lw=1.1,
             label=f"Buy and hold ({_money(h['final_value'])})")
    ax2.axhline(float(rep.setup.cash), color="black", lw=0.6, ls=":")
    ax2.set_ylabel("Position value")
    ax2.set_title("Equity against buy-and-hold (dividends credited)", loc="left", fontsize=11)
    ax2.legend(loc="best", fontsize=9, framealpha=0.85)

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
    loc = mdates.AutoDateLocator()
    ax3.xaxis.set_major_locator(loc)
    ax3.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    fig.savefig(path, dpi=110)
    plt.close(fig)
