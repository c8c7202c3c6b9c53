"""``manage.py backtest``: the strategy over a price history, against three benchmarks.

Examples::

    manage.py backtest --sample IBM --plot ibm.png
    manage.py backtest --csv AAPL.csv --start 2015-01-01 --trigger-pct 0.05 --json
    manage.py backtest --csv minutes.csv --dividends divs.csv --xlsx report.xlsx
    manage.py backtest --ticker AAPL --start 2015-01-01 --end 2020-12-31
    manage.py backtest --portfolio IBM=0.4,MSFT=0.4 --rebalance quarterly --cash 100000

Every strategy field is an option named like the field with dashes (``--trigger-pct 0.05``,
``--sizing original``, ``--fractional false``, ``--qty-step none``); ratios are fractions.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from positions.marketdata.port import FeedError
from positions.services import ticker_normalize
from positions.strategy import rules
from volbal import clock
from volbal.errors import DomainError
from volbal.options import day_range

_PROGRESS_MIN_BARS = 100_000

_HELP = {
    "trigger_pct": "trigger tau as a fraction (default 0.03)",
    "rebalance_ratio": "trigger size ratio r (default 1.6667)",
    "sizing": "proportional, original or fixed_fraction (default proportional)",
    "fixed_fraction": "fraction f for fixed_fraction sizing (default 0.10)",
    "guard_low": "low guardrail on the stock weight (default 0.25)",
    "guard_high": "high guardrail on the stock weight (default 0.75)",
    "min_notional": "smallest order notional (default 100)",
    "commission_rate": "commission as a fraction of the notional (default 0.0001)",
    "max_orders_per_day": "daily order cap (default 5)",
    "fractional": "true or false: whole shares only when false (default true)",
    "qty_step": "quantities in multiples of this, or none (default none)",
    "withholding_tax_rate": "withholding on dividends (default 0.25)",
    "max_price_jump": "the live price-jump guard's threshold (default 0.25; not used here)",
}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


class Command(BaseCommand):
    help = ("Backtest the volatility-balancing strategy over a price series (a CSV or a bundled "
            "sample) and compare it with three benchmarks: the starting mix held, the stock "
            "held and the fixed mix rebalanced monthly.")
    requires_system_checks: list = []  # a pure computation: start fast

    def add_arguments(self, parser):
        src = parser.add_argument_group("data")
        one = src.add_mutually_exclusive_group()
        one.add_argument("--csv", metavar="FILE",
                         help="CSV with a Date and a Close column (Yahoo's download works)")
        one.add_argument("--sample", metavar="TICKER",
                         help="bundled daily prices to 2013-03-01: AAPL, IBM, MSFT (from "
                              "2000), GOOG (from 2004), FB (from 2012); dividends derived from "
                              "the adjusted closes")
        one.add_argument("--ticker", metavar="TICKER",
                         help="the ticker's raw daily bars, splits and dividends from the feed "
                              "VOLBAL_PRICE_FEED names (needs --start; cached: "
                              "docs/marketdata.md#history-for-research)")
        add_portfolio_arguments(src, one)
        src.add_argument("--start", help="first date or time to include (ISO)")
        src.add_argument("--end", help="last date or time to include (ISO; a date includes the "
                                       "whole day)")
        src.add_argument("--refresh", action="store_true",
                         help="with --ticker: fetch the history again, not from the cache")
        src.add_argument("--dividends", metavar="FILE",
                         help="CSV with ex_date, pay_date, dps (replaces a sample's dividends)")
        src.add_argument("--splits", metavar="FILE",
                         help="CSV with date, ratio (new shares per old share) for a series of "
                              "unadjusted prices: the book splits as a live position does")
        run = add_strategy_arguments(parser, "strategy (fractions, not percent)")
        run.add_argument("--float", action="store_true", dest="use_float",
                         help="run the rules on floats (agrees with the Decimal default to the "
                              "cent)")
        out = parser.add_argument_group("output")
        out.add_argument("--json", action="store_true",
                         help="print one JSON document: metrics, benchmarks, attribution, notes, "
                              "orders")
        out.add_argument("--plot", metavar="FILE.png",
                         help="draw price, equity and weight (a portfolio: equity against its "
                              "benchmarks, each holding's contribution)")
        out.add_argument("--xlsx", metavar="FILE",
                         help="workbook: Summary, Orders, Daily (a portfolio: Summary, "
                              "Rebalances, Daily)")
        out.add_argument("--equity-csv", metavar="FILE", help="the daily series as CSV")

    def handle(self, *args, **opts):
        # Everything Django loaded lives as long as this process: keep the cyclic garbage
        # collector from walking it again and again while the run allocates.
        gc.freeze()
        # a management command that keeps startup light: numpy, matplotlib, openpyxl when run
        from positions.strategy.backtest import data, engine, report
        from positions.strategy.export import charts, tables

        cfg = _config(opts)
        setup = setup_from(opts)
        if opts["portfolio"]:
            return self.portfolio(cfg, setup, opts)
        try:
            if opts["csv"]:
                series = data.load_csv(opts["csv"], ohlc=setup.fill == "limit")
                dividends = []
            elif opts["sample"]:
                series, dividends = data.load_sample(opts["sample"])
            elif opts["ticker"]:
                series, dividends, splits = ticker_history(self, opts)
                setup = dataclasses.replace(setup, splits=splits)
            else:
                raise CommandError("give the data: --csv FILE, --sample TICKER or --ticker "
                                   "TICKER")
            if opts["dividends"]:
                dividends = data.load_dividends(opts["dividends"])
            series = series.between(opts["start"], opts["end"])
            if opts["splits"]:
                setup = dataclasses.replace(setup, splits=data.load_splits(opts["splits"]))
        except data.DataError as exc:
            raise CommandError(str(exc)) from None

        progress, bar = self._progress(len(series))
        try:
            rep = report.backtest(series, cfg, setup, dividends, exact=not opts["use_float"],
                                  progress=progress)
        except (engine.SetupError, rules.RuleError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.close()

        emit(self, opts, [
            ("plot", opts["plot"], lambda path: charts.write_backtest_plot(rep, path)),
            ("workbook", opts["xlsx"], lambda path: tables.write_backtest_xlsx(rep, path)),
            ("daily series", opts["equity_csv"], lambda path: tables.write_equity_csv(rep, path)),
        ], lambda: report.document(rep), lambda: report.table(rep))

    def portfolio(self, cfg, setup, opts) -> None:
        """``--portfolio``: each holding a sample or a ticker's history, then the portfolio
        backtest and its table or JSON document."""
        # a management command that keeps startup light: the backtest (numpy), matplotlib and
        # openpyxl when run
        from positions.research import requests
        from positions.strategy.backtest import engine
        from positions.strategy.backtest import portfolio as pf
        from positions.strategy.export import charts, tables

        if opts["equity_csv"]:
            raise CommandError("--equity-csv: a portfolio's daily series is the workbook's "
                               "Daily sheet (--xlsx)")
        spec = portfolio_spec(opts)
        histories = {t: ticker_history(self, {**opts, "ticker": t}) for t in spec.tickers}
        try:
            holdings = requests.portfolio_holdings(spec, opts["start"], opts["end"], histories)
        except requests.RequestError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        try:
            run = pf.simulate(holdings, cfg, setup, spec.rebalance, spec.band)
        except pf.PortfolioError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        except (engine.SetupError, rules.RuleError) as exc:
            raise CommandError(str(exc)) from None
        emit(self, opts, [
            ("plot", opts["plot"], lambda path: charts.write_portfolio_plot(run, path)),
            ("workbook", opts["xlsx"], lambda path: tables.write_portfolio_xlsx(run, path)),
        ], lambda: pf.document(run, setup.cash),
             lambda: pf.table(run, setup.cash, spec.rebalance, spec.band))

    def _progress(self, n: int):
        """A progress bar on stderr, only on a terminal and only for long series."""
        if n < _PROGRESS_MIN_BARS or not sys.stderr.isatty():
            return None, None
        try:
            # tqdm: an optional library, for a terminal only
            from tqdm import tqdm
        except ImportError:
            return None, None
        bar = tqdm(total=n, unit="bar", unit_scale=True, desc="Backtest", file=sys.stderr,
                   leave=False)

        def progress(i: int) -> None:
            bar.update(i - bar.n)

        return progress, bar


def add_portfolio_arguments(group, exclusive=None) -> None:
    """``--portfolio`` (into ``exclusive`` when given: one source of data), ``--rebalance`` and
    ``--rebalance-band``: backtest, sweep and walkforward take a portfolio alike."""
    (exclusive or group).add_argument(
        "--portfolio", metavar="NAME=W,...",
        help="a portfolio: holdings and target weights (sum at most 1), each a bundled "
             "sample's name or, with --start, a ticker's history; runs alone "
             "(docs/backtests.md#portfolio-backtests)")
    group.add_argument("--rebalance", default="never",
                       help="with --portfolio: never, monthly, quarterly, yearly or band")
    group.add_argument("--rebalance-band", metavar="X",
                       help="with --rebalance band: the absolute weight drift that triggers it")


def portfolio_spec(opts):
    """``--portfolio``, ``--rebalance`` and ``--rebalance-band`` read as the API reads its
    ``portfolio`` (research.requests.portfolio_text: one parser, one duplicate check, one
    choice of sample or ticker); a refusal is a one-line CommandError with its code."""
    # a management command that keeps startup light: the research requests (numpy) when run
    from positions.research import requests

    try:
        return requests.portfolio_text(opts["portfolio"], opts["rebalance"],
                                       opts["rebalance_band"], opts["start"], opts["end"],
                                       opts["cash"])
    except requests.ParamError as exc:
        if exc.field in ("start", "end"):
            raise CommandError(f"--{exc.field}: {exc.why}") from None
        raise CommandError(f"{exc.code}: {exc.message}") from None
    except requests.RequestError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None


def ticker_history(cmd, opts):
    """``(series, dividends, splits)`` of ``--ticker`` from ``--start`` to ``--end`` (default
    today), from the feed or its cache (``--refresh``: the feed), as a CSV with its
    ``--dividends`` and ``--splits`` files would give them; said on stderr."""
    # a management command that keeps startup light: the feed's adapters and the backtest's
    # data (numpy) when run
    from positions.research.history import history_inputs

    if not opts.get("start"):
        raise CommandError("--ticker needs --start (the first session, an ISO date)")
    days = day_range(opts.get("start"), opts.get("end"), default_end=clock.trading_day())
    try:
        ticker = ticker_normalize(opts["ticker"])
    except DomainError as exc:
        raise CommandError(f"--ticker {opts['ticker']!r}: {exc.message}") from None
    try:
        series, dividends, splits, h = history_inputs(ticker=ticker, start=days[0],
                                                      end=days[1], refresh=opts["refresh"])
    except FeedError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    whence = "the cache" if h.cached else h.source
    cut = (f" (--end {days[1]} cut to the last closed session: a session's bar is final "
           "after its close)" if h.end < days[1] else "")
    cmd.stderr.write(f"{h.ticker} {h.start} to {h.end} from {whence}: {len(h.bars)} daily "
                     f"bars, {len(h.splits)} splits, {len(h.dividends)} dividends{cut}")
    return series, dividends, splits


def add_strategy_arguments(parser, title: str):
    """Every strategy field as an option (``--trigger-pct``), and the run's ``--cash``,
    ``--start-weight``, ``--slippage-bps`` and ``--fill``; returns the "run" group."""
    strat = parser.add_argument_group(title)
    for f in dataclasses.fields(rules.Config):
        strat.add_argument(_option(f.name), dest=f.name, metavar="X", help=_HELP.get(f.name))
    run = parser.add_argument_group("run")
    run.add_argument("--cash", default="10000", help="starting cash (default 10000)")
    run.add_argument("--start-weight", default="0.5",
                     help="stock weight bought on the first bar (default 0.5)")
    run.add_argument("--slippage-bps", default="0",
                     help="fills this many basis points worse than the bar (default 0)")
    run.add_argument("--fill", default="same_bar", choices=("same_bar", "next_bar", "limit"),
                     help="same_bar (default): a proposal fills at its bar's price; "
                          "next_bar: it fills at the next bar's price; limit: the ladder's "
                          "rungs rest as limit orders and fill where a later bar reaches them "
                          "(reads Open/High/Low when the data has them)")
    return run


def setup_from(opts):
    """The run's setup from --cash, --start-weight, --slippage-bps and --fill; a bad value is a
    one-line CommandError naming the option."""
    # a management command that keeps startup light: the engine (numpy) when run
    from positions.strategy.backtest import engine

    setup = engine.Setup(
        cash=_decimal(opts["cash"], "--cash"),
        start_weight=_decimal(opts["start_weight"], "--start-weight"),
        slippage_bps=_decimal(opts["slippage_bps"], "--slippage-bps"),
        fill=opts.get("fill", "same_bar"),
    )
    problems = engine.setup_errors(setup)
    if problems:
        name, why = next(iter(problems.items()))
        raise CommandError(f"{_option(name)}: {why}")
    return setup


def emit(cmd, opts, files, document, table) -> None:
    """Write each ``(what, path, write)`` of ``files`` whose path was given, then print the
    JSON document (``--json``; the files said on stderr) or the table (the files below it)."""
    written = []
    try:
        for what, path, write in files:
            if path:
                write(path)
                written.append((what, path))
    except OSError as exc:
        raise CommandError(f"{exc.filename}: {exc.strerror}") from None
    if opts["json"]:
        cmd.stdout.write(json.dumps(document(), separators=(",", ":")))
        say = cmd.stderr
    else:
        cmd.stdout.write(table())
        say = cmd.stdout
    for what, path in written:
        say.write(f"Wrote the {what} to {path}")


def _decimal(raw, option: str) -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise CommandError(f"{option}: {raw!r} is not a number") from None
    if not value.is_finite():
        raise CommandError(f"{option}: {raw!r} is not a finite number")
    return value


def _config(opts) -> rules.Config:
    """A rules.Config from the strategy options; a bad value is a one-line CommandError naming
    the option."""
    # a management command that keeps startup light: the research core (numpy) when run
    from positions.strategy.research.sweep import GridError, parse_value

    values = {}
    for f in dataclasses.fields(rules.Config):
        raw = opts.get(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = parse_value(f.name, raw)
        except GridError as exc:
            raise CommandError(f"{_option(f.name)}: {str(exc).split(': ', 1)[1]}") from None
    cfg = rules.Config(**values)
    errors = rules.config_errors(cfg)
    if errors:
        name, why = next(iter(errors.items()))
        raise CommandError(f"{_option(name)}: {why}")
    return cfg
