"""Portfolio backtests (docs/strategy.md#portfolios, docs/backtests.md#portfolio-backtests).

Each holding runs the single-position strategy on ``weight x cash`` (rounded down to the micro;
the portfolio keeps the rest as unallocated cash F), exactly as a single backtest with that cash
would. At a rebalance the portfolio moves cash only, between F and the holdings' cash, by the
rule of :func:`positions.strategy.rules.portfolio.rebalance` (the live loop's): the holdings
keep trading by their own rules. The engine takes the moves through its ``moves`` hook (at the
bar, after its corporate actions, before its fill and evaluation).

Calendar: the holdings' series are cut to the bars they all have (the same wall-clock times).
Periodic rules rebalance on the first bar of each month, quarter or year after bar 0; ``band``
looks at each session's first bar: the exact state there (after the bar's dividends and splits)
at the bar's prices gives the weights, and a drift beyond the band rebalances. A rebalance needs
every holding's state at its bar, which depends on the earlier rebalances: the holdings' engines
run side by side (:class:`_Lockstep`, one thread each) and meet at those bars through the
engine's ``moves`` hook, so each bar is simulated once per holding (linear in the length of the
series, whatever the number of rebalances: docs/backtests.md#portfolio-backtests).

Benchmarks (docs/strategy.md#portfolios): ``held`` buys each holding's ``weight x cash`` of its
asset at the first bar (buy_to(1), rounded, commission) and holds; ``fixed_mix`` keeps the
weights across the assets and cash, trading shares at the period's first bar (monthly for
``never`` and ``band``), fractional, at the strategy's commission rate, dividends credited as
everywhere (net of withholding, cash on the pay-date). Pure: numpy, the rules and the engine.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import decimal
import threading
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import numpy as np

from positions.strategy import formats, rules
from positions.strategy.backtest import data, engine, metrics
from positions.strategy.rules import portfolio as prules

BENCHMARKS = ("held", "fixed_mix")
LABELS = {"held": "Held at weights", "fixed_mix": "Fixed mix"}


@dataclass(frozen=True)
class Holding:
    """One holding of a portfolio backtest: its series, dividends, splits and target weight."""

    name: str
    series: data.Series
    weight: Decimal
    dividends: tuple = ()
    splits: tuple = ()


@dataclass(frozen=True)
class Rebalanced:
    """A rebalance: its bar, what the rule did, and the weights it found."""

    bar: int
    result: prules.Rebalance
    weights: tuple[Decimal, ...]


@dataclass
class PortfolioRun:
    holdings: list[Holding]  # aligned on the common bars
    setups: list[engine.Setup]
    runs: list[engine.Run]
    free_cash: Decimal  # the unallocated cash at the end
    rebalances: list[Rebalanced]
    equity: np.ndarray  # F + the holdings' equity, after each bar
    holding_equity: list[np.ndarray]
    free: np.ndarray  # F after each bar
    benchmarks: dict[str, np.ndarray] = field(default_factory=dict)
    cfg: rules.Config | None = None  # the inputs: the strategy, the portfolio's set-up
    setup: engine.Setup | None = None
    rule: str = "never"
    band: Decimal | None = None

    @property
    def series(self) -> data.Series:
        return self.holdings[0].series

    @property
    def turnover(self) -> Decimal:
        """The cash the rebalances moved (sum of absolute moves)."""
        return sum((r.result.turnover for r in self.rebalances), Decimal(0))

    def final_value(self, i: int) -> Decimal:
        """Holding ``i``'s final value S*P + C + R (exact, to the micro)."""
        run = self.runs[i]
        last = Decimal(repr(float(self.holdings[i].series.prices[-1])))
        return (run.qty * last + run.cash + run.receivable).quantize(rules.MONEY_PLACES)

    def net_moved(self, i: int) -> Decimal:
        """The cash the rebalances put into holding ``i`` (negative: took out)."""
        return sum((r.result.moves[i] for r in self.rebalances), Decimal(0))

    def contribution_curves(self, cash) -> list[np.ndarray]:
        """Each holding's gain after each bar as a fraction of the portfolio's starting
        ``cash``: its equity less its opening cash and the cash the rebalances moved in so far
        (the last value is :func:`figures`' contribution, in floats)."""
        initial = float(cash)
        out = []
        for i, (eq, st) in enumerate(zip(self.holding_equity, self.setups, strict=True)):
            moved = np.zeros(len(eq))
            for r in self.rebalances:
                moved[r.bar:] += float(r.result.moves[i])
            out.append((eq - float(st.cash) - moved) / initial)
        return out


