"""The pictures a backtest, a sweep, a walk-forward and a live position draw (PNG, with
matplotlib). The figures come from the backtest's report and the research outputs, the text of
the titles and legends from :mod:`positions.strategy.formats`. matplotlib is imported only by
the functions that draw (it is heavy, and a run that asks for no picture never loads it).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from positions.strategy import formats
from positions.strategy.backtest import benchmarks, metrics
from positions.strategy.backtest import portfolio as pf
from positions.strategy.backtest import report as bt_report
from positions.strategy.research import output, sweep


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
    # matplotlib: a heavy optional library, loaded when a chart is drawn
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
    if ends and max(ends) - min(ends) < dt.timedelta(hours=1):  # one moment: an hour around it
        middle = min(ends) + (max(ends) - min(ends)) / 2
        ax.set_xlim(middle - dt.timedelta(minutes=30), middle + dt.timedelta(minutes=30))
    # dates and times in ``zone``, never a bare number: the offset (bottom right) names the
    # day and the zone, the label the zone's name
    loc = mdates.AutoDateLocator(tz=zone)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
        loc, tz=zone, formats=["%Y", "%Y-%m", "%Y-%m-%d", "%H:%M", "%H:%M", "%H:%M:%S"],
        zero_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%H:%M", "%H:%M"],
        offset_formats=["%Z", "%Y %Z", "%Y-%m %Z", "%Y-%m-%d %Z", "%Y-%m-%d %Z",
                        "%Y-%m-%d %H:%M %Z"]))
    ax.set_xlabel(f"Time ({getattr(zone, 'key', zone or 'UTC')})")
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


def write_allocation_plot(path, *, title: str, names: list[str], targets: list,
                          actuals: list) -> None:
    """A portfolio's allocation (PNG to ``path``): for each holding (``names``, the
    unallocated cash among them) its target weight beside its actual weight, as fractions of
    the portfolio's value; a target or an actual weight of None is left out (no target; no
    price known)."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.55 * max(len(names), 1)), layout="constrained")
    rows = np.arange(len(names))
    for values, offset, color, label in ((targets, -0.2, "#9ecae1", "Target"),
                                         (actuals, 0.2, "#3b5b92", "Actual")):
        ax.barh(rows + offset, [np.nan if v is None else float(v) for v in values], height=0.4,
                color=color, label=label)
    ax.set_yticks(rows, names)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, max([1.0] + [float(v) for v in (*targets, *actuals) if v is not None]))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title, loc="left", fontsize=11)
    ax.legend(loc="lower right", fontsize=9, framealpha=0.85)
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


BENCH_COLORS = ("#7f7f7f", "#d62728", "#2ca02c")


