"""``manage.py sweep``: the backtest over a grid of strategy fields, on one or more series.

Examples::

    manage.py sweep --sample IBM --grid trigger_pct=0.01:0.10:0.01 --grid guard_low=0.1,0.2,0.3 \\
        --heatmap ibm-sweep.png --xlsx ibm-sweep.xlsx
    manage.py sweep --sample IBM --sample MSFT --csv AAPL.csv --grid trigger_pct=0.02,0.04 \\
        --grid guard_high=0.7,0.8 --metric cagr --top 5 --out-csv cells.csv --json

A thin command over :mod:`positions.strategy.research.sweep` (the computation) and
:mod:`positions.strategy.research.output` (the table), :mod:`positions.strategy.export` (the
files and picture). Cells run on every core (``--jobs``), or on the Dask cluster at
``DASK_SCHEDULER_ADDRESS`` when that is set.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from positions.research.management.commands.backtest import (
    _config,
    add_portfolio_arguments,
    add_strategy_arguments,
    emit,
    setup_from,
    ticker_history,
)
from positions.strategy import rules


class Command(BaseCommand):
    help = ("Backtest every cell of a grid of strategy fields on one or more series; rank the "
            "cells, draw a heatmap, write every metric to CSV, xlsx or JSON.")
    requires_system_checks: list = []

    def add_arguments(self, parser):
        src = parser.add_argument_group("data (one or more series)")
        src.add_argument("--sample", action="append", default=[], metavar="TICKER",
                         help="a bundled daily series: AAPL, IBM, MSFT, GOOG, FB (repeatable)")
        src.add_argument("--csv", action="append", default=[], metavar="FILE",
                         help="a CSV with a Date and a Close column (repeatable)")
        src.add_argument("--ticker", metavar="TICKER",
                         help="the ticker's raw daily bars, splits and dividends from the feed "
                              "(alone, with --start; cached, --refresh to fetch again)")
        add_portfolio_arguments(src)
        src.add_argument("--start", help="first date or time to include (ISO)")
        src.add_argument("--end", help="last date or time to include (ISO)")
        src.add_argument("--refresh", action="store_true",
                         help="with --ticker: fetch the history again, not from the cache")
        grid = parser.add_argument_group("grid")
        grid.add_argument("--grid", action="append", default=[], metavar="FIELD=VALUES",
                          help="a strategy field and its values: start:stop:step (inclusive) "
                               "or v1,v2,... (repeatable; the cells are every combination)")
        grid.add_argument("--metric", default="sharpe",
                          help="the ranking metric, averaged over the series (default sharpe)")
        grid.add_argument("--top", type=int, default=10,
                          help="how many ranked cells to show and re-run exact (default 10)")
        grid.add_argument("--exact", action="store_true",
                          help="run every cell on the exact Decimal path (default: floats, the "
                               "top cells re-run exact)")
        grid.add_argument("--jobs", type=int, default=0,
                          help="worker processes (default 0: every core; 1: this process)")
        add_strategy_arguments(parser, "strategy fields off the grid (fractions)")
        out = parser.add_argument_group("output")
        out.add_argument("--json", action="store_true",
                         help="print one JSON document (grid, benchmarks, best, top, every "
                              "cell and series) instead of the table")
        out.add_argument("--json-file", metavar="FILE", help="write that JSON document to FILE")
        out.add_argument("--out-csv", metavar="FILE",
                         help="every metric of every cell and series as CSV")
        out.add_argument("--xlsx", metavar="FILE", help="workbook: Top, Cells, Benchmarks")
        out.add_argument("--heatmap", metavar="FILE.png",
                         help="a heatmap of two grid parameters (--x, --y) for a metric")
        out.add_argument("--x", help="the heatmap's x parameter (default the first grid)")
        out.add_argument("--y", help="the heatmap's y parameter (default the second grid)")
        out.add_argument("--heatmap-metric", help="the heatmap's metric (default --metric)")
        out.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        gc.freeze()
        # a management command that keeps startup light: numpy, joblib when run
        from positions.strategy.backtest import engine
        from positions.strategy.research import output, sweep

        spec, items = spec_and_items(self, opts, spec_from(opts, opts["top"]))
        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        jobs = opts["jobs"]
        n_series = len(items)
        bar = None if opts["no_progress"] else _bar(sweep.total_runs(spec, items) // n_series,
                                                    self.stderr)
        done = 0

        def progress(runs: int) -> None:  # the bar counts cells and exact re-runs, and says so
            nonlocal done
            if bar is not None:
                done += runs
                bar.set_postfix_str(sweep.progress_text(sweep.progress_counts(
                    spec, n_series, done)), refresh=False)
                bar.update(runs // n_series)

        try:
            res = sweep.run(spec, items, jobs=jobs, dask_address=address, progress=progress)
        except (engine.SetupError, rules.RuleError, sweep.GridError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.close()
        write_outputs(self, res, opts, output)

    # The table or the JSON on stdout; files said on stdout (or stderr beside --json).


def spec_and_items(cmd, opts, spec):
    """The spec and the series: ``--ticker``'s history from the feed (its splits in the
    spec's setup, as ``backtest --splits`` has them), else :func:`load_items`."""
    # a management command that keeps startup light: numpy when run
    from positions.strategy.research import sweep

    if opts.get("portfolio"):
        if opts["sample"] or opts["csv"] or opts.get("ticker"):
            raise CommandError("--portfolio runs alone: its holdings are its series")
        # a portfolio's cells run exact (its holdings meet at exact cash moves): no re-runs
        return dataclasses.replace(spec, exact=True), [portfolio_item(cmd, opts)]
    if not opts.get("ticker"):
        return spec, load_items(opts, ohlc="limit" in spec.fills)
    if opts["sample"] or opts["csv"]:
        raise CommandError("--ticker runs alone: its splits apply to its series only")
    series, dividends, splits = ticker_history(cmd, opts)
    item = sweep.Item(opts["ticker"].strip().upper(),
                      series.between(opts["start"], opts["end"]), tuple(dividends))
    return dataclasses.replace(spec, setup=dataclasses.replace(spec.setup, splits=splits)), [item]