class PortfolioError(ValueError):
    """Bad portfolio inputs: ``code``, a sentence and the request's ``field`` it names."""

    def __init__(self, code: str, message: str, field: str = "portfolio"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def holding_cash(weight: Decimal, cash: Decimal) -> Decimal:
    """A holding's opening cash: ``weight x cash`` rounded down to the micro."""
    return (weight * cash).quantize(rules.MONEY_PLACES, ROUND_DOWN)


def funding_error(weight: Decimal, cash: Decimal) -> str | None:
    """Why ``weight`` of ``cash`` cannot fund a holding (0, or less than one micro), or
    None."""
    if holding_cash(weight, cash) > 0:
        return None
    if not weight > 0:
        return "the weight must be greater than 0 to fund the holding."
    return (f"weight × cash is {format((weight * cash).normalize(), 'f')}; it must be at least "
            f"{rules.MONEY_PLACES} (one micro) to fund the holding.")


def align(holdings: list[Holding]) -> list[Holding]:
    """The holdings on the bars every one of them has; refused when they share fewer than 2."""
    if not holdings:
        raise PortfolioError("invalid_portfolio", "A portfolio needs at least one holding.")
    common = holdings[0].series.times
    for h in holdings[1:]:
        common = np.intersect1d(common, h.series.times, assume_unique=True)
    if len(common) < 2:
        raise PortfolioError("no_common_bars",
                             "The holdings share fewer than 2 bars (dates): nothing to "
                             "backtest together.")
    out = []
    for h in holdings:
        s = h.series
        if len(s.times) == len(common):
            out.append(h)
            continue
        idx = np.flatnonzero(np.isin(s.times, common))
        opens, highs, lows, offsets = (None if a is None else a[idx]
                                       for a in (s.opens, s.highs, s.lows, s.offsets))
        cut = data.Series(s.times[idx], s.prices[idx], offsets, s.name, s.first_line,
                          (s.lines[idx] if s.lines is not None else idx + s.first_line),
                          opens, highs, lows)
        out.append(dataclasses.replace(h, series=cut))
    return out


def _dates(series: data.Series) -> list[dt.date]:
    return series.times.astype("datetime64[D]").astype(dt.date).tolist()


def period_bars(rule: str, series: data.Series) -> list[int]:
    """The first bar of each period of ``rule`` after bar 0 (rules.portfolio.rebalance_due)."""
    dates = _dates(series)
    return [j for j in range(1, len(dates))
            if prules.rebalance_due(rule, None, dates[j - 1], dates[j])]


def session_starts(series: data.Series) -> np.ndarray:
    """The first bar of each session (calendar day) after bar 0."""
    d = series.days
    return np.flatnonzero(d[1:] != d[:-1]) + 1


class _Lockstep:
    """The holdings' engines side by side, one thread each, meeting at the bars where the
    portfolio decides (``bars``): there each engine's ``moves`` hook hands in its state after the
    bar's corporate actions and waits; when all are in, ``decide(bar, states)`` answers each
    holding's cash move (or None: no move) and they go on. Each bar is simulated once per
    holding (the threads take turns at the barrier; the work is the sum of the single runs').
    The caller's decimal context is each thread's, so the numbers are the caller's exactly."""

    def __init__(self, holdings, cfg, setups, bars, decide, switches=None):
        self.holdings, self.cfg, self.setups, self.bars = holdings, cfg, setups, bars
        self.decide, self.switches = decide, switches
        k = len(holdings)
        self.states: list = [None] * k
        self.amounts: list = [Decimal(0)] * k
        self.bar = -1
        self.barrier = threading.Barrier(k, action=self._decide)
        self.context = decimal.getcontext()

    def _decide(self) -> None:
        moves = self.decide(self.bar, list(self.states))
        self.amounts = list(moves) if moves is not None else [Decimal(0)] * len(self.states)

    def _hook(self, i: int):
        def move(book: engine.Book, j: int):
            self.states[i] = (book.S, book.C, book.R, book.price(j))
            self.bar = j
            self.barrier.wait()
            return self.amounts[i]
        return move

    def run(self) -> list[engine.Run]:
        k = len(self.holdings)
        runs: list = [None] * k
        errors: list = [None] * k

        def go(i: int) -> None:
            decimal.setcontext(self.context.copy())
            h, hook = self.holdings[i], self._hook(i)
            try:
                runs[i] = engine.simulate(h.series, engine.Rules(), self.cfg, self.setups[i],
                                          h.dividends, moves={b: hook for b in self.bars},
                                          switches=self.switches)
            except BaseException as exc:  # handed to the caller below
                errors[i] = exc
                self.barrier.abort()  # the others stop at their next meeting

        # each thread in a copy of this one's context: what the run is inside (a cap on its
        # resting pairs' evaluations, engine.evaluation_cap) holds for every holding
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(go, i),
                                    daemon=True) for i in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        first = next((e for e in errors if e is not None
                      and not isinstance(e, threading.BrokenBarrierError)), None)
        if first is None:
            first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
        return runs


