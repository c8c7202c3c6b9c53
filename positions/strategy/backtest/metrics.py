"""Backtest metrics (docs/strategy.md#backtest, the report): pure numpy.

Definitions (all ratios are fractions; ``None`` where a figure is undefined, e.g. the volatility
of a single day):

- equity: the position value after each bar, S*P + C + R, from the state changes of the run
  (holdings are constant between changes, so the series is built vectorized);
- total_return: final equity / starting cash - 1;
- cagr: (final / starting cash) ** (1 / years) - 1, years = calendar days between the first and
  the last bar / 365.25;
- volatility: sample standard deviation (ddof=1) of the daily returns x sqrt(252); intraday
  equity is first resampled to daily closes (the last bar of each calendar day), and the daily
  returns are those between consecutive daily closes;
- sharpe: mean daily return / its standard deviation x sqrt(252) (risk-free rate 0, arithmetic
  mean);
- sortino: mean daily return / downside deviation x sqrt(252), the downside deviation being
  sqrt(mean(min(r, 0)^2)) over *all* daily returns;
- max_drawdown: the lowest equity / running peak - 1 over the bars (0 or negative);
  max_drawdown_days: calendar days from the peak before that trough to the first bar back at
  the peak (to the last bar when it never recovers);
- turnover: sum of |notional| of all orders (the opening purchase included) / mean equity, per
  year (divided by years);
- in_band_share: the share of bars whose weight after the bar lies within [guard_low,
  guard_high].

Annualised figures (cagr, volatility, sharpe, sortino, turnover) of a run shorter than
:data:`MIN_ANNUALISED_DAYS` calendar days or :data:`MIN_ANNUALISED_BARS` bars are ``None`` in
:func:`summary`, and :func:`annualised_note` says why: five bars would otherwise report a CAGR of
several hundred percent (docs/strategy.md#benchmarks-and-attribution).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

TRADING_DAYS = 252
SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.25
_BAND_TOLERANCE = 1e-9  # the residue rounding a quantity to 8 places can leave
MIN_ANNUALISED_DAYS = 60  # calendar days from the first to the last bar
MIN_ANNUALISED_BARS = 20
ANNUALISED = ("cagr", "volatility", "sharpe", "sortino", "turnover")

METRIC_NAMES = (
    "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_days", "buys", "sells", "commissions", "dividends", "turnover",
    "in_band_share", "final_qty", "final_cash", "final_value",
)


def per_bar(run, n: int) -> dict[str, np.ndarray]:
    """The state after each bar (qty, cash, receivable, anchor), from the run's changes."""
    counts = _counts(run, n)
    return {
        "qty": np.repeat(run.change_qty, counts),
        "cash": np.repeat(run.change_cash, counts),
        "receivable": np.repeat(run.change_receivable, counts),
        "anchor": np.repeat(run.change_anchor, counts),
    }