def write_backtest_plot(rep: bt_report.Report, path) -> None:
    """Three stacked panels: price with the buys, sells and the anchor; equity against the
    three benchmarks, with the attribution; the stock weight inside its band."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
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
    versus = ", ".join(f"{benchmarks.LABELS[k].lower()} {formats.pct(b.metrics['total_return'], 1)}"
                       for k, b in rep.benchmarks.items())
    fig.suptitle(
        f"Volatility balancing on {name}, {s.label(0)} to {s.label(n - 1)}\n"
        f"strategy {formats.pct(m['total_return'], 1)} vs {versus}",
        fontsize=12, fontweight="bold",
    )

    orders = rep.strategy.orders
    draw_price_panel(ax1, x, s.prices[idx], x, metrics.state_at(rep.strategy, idx)["anchor"],
                     [(times[o.bar], o.side, o.price) for o in orders])

    cmp = rep.comparison  # fill: limit: the same series under next_bar beside it
    ax2.plot(x, rep.equity[idx], color="#1f77b4", lw=1.3,
             label=f"Strategy{', resting limit orders' if cmp else ''} "
                   f"({formats.money(m['final_value'])})")
    if cmp:
        nb = cmp["next_bar"]
        ax2.plot(x, nb["equity"][idx], color="#1f77b4", lw=1.0, ls="--", alpha=0.8,
                 label=f"Strategy, next-bar market orders ({formats.money(nb['final_value'])})")
    for (k, b), color in zip(rep.benchmarks.items(), BENCH_COLORS, strict=False):
        ax2.plot(x, b.equity[idx], color=color, lw=1.0,
                 label=f"{benchmarks.LABELS[k]} ({formats.money(b.metrics['final_value'])})")
    ax2.axhline(float(rep.setup.cash), color="black", lw=0.6, ls=":")
    ax2.set_ylabel("Position value")
    ax2.set_title("Equity against the benchmarks (dividends credited)"
                  + ("; the same rules with next-bar market orders dashed" if cmp else ""),
                  loc="left", fontsize=11)
    ax2.legend(loc="upper left", fontsize=9, framealpha=0.85)
    a = rep.attribution
    if a:
        ax2.text(0.99, 0.03,
                 f"Excess over the held mix {formats.pct(a['excess_over_held_mix'], 1)} = "
                 f"rebalancing premium {formats.pct(a['rebalancing_premium'], 1)} + "
                 f"trigger's timing {formats.pct(a['trigger_timing'], 1)}",
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
    ax3.set_title(f"Weight inside its band ({formats.pct(m['in_band_share'], 1)} of bars)",
                  loc="left", fontsize=11)
    ax3.legend(loc="upper left", fontsize=9, ncol=2, framealpha=0.85)

    for ax in (ax1, ax2, ax3):
        ax.grid(True, alpha=0.3)
    _finish(fig, ax3, path)


def write_portfolio_plot(run: pf.PortfolioRun, path) -> None:
    """Two stacked panels of a portfolio backtest: its equity against its two benchmarks (held
    at weights, fixed mix) with the rebalances marked; each holding's contribution (its gain
    as a fraction of the starting cash) over time."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    s = run.series
    n = len(s)
    idx = s.day_ends if n > 20000 else np.arange(n)
    x = s.times[idx]
    cash = run.setup.cash
    f = pf.figures(run, cash)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 8), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]}, layout="constrained")
    versus = ", ".join(f"{pf.LABELS[k].lower()} {formats.pct(m['total_return'], 1)}"
                       for k, m in f["benchmarks"].items())
    names = ", ".join(f"{h.name} {formats.fraction(h.weight)}" for h in run.holdings)
    fig.suptitle(f"Portfolio of {names}, {s.label(0)} to {s.label(n - 1)}\n"
                 f"portfolio {formats.pct(f['portfolio']['total_return'], 1)} vs {versus}",
                 fontsize=12, fontweight="bold")
    ax1.plot(x, run.equity[idx], color="#1f77b4", lw=1.3,
             label=f"Portfolio ({formats.money(f['final_value'])})")
    for (k, eq), color in zip(run.benchmarks.items(), BENCH_COLORS, strict=False):
        ax1.plot(x, eq[idx], color=color, lw=1.0,
                 label=f"{pf.LABELS[k]} ({formats.money(eq[-1])})")
    for j, r in enumerate(run.rebalances):
        ax1.axvline(s.times[r.bar], color="#999999", lw=0.5, alpha=0.5,
                    label=(f"Rebalances ({len(run.rebalances):,})" if j == 0 else None))
    ax1.axhline(float(cash), color="black", lw=0.6, ls=":")
    ax1.set_ylabel("Portfolio value")
    ax1.set_title("Equity against the benchmarks (dividends credited)", loc="left", fontsize=11)
    ax1.legend(loc="upper left", fontsize=9, framealpha=0.85)
    for h, curve, hf in zip(run.holdings, run.contribution_curves(cash), f["holdings"],
                            strict=True):
        ax2.plot(x, curve[idx], lw=1.0,
                 label=f"{h.name} ({formats.pct(hf['contribution'], 1)})")
    ax2.axhline(0, color="black", lw=0.6, ls=":")
    ax2.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax2.set_ylabel("Gain / starting cash")
    ax2.set_title("Each holding's contribution", loc="left", fontsize=11)
    ax2.legend(loc="upper left", fontsize=9, ncol=min(4, len(run.holdings)), framealpha=0.85)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    _finish(fig, ax2, path)