def check(holdings: list[Holding], rule: str, band: Decimal | None = None) -> list[Holding]:
    """The rule and the weights checked (PortfolioError ``invalid_rebalance``,
    ``invalid_weights``), the holdings aligned (:func:`align`)."""
    errors = prules.rule_errors(rule, band)
    if errors:
        raise PortfolioError("invalid_rebalance", " ".join(errors.values()))
    why = prules.weights_error([h.weight for h in holdings])
    if why:
        raise PortfolioError("invalid_weights", why)
    return align(holdings)


def simulate(holdings: list[Holding], cfg: rules.Config, setup: engine.Setup, rule: str,
             band: Decimal | None = None, *, with_benchmarks: bool = True,
             switches: dict[int, rules.Config] | None = None) -> PortfolioRun:
    """The portfolio backtest (the module's notes), exact (Decimal) like a single backtest;
    ``with_benchmarks`` False leaves the benchmarks out (a sweep's cell: they do not depend on
    the grid, :func:`benchmark_summaries` runs them once); ``switches``: the configuration
    that holds from a bar on in every holding (a walk-forward's windows, as engine.simulate
    takes them; the benchmarks use ``cfg``). A quantity or amount past exact arithmetic, in
    any holding's thread, is the single backtest's SetupError (engine.exact_arithmetic)."""
    holdings = check(holdings, rule, band)
    with engine.exact_arithmetic():
        return _simulate(holdings, cfg, setup, rule, band, with_benchmarks, switches)


def _simulate(holdings, cfg, setup, rule, band, with_benchmarks, switches) -> PortfolioRun:
    for i, h in enumerate(holdings):
        why = funding_error(h.weight, setup.cash)
        if why:
            raise PortfolioError("invalid_weights", f"{h.name}: {why}",
                                 f"portfolio.holdings[{i}].weight")
    setups = [dataclasses.replace(setup, splits=tuple(h.splits),
                                  cash=holding_cash(h.weight, setup.cash)) for h in holdings]
    start_free = setup.cash - sum((s.cash for s in setups), Decimal(0))
    free = start_free
    done: list[Rebalanced] = []
    targets = [h.weight for h in holdings]
    series = holdings[0].series
    dates = _dates(series)

    def decide(bar: int, states) -> tuple[Decimal, ...] | None:
        nonlocal free
        book = [prules.Holding(w, S, P, C, R) for w, (S, C, R, P) in
                zip(targets, states, strict=True)]
        weights = prules.actual_weights(free, book)
        if rule == "band" and not prules.rebalance_due(
                "band", band, None, dates[bar], zip(weights, targets, strict=True)):
            return None
        result = prules.rebalance(free, book)
        free = result.free_cash
        done.append(Rebalanced(bar, result, tuple(weights)))
        return result.moves

    if rule == "never":
        bars: list[int] = []
    elif rule == "band":
        bars = session_starts(series).tolist()
    else:
        bars = period_bars(rule, series)
    runs = _Lockstep(holdings, cfg, setups, bars, decide, switches).run()
    n = len(series)
    free_bar = np.full(n, float(start_free))
    for r in done:
        free_bar[r.bar:] = float(r.result.free_cash)
    parts = [metrics.equity_and_weight(h.series.prices, run)[0]
             for h, run in zip(holdings, runs, strict=True)]
    equity = free_bar + np.sum(parts, axis=0)
    out = PortfolioRun(holdings, setups, runs, free, done, equity, parts, free_bar,
                       cfg=cfg, setup=setup, rule=rule, band=band)
    if with_benchmarks:
        out.benchmarks = {
            "held": held(holdings, cfg, setups, float(start_free)),
            "fixed_mix": fixed_mix(holdings, cfg, setup, rule),
        }
    return out


