"""A sweep's results for people and programs: the ranked table, the JSON document, a long CSV,
a workbook and the heatmap picture. Pure (no Django); matplotlib and openpyxl are imported only
by the functions that draw or write with them."""

from __future__ import annotations

import csv
import math
from decimal import Decimal

import numpy as np

from positions.strategy.backtest import benchmarks, metrics
from positions.strategy.backtest import report as bt_report
from positions.strategy.export import cells
from positions.strategy.research import sweep

PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "in_band_share",
                   "excess_over_held_mix", "trigger_timing"}


def _num(x):
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def _value(v):
    """A grid value for JSON: numbers as numbers, the rest as given."""
    if isinstance(v, Decimal):
        return float(v)
    return v


def fmt_metric(name: str, x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if name in PERCENT_METRICS:
        return f"{x * 100:,.2f} %"
    if name in ("buys", "sells"):
        return f"{x:,.0f}"
    return f"{x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.4f}"


def score_text(res: sweep.Result, cell: int, exact: bool = False) -> str:
    """The cell's ranking metric averaged over the series (as the metric reads, not signed)."""
    vals = res.exact_values.get(cell) if exact else res.values[cell]
    if vals is None:
        return "-"
    return fmt_metric(res.spec.metric, float(vals[:, res.metric_index(res.spec.metric)].mean()))


def stability_value(res: sweep.Result, cell: int) -> float:
    """Stability in the metric's own sign (the score is negated for lower-is-better)."""
    s = float(res.stability[cell])
    return -s if res.spec.metric in sweep.LOWER_IS_BETTER else s


def describe(res: sweep.Result) -> list[str]:
    spec = res.spec
    names = ", ".join(it.name or "series" for it in res.items)
    grid = "; ".join(f"{a.name} {', '.join(a.text(i) for i in range(len(a.values)))}"
                     if len(a.values) <= 6 else
                     f"{a.name} {a.text(0)} to {a.text(len(a.values) - 1)} ({len(a.values)})"
                     for a in spec.axes)
    mode = "exact (Decimal)" if spec.exact else "floats, the top cells re-run exact"
    lines = [
        f"Sweep of {spec.n_cells:,} cells over {len(res.items)} series ({names}): {grid}",
        f"Ranked by {spec.metric} (mean over the series); cells on {mode}; "
        f"{res.seconds:,.1f} s on {res.workers}",
    ]
    if res.errors:
        lines.append(f"{len(res.errors):,} cells have an invalid configuration and are left out, "
                     f"e.g. {spec.label(min(res.errors))}: {res.errors[min(res.errors)]}")
    return lines


def top_table(res: sweep.Result, n: int | None = None) -> str:
    """The ranked top-N: each cell's parameters, the metric (float and exact), stability and a
    few figures averaged over the series, then the benchmarks and the best cell's stability."""
    spec = res.spec
    n = spec.top if n is None else n
    cells = res.ranking[:n]
    axes = [a.name for a in spec.axes]
    shown = [m for m in ("total_return", "cagr", "max_drawdown", "excess_over_held_mix")
             if m != spec.metric]
    head = ["#", *axes, spec.metric, f"{spec.metric} exact", "stability", *shown]
    rows = []
    for r, c in enumerate(cells, 1):
        idx = spec.index(c)
        vals = res.exact_values.get(c, res.values[c])
        rows.append([str(r), *(a.text(i) for a, i in zip(spec.axes, idx, strict=True)),
                     score_text(res, c), score_text(res, c, exact=True) if not spec.exact
                     else score_text(res, c),
                     fmt_metric(spec.metric, stability_value(res, c)),
                     *(fmt_metric(m, float(vals[:, res.metric_index(m)].mean())) for m in shown)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    out = describe(res)
    out.append("")
    out.append("  ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(f"{c:>{w}}" for c, w in zip(r, widths, strict=True)) for r in rows)
    if not rows:
        out.append("No cell has a defined " + spec.metric + ".")
    out.append("")
    for it, b in zip(res.items, res.benchmarks, strict=True):
        out.append(f"Benchmarks on {it.name or 'the series'}: " + ", ".join(
            f"{benchmarks.LABELS[k].lower()} {spec.metric} "
            f"{fmt_metric(spec.metric, b[k][spec.metric])}" for k in benchmarks.NAMES))
    best = res.best
    if best is not None:
        stab = fmt_metric(spec.metric, stability_value(res, best))
        out.append(f"Best cell: {spec.label(best)}; stability {stab} "
                   f"(median {spec.metric} over the cell and its grid neighbours) against "
                   f"{score_text(res, best)} at the cell")
    return "\n".join(out)


def cell_rows(res: sweep.Result, exact: bool = False):
    """One row per cell and series: cell, series, the grid values, error, every metric."""
    spec = res.spec
    for c in range(spec.n_cells):
        vals = res.exact_values.get(c) if exact else res.values[c]
        if exact and vals is None:
            continue
        params = spec.values(c)
        for s, it in enumerate(res.items):
            row = {"cell": c, "series": it.name,
                   **{k: _value(v) for k, v in params.items()},
                   "mode": "exact" if (exact or spec.exact) else "float",
                   "error": res.errors.get(c, "")}
            for m, name in enumerate(sweep.CELL_METRICS):
                row[name] = _num(vals[s, m])
            yield row


def columns(res: sweep.Result) -> list[str]:
    return ["cell", "series", *(a.name for a in res.spec.axes), "mode", "error",
            *sweep.CELL_METRICS]


def write_csv(res: sweep.Result, path) -> None:
    """Every metric of every cell and series (float cells, then the exact re-runs)."""
    cols = columns(res)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(map(cells.record, cell_rows(res)))
        if not res.spec.exact:
            w.writerows(map(cells.record, cell_rows(res, exact=True)))


def document(res: sweep.Result) -> dict:
    spec = res.spec
    best = res.best

    def entry(rank: int, c: int) -> dict:
        exact = res.exact_values.get(c)
        return {
            "rank": rank,
            "cell": c,
            "params": {k: _value(v) for k, v in spec.values(c).items()},
            "score": _num(res.values[c][:, res.metric_index(spec.metric)].mean()),
            "score_exact": None if exact is None else _num(
                exact[:, res.metric_index(spec.metric)].mean()),
            "stability": _num(stability_value(res, c)),
            "series": {it.name: {m: _num(res.values[c][s, k])
                                 for k, m in enumerate(sweep.CELL_METRICS)}
                       for s, it in enumerate(res.items)},
            "series_exact": None if exact is None else {
                it.name: {m: _num(exact[s, k]) for k, m in enumerate(sweep.CELL_METRICS)}
                for s, it in enumerate(res.items)},
        }

    return {
        "grid": {a.name: [_value(v) for v in a.values] for a in spec.axes},
        "metric": spec.metric,
        "exact": spec.exact,
        "series": [it.name for it in res.items],
        "cells": spec.n_cells,
        "invalid_cells": {str(c): e for c, e in sorted(res.errors.items())},
        "benchmarks": {it.name: b for it, b in zip(res.items, res.benchmarks, strict=True)},
        "best": None if best is None else entry(1, best),
        "top": [entry(r, c) for r, c in enumerate(res.ranking[:spec.top], 1)],
        "results": [{k: v for k, v in row.items()} for row in cell_rows(res)],
        "seconds": round(res.seconds, 3),
        "workers": res.workers,
    }


def write_xlsx(res: sweep.Result, path) -> None:
    """Top (the ranked cells, float and exact), Cells (every cell and series), Benchmarks."""
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
        rows.append([r, c, *(_value(v) for v in spec.values(c).values()),
                     _num(res.values[c][:, k].mean()),
                     None if exact is None else _num(exact[:, k].mean()),
                     _num(stability_value(res, c))])
    bt_report.table_sheet(ws, head, rows, widths={"A": 8})
    cols = columns(res)
    all_rows = list(cell_rows(res))
    if not spec.exact:
        all_rows += list(cell_rows(res, exact=True))
    bt_report.table_sheet(wb.create_sheet("Cells"), cols,
                          ([row[c] for c in cols] for row in all_rows))
    bench_cols = ["series", "benchmark", *metrics.METRIC_NAMES]
    bt_report.table_sheet(
        wb.create_sheet("Benchmarks"), bench_cols,
        ([it.name, benchmarks.LABELS[k], *(_num(b[k][m]) for m in metrics.METRIC_NAMES)]
         for it, b in zip(res.items, res.benchmarks, strict=True) for k in benchmarks.NAMES),
        widths={"B": 22})
    info = wb.create_sheet("About")
    for line in describe(res):
        info.append([line])
    info.append([])
    info.append(["field", "value"])
    for name in spec.base.__dataclass_fields__:
        v = getattr(spec.base, name)
        info.append([name, "grid" if name in axes else _value(v)])
    wb.save(path)


def heatmap_grid(res: sweep.Result, x: str, y: str, metric: str) -> tuple[np.ndarray, dict]:
    """The metric (mean over the series) on the x-y plane through the best cell: a
    [len(y), len(x)] array and the other parameters' values held there."""
    spec = res.spec
    names = [a.name for a in spec.axes]
    for p in (x, y):
        if p not in names:
            raise sweep.GridError(f"{p!r} is not a parameter of the grid ({', '.join(names)})")
    if x == y:
        raise sweep.GridError("the heatmap needs two different parameters")
    if metric not in sweep.CELL_METRICS:
        raise sweep.GridError(f"{metric!r} is not a metric")
    best = res.best if res.best is not None else 0
    at = spec.index(best)
    mean = res.mean(metric).reshape(spec.shape)
    sel = [at[i] if n not in (x, y) else slice(None) for i, n in enumerate(names)]
    plane = mean[tuple(sel)]
    if names.index(x) < names.index(y):
        plane = plane.T  # rows y, columns x
    held = {n: spec.axes[i].text(at[i]) for i, n in enumerate(names) if n not in (x, y)}
    return plane, held


_SHOWN_FIELDS = ("trigger_pct", "rebalance_ratio", "sizing", "guard_low", "guard_high",
                 "min_notional", "commission_rate")


def write_heatmap(res: sweep.Result, path, x: str | None = None, y: str | None = None,
                  metric: str | None = None) -> None:
    """A heatmap of ``metric`` over parameters ``x`` and ``y``; the other parameters at the
    best cell's values (the title says which); the best cell outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    spec = res.spec
    names = [a.name for a in spec.axes]
    if len(names) < 2:
        raise sweep.GridError("a heatmap needs a grid over two parameters")
    x = x or names[0]
    y = y or next(n for n in names if n != x)
    metric = metric or spec.metric
    plane, held = heatmap_grid(res, x, y, metric)
    ax_x = spec.axes[names.index(x)]
    ax_y = spec.axes[names.index(y)]
    shown = plane * 100 if metric in PERCENT_METRICS else plane
    fig, ax = plt.subplots(figsize=(max(9, 0.55 * len(ax_x.values) + 3),
                                    max(5, 0.45 * len(ax_y.values) + 2.5)),
                           layout="constrained")
    cmap = "viridis_r" if metric in sweep.LOWER_IS_BETTER else "viridis"
    masked = np.ma.masked_invalid(shown)
    im = ax.imshow(masked, origin="lower", aspect="auto", cmap=cmap)
    unit = " (%)" if metric in PERCENT_METRICS else ""
    fig.colorbar(im, ax=ax, label=f"{metric}{unit}, mean over {len(res.items)} series"
                 if len(res.items) > 1 else f"{metric}{unit}")
    ax.set_xticks(range(len(ax_x.values)), [ax_x.text(i) for i in range(len(ax_x.values))],
                  rotation=45 if len(ax_x.values) > 8 else 0)
    ax.set_yticks(range(len(ax_y.values)), [ax_y.text(i) for i in range(len(ax_y.values))])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if plane.size <= 400:
        finite = shown[np.isfinite(shown)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for (i, j), v in np.ndenumerate(shown):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}", ha="center",
                        va="center", fontsize=7,
                        color="white" if (v < mid) != (cmap == "viridis_r") else "black")
    if res.best is not None:
        at = spec.index(res.best)
        bx, by = at[names.index(x)], at[names.index(y)]
        ax.add_patch(Rectangle((bx - 0.5, by - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.2))
    series = ", ".join(it.name or "series" for it in res.items)
    title = f"{metric} by {x} and {y} on {series}"
    fixed = ", ".join(f"{k}={sweep._text(getattr(spec.base, k))}" for k in _SHOWN_FIELDS
                      if k not in names)
    sub = ("other grid parameters at the best cell's values: "
           + ", ".join(f"{k}={v}" for k, v in held.items()) + "\n") if held else ""
    sub += f"fixed: {fixed}"
    if res.best is not None:
        sub += f"\nbest cell by {spec.metric} (outlined): {spec.label(res.best)}, " \
               f"stability {fmt_metric(spec.metric, stability_value(res, res.best))}"
    ax.set_title(f"{title}\n{sub}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Walk-forward
# --------------------------------------------------------------------------------------------


def wf_rows(res) -> list[dict]:
    """One row per window: its train and test spans, the parameters chosen, the ranking
    metric in sample and out of sample, the out-of-sample return."""
    s = res.item.series
    metric = res.spec.metric
    rows = []
    for k, w in enumerate(res.windows, 1):
        (a, b), (c, d) = w.window.train, w.window.test
        rows.append({
            "window": k,
            "train_start": s.label(a), "train_end": s.label(b - 1),
            "test_start": s.label(c), "test_end": s.label(d - 1),
            **{p: _value(v) for p, v in w.params.items()},
            f"in_sample_{metric}": _num(w.in_sample.get(metric)),
            f"out_of_sample_{metric}": _num(w.out_of_sample.get(metric)),
            "in_sample_total_return": _num(w.in_sample.get("total_return")),
            "out_of_sample_total_return": _num(w.out_of_sample.get("total_return")),
        })
    return rows


def wf_table(res) -> str:
    spec = res.spec
    rows = wf_rows(res)
    metric = spec.metric
    head = ["#", "train", "test", *(a.name for a in spec.axes), f"{metric} in",
            f"{metric} out", "return in", "return out"]
    body = [[str(r["window"]), f"{r['train_start']}..{r['train_end']}",
             f"{r['test_start']}..{r['test_end']}",
             *(sweep._text(r[a.name]) if not isinstance(r[a.name], float) else f"{r[a.name]:g}"
               for a in spec.axes),
             fmt_metric(metric, r[f"in_sample_{metric}"]),
             fmt_metric(metric, r[f"out_of_sample_{metric}"]),
             fmt_metric("total_return", r["in_sample_total_return"]),
             fmt_metric("total_return", r["out_of_sample_total_return"])] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    n_cells = spec.n_cells
    out = [
        f"Walk-forward on {res.item.name or 'the series'}: {len(rows)} windows of train "
        f"{res.train} then test {res.test}; each picks the best of {n_cells:,} cells by "
        f"{metric} in sample ({res.seconds:,.1f} s)",
        *([res.note] if getattr(res, "note", None) else []),
        "",
        "  ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(f"{c:>{w}}" for c, w in zip(b, widths, strict=True)) for b in body),
        "",
    ]
    ins = [r[f"in_sample_{metric}"] for r in rows if r[f"in_sample_{metric}"] is not None]
    if ins:
        out.append(f"In sample, the chosen cells' mean {metric} was "
                   f"{fmt_metric(metric, sum(ins) / len(ins))}; out of sample, stitched, "
                   f"{fmt_metric(metric, _num(res.report.metrics.get(metric)))}.")
    out.append("")
    out.append("Stitched out of sample, against the benchmarks over the same span:")
    lines = bt_report.table(res.report).split("\n")
    lines[1] = ("Strategy: the cell chosen for each window (above), from the first bar of its "
                "test window, carrying shares, cash, receivable and anchor over")
    out.extend(lines)
    return "\n".join(out)


def wf_document(res) -> dict:
    doc = bt_report.document(res.report)
    doc.pop("buy_and_hold", None)
    return {
        "series": res.item.name,
        "train": str(res.train),
        "test": str(res.test),
        "metric": res.spec.metric,
        "grid": {a.name: [_value(v) for v in a.values] for a in res.spec.axes},
        "windows": wf_rows(res),
        "note": getattr(res, "note", None),
        "out_of_sample": doc,
        "seconds": round(res.seconds, 3),
    }


def wf_write_csv(res, path) -> None:
    rows = wf_rows(res)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(map(cells.record, rows))


def wf_write_xlsx(res, path) -> None:
    """Windows (parameters, in and out of sample), Daily (the stitched equity and the
    benchmarks)."""
    import datetime as dt

    from openpyxl import Workbook

    wb = Workbook()
    rows = wf_rows(res)
    cols = list(rows[0])
    dates = {"train_start", "train_end", "test_start", "test_end"}

    def cell(c, v):
        if c in dates and not res.item.series.intraday:
            return dt.date.fromisoformat(v)
        return v

    ws = wb.active
    ws.title = "Windows"
    bt_report.table_sheet(ws, cols, ([cell(c, r[c]) for c in cols] for r in rows))
    for row in ws.iter_rows(min_row=2, min_col=2, max_col=5):
        for c in row:
            c.number_format = "yyyy-mm-dd"
    d = bt_report.daily(res.report)
    dcols = bt_report.DAILY_COLUMNS
    bt_report.table_sheet(
        wb.create_sheet("Daily"), dcols,
        ([v.item() if c == "date" else bt_report._cell(c, v)
          for c, v in zip(dcols, row, strict=True)] for row in zip(*(d[c] for c in dcols),
                                                                   strict=True)),
        date_format="yyyy-mm-dd", freeze_col="B", widths={"A": 12})
    wb.save(path)


def wf_write_plot(res, path) -> None:
    """Stitched out-of-sample equity against the benchmarks (window boundaries marked); the
    parameters chosen per window; the ranking metric in and out of sample per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rep = res.report
    s = rep.series
    spec = res.spec
    n_par = len(spec.axes)
    fig, axes = plt.subplots(2 + n_par, 1, figsize=(13, 6 + 1.6 * n_par + 2), sharex=True,
                             gridspec_kw={"height_ratios": [3.2] + [1] * n_par + [1.6]},
                             layout="constrained")
    ax = axes[0]
    x = s.times
    m = rep.metrics
    ax.plot(x, rep.equity, color="#1f77b4", lw=1.4,
            label=f"Walk-forward, out of sample ({bt_report._pct(m['total_return'], 1)})")
    colors = ("#7f7f7f", "#d62728", "#2ca02c")
    for (k, b), c in zip(rep.benchmarks.items(), colors, strict=False):
        ax.plot(x, b.equity, color=c, lw=1.0,
                label=f"{benchmarks.LABELS[k]} ({bt_report._pct(b.metrics['total_return'], 1)})")
    full = res.item.series
    starts = [full.times[w.window.test[0]] for w in res.windows]
    for t in starts[1:]:
        for a in axes:
            a.axvline(t, color="black", lw=0.5, ls=":", alpha=0.6)
    ax.axhline(float(spec.setup.cash), color="black", lw=0.6, ls=":")
    ax.set_ylabel("Position value")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.85)
    ax.set_title(f"Stitched out-of-sample equity against the benchmarks (train {res.train}, "
                 f"test {res.test}; dotted lines: window starts)", loc="left", fontsize=11)
    fig.suptitle(f"Walk-forward on {res.item.name or 'the series'}, {s.label(0)} to "
                 f"{s.label(len(s) - 1)}: best of {spec.n_cells:,} cells by {spec.metric} in "
                 "each train window", fontsize=12, fontweight="bold")
    ends = [full.times[w.window.test[1] - 1] for w in res.windows]
    for i, axis in enumerate(spec.axes):
        a = axes[1 + i]
        vals = [_value(w.params[axis.name]) for w in res.windows]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
        ys = vals if numeric else [axis.values.index(w.params[axis.name]) for w in res.windows]
        a.step(starts + [ends[-1]], ys + [ys[-1]], where="post", color="#6a3d9a", lw=1.5)
        a.plot(starts, ys, "o", color="#6a3d9a", ms=4)
        a.set_ylabel(axis.name, fontsize=9)
        if not numeric:
            a.set_yticks(range(len(axis.values)), [axis.text(j) for j in
                                                    range(len(axis.values))])
        a.grid(True, alpha=0.3)
    axes[1].set_title("Parameters chosen per window", loc="left", fontsize=11)
    a = axes[-1]
    mid = [t0 + (t1 - t0) / 2 for t0, t1 in zip(starts, ends, strict=True)]
    width = [(t1 - t0) * 0.4 for t0, t1 in zip(starts, ends, strict=True)]
    ins = [np.nan if w.in_sample.get(spec.metric) is None else w.in_sample[spec.metric]
           for w in res.windows]
    outs = [np.nan if w.out_of_sample.get(spec.metric) is None else
            w.out_of_sample[spec.metric] for w in res.windows]
    a.bar([t - w / 2 for t, w in zip(mid, width, strict=True)], ins, width=width,
          color="#bbbbbb", label=f"{spec.metric} in sample (train)", align="center")
    a.bar([t + w / 2 for t, w in zip(mid, width, strict=True)], outs, width=width,
          color="#1f77b4", label=f"{spec.metric} out of sample (test)", align="center")
    a.axhline(0, color="black", lw=0.6)
    a.set_title(f"{spec.metric} per window, in and out of sample", loc="left", fontsize=11)
    a.legend(loc="upper left", fontsize=9, ncol=2, framealpha=0.85)
    a.grid(True, alpha=0.3)
    bt_report.finish(fig, a, path)