def _finish(fig, bottom, path) -> None:
    """Concise dates on the bottom axis, then the picture saved and closed."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    loc = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(loc)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    fig.savefig(path, dpi=110)
    plt.close(fig)


_SHOWN_FIELDS = ("trigger_pct", "rebalance_ratio", "sizing", "guard_low", "guard_high",
                 "min_notional", "commission_rate")


def write_heatmap(res: sweep.Result, path, x: str | None = None, y: str | None = None,
                  metric: str | None = None) -> None:
    """A heatmap of ``metric`` over parameters ``x`` and ``y``; the other parameters at the
    best cell's values (the title says which); the best cell outlined."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
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
    plane, held = output.heatmap_grid(res, x, y, metric)
    ax_x = spec.axes[names.index(x)]
    ax_y = spec.axes[names.index(y)]
    shown = plane * 100 if metric in output.PERCENT_METRICS else plane
    fig, ax = plt.subplots(figsize=(max(9, 0.55 * len(ax_x.values) + 3),
                                    max(5, 0.45 * len(ax_y.values) + 2.5)),
                           layout="constrained")
    cmap = "viridis_r" if metric in sweep.LOWER_IS_BETTER else "viridis"
    masked = np.ma.masked_invalid(shown)
    im = ax.imshow(masked, origin="lower", aspect="auto", cmap=cmap)
    unit = " (%)" if metric in output.PERCENT_METRICS else ""
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
    fixed = ", ".join(f"{k}={formats.setting(getattr(spec.base, k))}" for k in _SHOWN_FIELDS
                      if k not in names)
    sub = ("other grid parameters at the best cell's values: "
           + ", ".join(f"{k}={v}" for k, v in held.items()) + "\n") if held else ""
    sub += f"fixed: {fixed}"
    if res.best is not None:
        sub += f"\nbest cell by {spec.metric} (outlined): {spec.label(res.best)}, " \
               f"stability {output.fmt_metric(spec.metric, output.stability_value(res, res.best))}"
    ax.set_title(f"{title}\n{sub}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)



def write_walkforward_plot(res, path) -> None:
    """Stitched out-of-sample equity against the benchmarks (window boundaries marked); the
    parameters chosen per window; the ranking metric in and out of sample per window."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
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
    m = res.oos_metrics
    ax.plot(x, rep.equity, color="#1f77b4", lw=1.4,
            label=f"Walk-forward, out of sample ({formats.pct(m['total_return'], 1)})")
    for (label, (eq, ret)), c in zip(res.oos_benchmarks.items(), BENCH_COLORS, strict=False):
        ax.plot(x, eq, color=c, lw=1.0, label=f"{label} ({formats.pct(ret, 1)})")
    full = res.item.series
    starts = [full.times[w.window.test[0]] for w in res.windows]
    for t in starts[1:]:
        for a in axes:
            a.axvline(t, color="black", lw=0.5, ls=":", alpha=0.6)
    ax.axhline(float(spec.setup.cash), color="black", lw=0.6, ls=":")
    ax.set_ylabel("Portfolio value" if res.portfolio else "Position value")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.85)
    ax.set_title(f"Stitched out-of-sample equity against the benchmarks (train {res.train}, "
                 f"test {res.test}; dotted lines: window starts)", loc="left", fontsize=11)
    fig.suptitle(f"Walk-forward on {res.item.name or 'the series'}, {s.label(0)} to "
                 f"{s.label(len(s) - 1)}: best of {spec.n_cells:,} cells by {spec.metric} in "
                 "each train window", fontsize=12, fontweight="bold")
    ends = [full.times[w.window.test[1] - 1] for w in res.windows]
    for i, axis in enumerate(spec.axes):
        a = axes[1 + i]
        vals = [formats.plain(w.params[axis.name]) for w in res.windows]
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
    _finish(fig, a, path)


def write_returns_plot(path, *, title: str, days: list, values: list, flows: list,
                       returns: list) -> None:
    """A live position's or portfolio's returns (PNG to ``path``, a file name or a binary
    file), docs/returns.md: the value at each session's close with the sessions that had a
    deposit (green up) or a withdrawal (red down) marked, above the time-weighted return since
    the start (so a deposit lifts the value, not the return). ``days`` are dates; ``returns``
    fractions or None (a period with no return)."""
    # matplotlib: a heavy optional library, loaded when a chart is drawn
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, layout="constrained",
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(days, [float(v) for v in values], color="#3b5b92", lw=1.2, label="Value")
    for sign, marker, color, label in ((1, "^", "#1a9850", "Deposits"),
                                       (-1, "v", "#d73027", "Withdrawals")):
        mine = [(d, float(v)) for d, v, f in zip(days, values, flows, strict=True)
                if f and (f > 0) == (sign > 0)]
        if mine:
            ax1.scatter([d for d, _ in mine], [v for _, v in mine], marker=marker, s=40,
                        color=color, edgecolor="white", linewidth=0.4, zorder=3,
                        label=f"{label} ({len(mine):,})")
    ax1.set_ylabel("Value")
    ax1.set_title(title, loc="left", fontsize=11)
    ax1.legend(loc="upper left", fontsize=9, ncol=3, framealpha=0.85)
    ax2.plot(days, [np.nan if r is None else float(r) * 100 for r in returns], color="#1a9850",
             lw=1.2, label="Time-weighted return since the start (%)")
    ax2.axhline(0, color="#7f7f7f", lw=0.8)
    ax2.set_ylabel("%")
    ax2.legend(loc="upper left", fontsize=9, framealpha=0.85)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    _finish(fig, ax2, path)