def held(holdings, cfg, setups, free: float) -> np.ndarray:
    """Each holding's cash in its asset at the first bar (buy_to(1)), then held; plus the
    unallocated cash."""
    total = np.full(len(holdings[0].series), free)
    for h, s in zip(holdings, setups, strict=True):
        run = engine.run(h.series, cfg, dataclasses.replace(s, start_weight=Decimal(1)),
                         h.dividends, hold=True)
        total += metrics.equity_and_weight(h.series.prices, run)[0]
    return total


def fixed_mix(holdings, cfg: rules.Config, setup: engine.Setup, rule: str,
              dividends: bool = True) -> np.ndarray:
    """The weights kept across the assets and cash: at bar 0 and at the first bar of each
    period (monthly for ``never`` and ``band``), after the bar's splits and dividends, each
    asset's shares become weight x value / price (fractional, at the bar's price; commission
    at the strategy's rate, the buys scaled down if the cash would not pay them), the rest
    stays cash. Floats: a benchmark's curve, compared with bt's to 1e-6."""
    series = holdings[0].series
    n = len(series)
    days = series.days
    period = rule if rule in prules.PERIOD_MONTHS else "monthly"
    trade = set(period_bars(period, series)) | {0}
    c = float(cfg.commission_rate)
    wh = float(cfg.withholding_tax_rate)
    k = len(holdings)
    P = np.array([h.series.prices for h in holdings])  # k x n
    w = np.array([float(h.weight) for h in holdings])
    ex, pay, split = [], [], []
    for h in holdings:
        e, p = engine.schedule(days, h.dividends if dividends else ())
        ex.append(e)  # bar -> the indexes of the dividends going ex (paid) there
        pay.append(p)
        sp: dict[int, float] = {}
        for day, ratio in h.splits:
            j = int(np.searchsorted(days, engine._day(day), "left"))
            if 0 < j < n:
                sp[j] = sp.get(j, 1.0) * float(rules.split_ratio(ratio))
        split.append(sp)
    events = sorted(trade | {b for d in ex for b in d} | {b for d in pay for b in d}
                    | {b for d in split for b in d})
    S = np.zeros(k)
    cash = float(setup.cash)
    R = np.zeros(k)
    net: list[dict[int, float]] = [{} for _ in holdings]
    equity = np.empty(n)
    last = 0
    for j in events:
        if j > last:  # nothing changes between events: value the held shares at each bar
            equity[last:j] = (S[:, None] * P[:, last:j]).sum(axis=0) + cash + R.sum()
        for i in range(k):
            if j in split[i]:
                S[i] *= split[i][j]
            for idx in ex[i].get(j, ()):
                amount = S[i] * float(holdings[i].dividends[idx].dps) * (1 - wh)
                net[i][idx] = amount
                R[i] += amount
        for i in range(k):
            for idx in pay[i].get(j, ()):
                amount = net[i].get(idx, 0.0)
                cash += amount
                R[i] -= amount
        if j in trade:
            p = P[:, j]
            T = float((S * p).sum()) + cash + float(R.sum())
            delta = w * T / p - S
            sells = np.minimum(delta, 0.0)
            buys = np.maximum(delta, 0.0)
            cash -= float((sells * p).sum()) - c * float((-sells * p).sum())
            S += sells
            cost = float((buys * p).sum()) * (1 + c)
            scale = min(1.0, cash / cost) if cost > 0 else 0.0
            S += buys * scale
            cash -= cost * scale
        equity[j] = float((S * P[:, j]).sum()) + cash + float(R.sum())
        last = j + 1
    if last < n:
        equity[last:] = (S[:, None] * P[:, last:]).sum(axis=0) + cash + R.sum()
    return equity


