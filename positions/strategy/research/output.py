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
        w.writerows(cell_rows(res))
        if not res.spec.exact:
            w.writerows(cell_rows(res, exact=True))


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
    fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(ax_x.values) + 3),
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
    sub = ("other parameters at the best cell's values: "
           + ", ".join(f"{k}={v}" for k, v in held.items())) if held else \
        "no other parameter on the grid"
    if res.best is not None:
        sub += f"\nbest cell by {spec.metric} (outlined): {spec.label(res.best)}, " \
               f"stability {fmt_metric(spec.metric, stability_value(res, res.best))}"
    ax.set_title(f"{title}\n{sub}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
