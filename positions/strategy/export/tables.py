"""The tables a backtest, a sweep and a walk-forward write: CSV files and xlsx workbooks. Every
cell goes through :mod:`.cells` (a text a spreadsheet would run as a formula is escaped); the
figures come from the backtest's report and the research outputs, formatted by
:mod:`positions.strategy.formats`. openpyxl is imported only by the functions that write a
workbook (a run that asks for no workbook never loads it).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal

from positions.strategy import formats
from positions.strategy.backtest import benchmarks, metrics
from positions.strategy.backtest import portfolio as pf
from positions.strategy.backtest import report as bt_report
from positions.strategy.export import cells
from positions.strategy.research import output, sweep

# --------------------------------------------------------------------------------------------
# Shared: the daily series' cells, the workbook's table sheets
# --------------------------------------------------------------------------------------------


def daily_cell(name: str, v):
    """A value of the end-of-day series (report.daily) as a cell: the date as text, shares
    to 8 places, the rest to 6, a non-finite value empty."""
    if name == "date":
        return str(v)
    v = float(v)
    if not math.isfinite(v):
        return ""
    return round(v, 8 if name == "qty" else 6)


def daily_sheet(ws, rep: bt_report.Report) -> None:
    """The end-of-day series (report.DAILY_COLUMNS) as a table sheet, dates as dates."""
    d = bt_report.daily(rep)
    cols = bt_report.DAILY_COLUMNS
    table_sheet(
        ws, cols,
        ([v.item() if c == "date" else daily_cell(c, v)
          for c, v in zip(cols, row, strict=True)] for row in zip(*(d[c] for c in cols),
                                                                  strict=True)),
        date_format="yyyy-mm-dd", freeze_col="B", widths={"A": 12})


# --------------------------------------------------------------------------------------------
# Backtest
# --------------------------------------------------------------------------------------------


def write_equity_csv(rep: bt_report.Report, path) -> None:
    """The end-of-day series (report.DAILY_COLUMNS), one row a day."""
    d = bt_report.daily(rep)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cells.row(bt_report.DAILY_COLUMNS))
        cols = [d[c] for c in bt_report.DAILY_COLUMNS]
        for row in zip(*cols, strict=True):
            w.writerow(cells.row(daily_cell(c, v)
                                  for c, v in zip(bt_report.DAILY_COLUMNS, row, strict=True)))


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
    # openpyxl: a heavy optional library, loaded when a workbook is written
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


def write_backtest_xlsx(rep: bt_report.Report, path) -> None:
    """A workbook: Summary (metrics beside the benchmarks, the attribution, the inputs),
    Orders, Daily. Dates are dates; every header row is frozen; every table has a filter."""
    # openpyxl: a heavy optional library, loaded when a workbook is written
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    for line in bt_report.describe(rep):
        cells.append(ws, [line])
    ws["A1"].font = bold
    cells.append(ws, [])
    names = [benchmarks.LABELS[k] for k in rep.benchmarks]
    header = ["Metric", "Strategy", *names, "Key"]
    cells.append(ws, header)
    top = ws.max_row
    style_header(ws, top, len(header))
    cols = [rep.metrics] + [b.metrics for b in rep.benchmarks.values()]
    js = [bt_report.metrics_json(m) for m in cols]
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
    if rep.comparison:  # fill: limit: the same series under next_bar (report.fill_summary)
        cells.append(ws, [])
        cells.append(ws, ["Fill policy on the same series", "Total return", "Trades",
                          "Avg slippage to the trigger (bps)", "Final value", "Key"])
        style_header(ws, ws.max_row, 6)
        for key, label in (("limit", "Resting limit orders (limit)"),
                           ("next_bar", "Next-bar market orders (next_bar)")):
            v = rep.comparison[key]
            slip = v["avg_slippage_to_trigger_bps"]
            cells.append(ws, [label, float(v["total_return"]), v["trades"],
                              None if slip is None else round(slip, 4),
                              float(v["final_value"]), key])
            row = ws[ws.max_row]
            row[1].number_format, row[3].number_format = "0.00%", "0.0"
            row[4].number_format = "#,##0.00"
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
    cells.append(ws, ["fill", rep.setup.fill])
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

    daily_sheet(wb.create_sheet("Daily"), rep)
    wb.save(path)


def write_portfolio_xlsx(run: pf.PortfolioRun, path) -> None:
    """A portfolio backtest's workbook: Summary (the portfolio beside its two benchmarks, each
    holding, the inputs: the figures of :func:`portfolio.figures`), Rebalances (date, each
    holding's move, the unallocated cash after it, turnover), Daily (end-of-day values and
    contributions). Dates are dates; every header row is frozen; every table has a filter."""
    # openpyxl: a heavy optional library, loaded when a workbook is written
    from openpyxl import Workbook
    from openpyxl.styles import Font

    cash = run.setup.cash
    f = pf.figures(run, cash)
    s = run.series
    names = [h.name for h in run.holdings]
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    for line in pf.table(run, cash, run.rule, run.band).split("\n")[:2]:
        cells.append(ws, [line])
    ws["A1"].font = Font(bold=True)
    cells.append(ws, [])
    cols = [f["portfolio"], *f["benchmarks"].values()]
    header = ["Metric", "Portfolio", *(pf.LABELS[k] for k in f["benchmarks"]), "Key"]
    cells.append(ws, header)
    style_header(ws, ws.max_row, len(header))
    ws.freeze_panes = f"B{ws.max_row + 1}"
    for k in f["portfolio"]:
        cells.append(ws, [_SUMMARY_LABELS[k], *(m[k] for m in cols), k])
        fmt = _number_format(k)
        for c in ws[ws.max_row][1:1 + len(cols)]:
            c.number_format = fmt or "General"
    cells.append(ws, [])
    for label, key, fmt in (("Final value", "final_value", "#,##0.00"),
                            ("Unallocated cash at the end", "final_free_cash", "#,##0.00"),
                            ("Rebalances", "rebalances", None),
                            ("Cash moved by the rebalances", "rebalance_turnover", "#,##0.00"),
                            ("Rebalance turnover (per year)", "rebalance_turnover_per_year",
                             "0.00%")):
        v = f[key]
        cells.append(ws, [label, float(v) if isinstance(v, Decimal) else v, "", "", key])
        if fmt:
            ws[ws.max_row][1].number_format = fmt
    if f["note"]:
        cells.append(ws, [])
        cells.append(ws, [f"Note: {f['note']}"])
    cells.append(ws, [])
    head = ["Holding", "Weight", "Cash", "Moved in", "Final value", "Contribution", "Orders"]
    cells.append(ws, head)
    style_header(ws, ws.max_row, len(head))
    for h in f["holdings"]:
        cells.append(ws, [h["name"], float(h["weight"]), float(h["cash"]), float(h["moved_in"]),
                          float(h["final_value"]), h["contribution"], h["orders"]])
        row = ws[ws.max_row]
        for c, fmt in zip(row[1:6], ("0.00%", "#,##0.00", "#,##0.00", "#,##0.00", "0.00%"),
                          strict=True):
            c.number_format = fmt
    cells.append(ws, [])
    cells.append(ws, ["Input", "Value"])
    style_header(ws, ws.max_row, 2)
    cfg_rows = [(n, getattr(run.cfg, n)) for n in run.cfg.__dataclass_fields__]
    cfg_rows += [(n, getattr(run.setup, n)) for n in ("cash", "start_weight", "slippage_bps",
                                                      "fill")]
    cfg_rows += [("rebalance", run.rule), ("rebalance_band", run.band)]
    for n, v in cfg_rows:
        cells.append(ws, [n, float(v) if isinstance(v, Decimal) else v])
    ws.column_dimensions["A"].width = 40
    for col in "BCDEFG":
        ws.column_dimensions[col].width = 18

    fmt = "yyyy-mm-dd hh:mm:ss" if s.intraday else "yyyy-mm-dd"
    table_sheet(
        wb.create_sheet("Rebalances"),
        ("date", *(f"move {n}" for n in names), "unallocated cash", "turnover"),
        ([bar_time(s, r.bar), *(float(m) for m in r.result.moves),
          float(r.result.free_cash), float(r.result.turnover)] for r in run.rebalances),
        date_format=fmt, widths={"A": 20})

    portfolio_daily_sheet(wb.create_sheet("Daily"), run)
    wb.save(path)


def portfolio_daily_sheet(ws, run: pf.PortfolioRun) -> None:
    """A portfolio's end-of-day values: the portfolio, its benchmarks, the unallocated cash,
    each holding's value and contribution (a portfolio backtest's and walk-forward's Daily)."""
    s = run.series
    names = [h.name for h in run.holdings]
    curves = run.contribution_curves(run.setup.cash)
    series = [run.equity, *run.benchmarks.values(), run.free, *run.holding_equity, *curves]
    table_sheet(
        ws, ("date", "portfolio", *run.benchmarks, "unallocated_cash",
             *(f"value {n}" for n in names), *(f"contribution {n}" for n in names)),
        ([s.times[j].astype("datetime64[D]").item(),
          *(daily_cell("value", a[j]) for a in series)] for j in s.day_ends),
        date_format="yyyy-mm-dd", freeze_col="B", widths={"A": 12})