# --------------------------------------------------------------------------------------------
# The report: figures, JSON document, terminal table
# --------------------------------------------------------------------------------------------


def figures(run: PortfolioRun, cash) -> dict:
    """The single backtest's performance figures (metrics.performance) of the portfolio and of
    each benchmark, each holding's contribution, and the rebalances' turnover."""
    s = run.series
    initial = float(cash)
    note = metrics.annualised_note(s.seconds)

    def perf(eq):
        return _blank(metrics.performance(eq, s.seconds, s.days, initial, s.day_ends), note)

    years = metrics.years_between(s.seconds)
    return {
        "note": note,
        "portfolio": perf(run.equity),
        "benchmarks": {k: perf(v) for k, v in run.benchmarks.items()},
        "holdings": [{
            "name": h.name,
            "weight": h.weight,
            "cash": st.cash,
            "moved_in": run.net_moved(i),
            "final_value": run.final_value(i),
            # its gain as a fraction of the portfolio's starting cash
            "contribution": float(run.final_value(i) - st.cash - run.net_moved(i)) / initial,
            "orders": len(run.runs[i].orders),
        } for i, (h, st) in enumerate(zip(run.holdings, run.setups, strict=True))],
        "rebalances": len(run.rebalances),
        "rebalance_turnover": run.turnover,
        "rebalance_turnover_per_year": (float(run.turnover) / float(run.equity.mean()) / years
                                        if years > 0 and note is None else None),
        "final_free_cash": run.free_cash,
        "final_value": run.free_cash + sum((run.final_value(i) for i in range(len(run.runs))),
                                           Decimal(0)),
    }


def summary(run: PortfolioRun) -> dict:
    """The portfolio's figures under a single backtest's names (metrics.METRIC_NAMES, what a
    sweep ranks): the performance of its equity; orders, commissions, dividends and the
    strategy's turnover summed over the holdings; final cash (the holdings' and the unallocated)
    and value; no single stock weight or share count (None). The annualised ones None for a
    run too short (metrics.annualised_note)."""
    s = run.series
    initial = float(run.setup.cash)
    out = metrics.performance(run.equity, s.seconds, s.days, initial, s.day_ends)
    orders = [o for r in run.runs for o in r.orders]
    years = metrics.years_between(s.seconds)
    mean = float(run.equity.mean())
    traded = sum(abs(float(o.notional)) for o in orders)
    out.update({
        "buys": sum(1 for o in orders if o.side == "BUY"),
        "sells": sum(1 for o in orders if o.side != "BUY"),
        "commissions": sum((r.commissions for r in run.runs), Decimal(0)),
        "dividends": sum((r.dividends for r in run.runs), Decimal(0)),
        "turnover": traded / mean / years if years > 0 and mean > 0 else None,
        "in_band_share": None,
        "final_qty": None,
        "final_cash": run.free_cash + sum((r.cash for r in run.runs), Decimal(0)),
        "final_value": run.free_cash + sum((run.final_value(i) for i in range(len(run.runs))),
                                           Decimal(0)),
    })
    return _blank({k: out[k] for k in metrics.METRIC_NAMES},
                  metrics.annualised_note(s.seconds))


def benchmark_summaries(holdings: list[Holding], cfg: rules.Config, setup: engine.Setup,
                        rule: str, band: Decimal | None = None) -> dict[str, dict]:
    """Each benchmark's figures under :func:`summary`'s names (those a curve has: its
    performance and final value; the rest None), for a sweep's report and each cell's excess
    over them."""
    run = simulate(holdings, cfg, setup, rule, band)
    s = run.series
    note = metrics.annualised_note(s.seconds)
    out = {}
    for k, eq in run.benchmarks.items():
        m = dict.fromkeys(metrics.METRIC_NAMES)
        m.update(_blank(metrics.performance(eq, s.seconds, s.days, float(setup.cash),
                                            s.day_ends), note))
        m["final_value"] = float(eq[-1])
        out[k] = m
    return out


