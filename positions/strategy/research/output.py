"""A sweep's and a walk-forward's results for people and programs: the ranked table, the JSON
document, the rows the tables hold and the heatmap's plane. Pure (no Django). The files (CSV,
workbook, pictures) are written by :mod:`positions.strategy.export`."""

from __future__ import annotations

import math

import numpy as np

from positions.strategy import formats
from positions.strategy.backtest import portfolio as pf
from positions.strategy.backtest import report as bt_report
from positions.strategy.research import sweep

PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "in_band_share",
                   "excess_over_held_mix", "trigger_timing"}


def fmt_metric(name: str, x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return formats.NA
    if name in PERCENT_METRICS:
        return formats.pct(x)
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
            f"{sweep.bench_label(it, k).lower()} {spec.metric} "
            f"{fmt_metric(spec.metric, b[k][spec.metric])}" for k in b))
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
                   **{k: formats.plain(v) for k, v in params.items()},
                   "mode": "exact" if (exact or spec.exact) else "float",
                   "error": res.errors.get(c, "")}
            for m, name in enumerate(sweep.CELL_METRICS):
                row[name] = formats.rounded(vals[s, m])
            yield row


def columns(res: sweep.Result) -> list[str]:
    return ["cell", "series", *(a.name for a in res.spec.axes), "mode", "error",
            *sweep.CELL_METRICS]


def document(res: sweep.Result) -> dict:
    spec = res.spec
    best = res.best

    def entry(rank: int, c: int) -> dict:
        exact = res.exact_values.get(c)
        return {
            "rank": rank,
            "cell": c,
            "params": {k: formats.plain(v) for k, v in spec.values(c).items()},
            "score": formats.rounded(res.values[c][:, res.metric_index(spec.metric)].mean()),
            "score_exact": None if exact is None else formats.rounded(
                exact[:, res.metric_index(spec.metric)].mean()),
            "stability": formats.rounded(stability_value(res, c)),
            "series": {it.name: {m: formats.rounded(res.values[c][s, k])
                                 for k, m in enumerate(sweep.CELL_METRICS)}
                       for s, it in enumerate(res.items)},
            "series_exact": None if exact is None else {
                it.name: {m: formats.rounded(exact[s, k])
                          for k, m in enumerate(sweep.CELL_METRICS)}
                for s, it in enumerate(res.items)},
        }

    return {
        "grid": {a.name: [formats.plain(v) for v in a.values] for a in spec.axes},
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
            **{p: formats.plain(v) for p, v in w.params.items()},
            f"in_sample_{metric}": formats.rounded(w.in_sample.get(metric)),
            f"out_of_sample_{metric}": formats.rounded(w.out_of_sample.get(metric)),
            "in_sample_total_return": formats.rounded(w.in_sample.get("total_return")),
            "out_of_sample_total_return": formats.rounded(w.out_of_sample.get("total_return")),
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
             *(formats.setting(r[a.name]) if not isinstance(r[a.name], float)
               else f"{r[a.name]:g}"
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
                   f"{fmt_metric(metric, formats.rounded(res.oos_metrics.get(metric)))}.")
    out.append("")
    out.append("Stitched out of sample, against the benchmarks over the same span:")
    if res.portfolio:
        run = res.report
        out.append("Each holding on the cell chosen for each window (above), from the first bar "
                   "of its test window, carrying its state and the portfolio's cash over")
        out.extend(pf.table(run, run.setup.cash, run.rule, run.band).split("\n"))
        return "\n".join(out)
    lines = bt_report.table(res.report).split("\n")
    lines[1] = ("Strategy: the cell chosen for each window (above), from the first bar of its "
                "test window, carrying shares, cash, receivable and anchor over")
    out.extend(lines)
    return "\n".join(out)


def wf_document(res) -> dict:
    if res.portfolio:
        doc = pf.document(res.report, res.spec.setup.cash)
    else:
        doc = bt_report.document(res.report)
        doc.pop("buy_and_hold", None)
    return {
        "series": res.item.name,
        "train": str(res.train),
        "test": str(res.test),
        "metric": res.spec.metric,
        "grid": {a.name: [formats.plain(v) for v in a.values] for a in res.spec.axes},
        "windows": wf_rows(res),
        "note": getattr(res, "note", None),
        "out_of_sample": doc,
        "seconds": round(res.seconds, 3),
    }