def _number_format(key: str) -> str | None:
    if key in _PERCENT:
        return "0.00%"
    if key in ("sharpe", "sortino", "turnover"):
        return "0.00"
    if key in ("commissions", "dividends", "final_cash", "final_value"):
        return "#,##0.00"
    return None


# --------------------------------------------------------------------------------------------
# Sweep
# --------------------------------------------------------------------------------------------


def write_sweep_csv(res: sweep.Result, path) -> None:
    """Every metric of every cell and series (float cells, then the exact re-runs)."""
    cols = output.columns(res)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(map(cells.record, output.cell_rows(res)))
        if not res.spec.exact:
            w.writerows(map(cells.record, output.cell_rows(res, exact=True)))


def write_sweep_xlsx(res: sweep.Result, path) -> None:
    """Top (the ranked cells, float and exact), Cells (every cell and series), Benchmarks."""
    # openpyxl: a heavy optional library, loaded when a workbook is written
    from openpyxl import Workbook

    spec = res.spec
    wb = Workbook()
    ws = wb.active
    ws.title = "Top"
    axes = [a.name for a in spec.axes]
    head = ["rank", "cell", *axes, spec.metric, f"{spec.metric}_exact", "stability"]
    rows = []
    for r, c in enumerate(res.ranking[:spec.top], 1):
        exact = res.exact_values.get(c)
        k = res.metric_index(spec.metric)
        rows.append([r, c, *(formats.plain(v) for v in spec.values(c).values()),
                     formats.rounded(res.values[c][:, k].mean()),
                     None if exact is None else formats.rounded(exact[:, k].mean()),
                     formats.rounded(output.stability_value(res, c))])
    table_sheet(ws, head, rows, widths={"A": 8})
    cols = output.columns(res)
    all_rows = list(output.cell_rows(res))
    if not spec.exact:
        all_rows += list(output.cell_rows(res, exact=True))
    table_sheet(wb.create_sheet("Cells"), cols, ([row[c] for c in cols] for row in all_rows))
    bench_cols = ["series", "benchmark", *metrics.METRIC_NAMES]
    table_sheet(
        wb.create_sheet("Benchmarks"), bench_cols,
        ([it.name, sweep.bench_label(it, k),
          *(formats.rounded(b[k][m]) for m in metrics.METRIC_NAMES)]
         for it, b in zip(res.items, res.benchmarks, strict=True) for k in b),
        widths={"B": 22})
    info = wb.create_sheet("About")
    for line in output.describe(res):
        info.append([line])
    info.append([])
    info.append(["field", "value"])
    for name in spec.base.__dataclass_fields__:
        v = getattr(spec.base, name)
        info.append([name, "grid" if name in axes else formats.plain(v)])
    wb.save(path)


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------