def _blank(figures_: dict, note: str | None) -> dict:
    """``figures_`` with the annualised ones None when ``note`` says the run is too short to
    annualise (metrics.annualised_note), as a single backtest's summary leaves them."""
    if note is not None:
        for k in metrics.ANNUALISED:
            if k in figures_:
                figures_[k] = None
    return figures_


def document(run: PortfolioRun, cash) -> dict:
    """The JSON document of a portfolio backtest."""
    f = figures(run, cash)
    label = run.series.label

    def nums(d):
        return {k: formats.number(v, 6) for k, v in d.items()}

    return {
        "start": label(0),
        "end": label(len(run.series) - 1),
        "bars": len(run.series),
        "metrics": nums(f["portfolio"]) | {
            "final_value": formats.number(f["final_value"], 6),
            "final_free_cash": formats.number(f["final_free_cash"], 6),
            "rebalances": f["rebalances"],
            "rebalance_turnover": formats.number(f["rebalance_turnover"], 6),
            "rebalance_turnover_per_year": formats.number(f["rebalance_turnover_per_year"], 6),
        },
        "benchmarks": {k: nums(v) for k, v in f["benchmarks"].items()},
        "holdings": [{k: (v if isinstance(v, (str, int)) else formats.number(v, 6))
                      for k, v in h.items()} for h in f["holdings"]],
        "notes": [f["note"]] if f["note"] else [],
        "rebalances": [{"date": label(r.bar),
                        "moves": {h.name: formats.number(m, 6)
                                  for h, m in zip(run.holdings, r.result.moves, strict=True)},
                        "free_cash": formats.number(r.result.free_cash, 6)}
                       for r in run.rebalances],
    }


def table(run: PortfolioRun, cash, rule: str, band=None) -> str:
    """The portfolio beside its two benchmarks, then each holding, for a terminal."""
    f = figures(run, cash)
    s = run.series
    rows = [("Total return", "total_return", formats.pct), ("CAGR", "cagr", formats.pct),
            ("Volatility (annual)", "volatility", formats.pct),
            ("Sharpe", "sharpe", formats.ratio), ("Max drawdown", "max_drawdown", formats.pct)]
    cols = [("Portfolio", f["portfolio"])] + [(LABELS[k], v) for k, v in
                                              f["benchmarks"].items()]
    rule_text = rule + (f" {formats.fraction(band)}" if band is not None else "")
    out = [f"Portfolio backtest, {s.label(0)} to {s.label(len(s) - 1)}: {len(s):,} bars, "
           f"rebalance {rule_text}, cash {formats.money(cash)}",
           "Holdings: " + ", ".join(f"{h.name} {formats.fraction(h.weight)}"
                                    for h in run.holdings), ""]
    w0 = max(len(r[0]) for r in rows)
    out.append(" " * w0 + "".join(f"  {name:>16}" for name, _ in cols))
    for label, key, fmt in rows:
        out.append(f"{label:<{w0}}" + "".join(f"  {fmt(m[key]):>16}" for _, m in cols))
    if f["note"]:
        out += ["", f"Note: {f['note']}"]
    out += ["", f"Final value {formats.money(f['final_value'])}, unallocated cash "
                f"{formats.money(f['final_free_cash'])}; {f['rebalances']} rebalances moved "
                f"{formats.money(f['rebalance_turnover'])}", "",
            f"{'Holding':<8}  {'weight':>7}  {'cash':>12}  {'moved in':>12}  "
            f"{'final value':>12}  {'contribution':>12}  {'orders':>6}"]
    for h in f["holdings"]:
        out.append(f"{h['name']:<8}  {formats.fraction(h['weight']):>7}  "
                   f"{formats.money(h['cash']):>12}  {formats.money(h['moved_in']):>12}  "
                   f"{formats.money(h['final_value']):>12}  "
                   f"{formats.pct(h['contribution']):>12}  {h['orders']:>6}")
    return "\n".join(out)