def portfolio_item(cmd, opts):
    """``--portfolio`` as ``backtest --portfolio`` reads it (research.requests: one parser),
    each holding loaded and cut to --start/--end: the sweep's one item."""
    # a management command that keeps startup light: numpy when run
    from positions.research import requests
    from positions.research.management.commands.backtest import portfolio_spec
    from positions.strategy.backtest import portfolio as pf
    from positions.strategy.research import sweep

    spec = portfolio_spec(opts)
    histories = {t: ticker_history(cmd, {**opts, "ticker": t}) for t in spec.tickers}
    try:
        holdings = requests.portfolio_holdings(spec, opts["start"], opts["end"], histories)
        return sweep.PortfolioItem.of("portfolio", holdings, spec.rebalance, spec.band)
    except requests.RequestError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    except pf.PortfolioError as exc:  # the backtest's code and sentence
        raise CommandError(f"{exc.code}: {exc.message}") from None


def load_items(opts, *, ohlc: bool = False) -> list:
    """The series of ``--sample`` and ``--csv`` (in that order), cut to --start/--end; a
    CSV's Open/High/Low too with ``ohlc`` (a cell rests limit orders: they read a bar's
    range)."""
    # a management command that keeps startup light: numpy when run
    from positions.strategy.backtest import data
    from positions.strategy.research import sweep

    if not opts["sample"] and not opts["csv"]:
        raise CommandError("give the data: --sample TICKER or --csv FILE (repeatable), or "
                           "--ticker TICKER")
    items = []
    try:
        for t in opts["sample"]:
            series, dividends = data.load_sample(t)
            items.append(sweep.Item(t.upper(), series.between(opts["start"], opts["end"]),
                                    tuple(dividends)))
        for path in opts["csv"]:
            series = data.load_csv(path, ohlc=ohlc)
            items.append(sweep.Item(os.path.basename(path),
                                    series.between(opts["start"], opts["end"]), ()))
    except data.DataError as exc:
        raise CommandError(str(exc)) from None
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        raise CommandError("a series is given twice")
    return items


def spec_from(opts, top: int):
    """The sweep's Spec from the strategy, run and grid options (one-line CommandErrors)."""
    # a management command that keeps startup light: numpy when run
    from positions.strategy.research import sweep

    cfg = _config(opts)
    setup = setup_from(opts)
    if top < 1:
        raise CommandError("--top: must be at least 1")
    try:
        axes = tuple(sweep.parse_axis(g) for g in opts["grid"])
        return sweep.Spec(cfg, axes, setup, metric=opts["metric"], exact=opts["exact"], top=top)
    except sweep.GridError as exc:
        raise CommandError(f"--grid: {exc}" if "metric" not in str(exc) else
                           f"--metric: {exc}") from None


def write_json(doc, path) -> None:
    # one string, one write: json.dump writes the encoder's chunks one by one (~2x the CPU)
    text = json.dumps(doc, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_outputs(cmd, res, opts, output) -> None:
    # a management command that keeps startup light: matplotlib, openpyxl when run
    from positions.strategy.export import charts, tables

    doc = {}

    def document():
        if not doc:
            doc.update(output.document(res))
        return doc

    def heatmap(path):
        try:
            charts.write_heatmap(res, path, opts["x"], opts["y"], opts["heatmap_metric"])
        except ValueError as exc:  # GridError: a bad --x/--y/--heatmap-metric
            raise CommandError(f"--heatmap: {exc}") from None

    emit(cmd, opts, [
        ("heatmap", opts["heatmap"], heatmap),
        ("cells", opts["out_csv"], lambda path: tables.write_sweep_csv(res, path)),
        ("workbook", opts["xlsx"], lambda path: tables.write_sweep_xlsx(res, path)),
        ("JSON", opts["json_file"], lambda path: write_json(document(), path)),
    ], document, lambda: output.top_table(res))


def _bar(total: int, stream):
    """Runs done (a cell or an exact re-run; the caller's postfix tells them apart), the total
    and the time left, on stderr."""
    # tqdm: loaded only when a progress bar is drawn
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the sweep's workers fork from this process
    return tqdm(total=total, unit="run", desc="Sweep", file=getattr(stream, "_out", stream)
                or sys.stderr, leave=True, dynamic_ncols=True, mininterval=0.2)