def write_walkforward_csv(res, path) -> None:
    """One row a window (research.output.wf_rows)."""
    rows = output.wf_rows(res)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(map(cells.record, rows))


def write_walkforward_xlsx(res, path) -> None:
    """Windows (parameters, in and out of sample), Daily (the stitched equity and the
    benchmarks)."""
    # openpyxl: a heavy optional library, loaded when a workbook is written
    from openpyxl import Workbook

    wb = Workbook()
    rows = output.wf_rows(res)
    cols = list(rows[0])
    dates = {"train_start", "train_end", "test_start", "test_end"}

    def cell(c, v):
        if c in dates and not res.item.series.intraday:
            return dt.date.fromisoformat(v)
        return v

    ws = wb.active
    ws.title = "Windows"
    table_sheet(ws, cols, ([cell(c, r[c]) for c in cols] for r in rows))
    for row in ws.iter_rows(min_row=2, min_col=2, max_col=5):
        for c in row:
            c.number_format = "yyyy-mm-dd"
    if res.portfolio:
        portfolio_daily_sheet(wb.create_sheet("Daily"), res.report)
    else:
        daily_sheet(wb.create_sheet("Daily"), res.report)
    wb.save(path)



# --------------------------------------------------------------------------------------------
# Returns of a live position or portfolio (docs/returns.md)
# --------------------------------------------------------------------------------------------

RETURNS_DAILY_HEADER = ("Session", "Value", "Flows", "Time-weighted return since the start")


def _number(v):
    return "" if v is None else float(v) if isinstance(v, Decimal) else v


def write_returns_xlsx(path, *, summary: list[tuple[str, object]], daily: list[tuple]) -> None:
    """A workbook: Summary (``(label, value)`` rows: the figures, a value None is empty) and
    Daily (``(session date, value, flows, time-weighted return)`` rows). Returns are written
    as percentages of the cell's fraction."""
    # openpyxl: a heavy optional library, loaded when a workbook is written
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    table_sheet(ws, ("Figure", "Value"), ([label, _number(v)] for label, v in summary),
                widths={"A": 34, "B": 22})
    for (label, value) in ws.iter_rows(min_row=2, max_col=2):
        if "return" in str(label.value).lower():
            value.number_format = "0.00%"
    ws = wb.create_sheet("Daily")
    table_sheet(ws, RETURNS_DAILY_HEADER,
                ([d, *(_number(v) for v in rest)] for d, *rest in daily),
                date_format="yyyy-mm-dd", freeze_col="B",
                widths={"A": 12, "B": 16, "C": 14, "D": 20})
    for (cell,) in ws.iter_rows(min_row=2, min_col=4, max_col=4):
        cell.number_format = "0.00%"
    wb.save(path)