def state_at(run, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The state after the bars ``idx`` (ascending), without building every bar."""
    rows = np.searchsorted(run.change_bar, idx, "right") - 1
    return {
        "qty": run.change_qty[rows],
        "cash": run.change_cash[rows],
        "receivable": run.change_receivable[rows],
        "anchor": run.change_anchor[rows],
    }


def _counts(run, n: int) -> np.ndarray:
    return np.diff(np.append(np.maximum(run.change_bar, 0), n))


def equity_and_weight(prices: np.ndarray, run) -> tuple[np.ndarray, np.ndarray]:
    """Equity S*P + C + R and stock weight S*P / equity (0 where equity <= 0) after each bar."""
    counts = _counts(run, len(prices))
    stock = np.repeat(run.change_qty, counts)
    stock *= prices
    equity = np.repeat(run.change_cash + run.change_receivable, counts)
    equity += stock
    if equity.min() > 0:  # the usual run: no mask to build
        return equity, np.divide(stock, equity, out=stock)
    weight = np.divide(stock, equity, out=stock, where=equity > 0)
    if not (equity > 0).all():
        weight[equity <= 0] = 0.0
    return equity, weight


def day_ends(days: np.ndarray) -> np.ndarray:
    """Index of the last bar of each calendar day."""
    return np.append(np.flatnonzero(days[1:] != days[:-1]), len(days) - 1)


def years_between(seconds: np.ndarray) -> float:
    if len(seconds) < 2:
        return 0.0
    return float(seconds[-1] - seconds[0]) / SECONDS_PER_DAY / DAYS_PER_YEAR


def performance(equity: np.ndarray, seconds: np.ndarray, days: np.ndarray,
                initial: float, ends: np.ndarray | None = None) -> dict:
    """total_return, cagr, volatility, sharpe, sortino, max_drawdown, max_drawdown_days.

    ``ends``: the index of the last bar of each day, if already known."""
    final = float(equity[-1])
    total = final / initial - 1.0
    years = years_between(seconds)
    cagr = None
    if years > 0:
        try:
            cagr = (final / initial) ** (1.0 / years) - 1.0 if final > 0 else -1.0
        except OverflowError:  # seconds of bars annualised: past any float (too short anyway)
            cagr = None
    closes = equity[day_ends(days) if ends is None else ends]
    vol = sharpe = sortino = None
    if len(closes) >= 3 and (closes[:-1] > 0).all():
        r = closes[1:] / closes[:-1] - 1.0
        mean = float(r.mean())
        sd = float(r.std(ddof=1))
        ann = math.sqrt(TRADING_DAYS)
        vol = sd * ann
        if sd > 0:
            sharpe = mean / sd * ann
        down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
        if down > 0:
            sortino = mean / down * ann
    mdd, mdd_days = drawdown(equity, seconds)
    return {
        "total_return": total,
        "cagr": cagr,
        "volatility": vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "max_drawdown_days": mdd_days,
    }


_CHUNK = 1 << 16  # bars per piece of the long series' drawdown: temporaries that stay in cache


def drawdown(equity: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """(max drawdown <= 0, its duration in calendar days: peak to recovery or to the end)."""
    if len(equity) > _CHUNK and equity[0] > 0:
        found = _drawdown_chunked(equity)
        if found is not None:
            mdd, start, end = found
            if not mdd < 0:
                return 0.0, 0.0
            return mdd, float(seconds[end] - seconds[start]) / SECONDS_PER_DAY
    peak = np.maximum.accumulate(equity)
    if equity[0] > 0:  # the running peak is then positive on every bar
        ratio = equity / peak
    else:
        ratio = np.divide(equity, peak, out=np.ones_like(equity), where=peak > 0)
    t = int(np.argmin(ratio))
    mdd = float(ratio[t]) - 1.0
    if not mdd < 0:
        return 0.0, 0.0
    top = peak[t]
    start = int(np.flatnonzero(equity[: t + 1] >= top)[-1])
    back = np.flatnonzero(equity[t:] >= top)
    end = t + int(back[0]) if len(back) else len(equity) - 1
    return mdd, float(seconds[end] - seconds[start]) / SECONDS_PER_DAY


def _drawdown_chunked(equity: np.ndarray):
    """:func:`drawdown` of a long series with a positive first value, piece by piece: the same
    running peak, the same ratios and the same first lowest ratio as over the whole array, in
    two buffers of :data:`_CHUNK` values instead of arrays as long as the series. (mdd, index of
    the peak, index of the recovery or the last bar), or None for a NaN (left to the whole-array
    form)."""
    n = len(equity)
    peak = np.empty(_CHUNK)
    ratio = np.empty(_CHUNK)
    high = -math.inf  # the running peak before the piece
    low = math.inf  # the lowest ratio so far, first reached at t, under the peak top
    t = 0
    top = 0.0
    for a in range(0, n, _CHUNK):
        e = equity[a:a + _CHUNK]
        m = len(e)
        p = peak[:m]
        np.maximum.accumulate(e, out=p)
        np.maximum(p, high, out=p)
        r = ratio[:m]
        np.divide(e, p, out=r)
        k = int(r.argmin())
        x = float(r[k])
        if x != x:
            return None
        if x < low:
            low, t, top = x, a + k, float(p[k])
        high = float(p[-1])
    mdd = low - 1.0
    if not mdd < 0:
        return mdd, 0, 0
    j = t + 1  # the last bar at the peak before the trough: searched back from it
    while True:
        lo = max(j - _CHUNK, 0)
        hits = np.flatnonzero(equity[lo:j] >= top)
        if len(hits):
            start = lo + int(hits[-1])
            break
        j = lo
    end = n - 1  # the first bar back at the peak, else the last
    for lo in range(t, n, _CHUNK):
        back = equity[lo:lo + _CHUNK] >= top
        k = int(back.argmax())
        if back[k]:
            end = lo + k
            break
    return mdd, start, end


def annualised_note(seconds: np.ndarray) -> str | None:
    """Why the annualised figures of a run over bars at ``seconds`` are left out, or None when
    the run is long enough (at least MIN_ANNUALISED_DAYS calendar days and
    MIN_ANNUALISED_BARS bars)."""
    n = len(seconds)
    span = float(seconds[-1] - seconds[0]) / SECONDS_PER_DAY if n else 0.0
    if span >= MIN_ANNUALISED_DAYS and n >= MIN_ANNUALISED_BARS:
        return None
    return (f"CAGR, volatility, Sharpe, Sortino and turnover are left out (null): the run "
            f"covers {span:,.4g} calendar day{'s' if span != 1 else ''} and {n:,} "
            f"bar{'s' if n != 1 else ''}; annualising needs at least {MIN_ANNUALISED_DAYS} "
            f"days and {MIN_ANNUALISED_BARS} bars.")


def summary(series, run, cfg, initial_cash, *, equity=None, weight=None) -> dict:
    """Every metric of the report for one run (the strategy or a benchmark); the annualised
    ones are None for a run too short to annualise (:func:`annualised_note`)."""
    prices = series.prices
    n = len(prices)
    if equity is None or weight is None:
        equity, weight = equity_and_weight(prices, run)
    seconds = series.seconds
    initial = float(initial_cash)
    out = performance(equity, seconds, series.days, initial, getattr(series, "day_ends", None))
    buys = sum(1 for o in run.orders if o.side == "BUY")
    traded = sum(abs(float(o.notional)) for o in run.orders)
    years = years_between(seconds)
    mean_equity = float(equity.mean())
    turnover = traded / mean_equity / years if years > 0 and mean_equity > 0 else None
    low = float(cfg.guard_low) - _BAND_TOLERANCE
    high = float(cfg.guard_high) + _BAND_TOLERANCE
    in_band = float(np.count_nonzero((weight >= low) & (weight <= high))) / n
    last = prices[-1]
    if run.exact:
        final_value = (run.qty * Decimal(repr(float(last))) + run.cash + run.receivable)
        final_value = final_value.quantize(Decimal("0.000001"))
    else:
        final_value = round(run.qty * float(last) + run.cash + run.receivable, 6)
    out.update({
        "buys": buys,
        "sells": len(run.orders) - buys,
        "commissions": run.commissions,
        "dividends": run.dividends,
        "turnover": turnover,
        "in_band_share": in_band,
        "final_qty": run.qty,
        "final_cash": run.cash,
        "final_value": final_value,
    })
    if annualised_note(seconds) is not None:
        for k in ANNUALISED:
            out[k] = None
    return {k: out[k] for k in METRIC_NAMES}
