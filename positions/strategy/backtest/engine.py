"""The backtest loop (docs/strategy.md#backtest): the live rules over a price series, fast.

Pure: numpy, the standard library and :mod:`positions.strategy.rules`. Every decision is
``rules.evaluate``; this module only decides *which bars need it*, fills what it proposes and
credits dividends.

Within a bar, in this order: dividends whose ex-date has come take effect (entitlement = shares
before this bar's trade, receivable += net, anchor -= dps), those whose pay-date has come are paid
(cash += net, receivable -= net); then the position is evaluated at the bar's price; an actionable
proposal fills at once at that price worsened by the slippage, with commission c * notional, and
the anchor becomes the fill price (with slippage: P * (1 +- bps/10^4) to 6 places, computed in
Decimal in both number modes; a buy the cash cannot pay at that worse price is trimmed to what
it can). At most one order per bar; the daily cap counts the orders of
the bar's calendar day; there is never an open order. Bar 0 carries the opening purchase
(buy_to(start weight), rounded toward zero like any quantity); it is the first order and sets the
anchor. If it rounds to nothing, bar 0 is evaluated instead (the anchor is set there).

Next-bar fills (``Setup.fill == "next_bar"``, docs/strategy.md#next-bar-fills)
    An actionable proposal is placed as an open order on its bar (the daily cap counts it on
    that bar's day) and fills at the next bar's price worsened by the slippage, after that bar's
    dividends and before its evaluation; the anchor becomes the fill price. At the fill price a
    buy the cash no longer covers (or a sell beyond the shares) is trimmed to what they cover,
    rounded down to the step, and cancelled if that leaves nothing (``Run.cancelled``). A split
    on the fill bar applies first and multiplies the order's quantity by its ratio, rounded down
    to the step (docs/strategy.md#splits). An order placed on the last bar stays open
    (``Run.open_order``). The opening purchase fills at bar 0
    in both modes: it is the starting position, not a decision of the rules.

Skipping bars (``fast=True``)
    Between two state changes nothing can happen until the price reaches a level that follows
    from the state alone: the sell trigger Pa*(1+tau), the buy trigger Pa*(1-tau), and the
    prices at which the weight w = S*P / (S*P + C + R) (rising with P) leaves the band. The loop
    searches the float price array with numpy (windows that grow 4x, so the work is proportional
    to the distance travelled) for the next bar at or beyond a level and calls ``evaluate``
    there. The levels are tightened by what the rules will refuse anyway: an order is
    min(raw size, far-guardrail cap, cash or holdings cap) rounded down to the step, and must
    reach the step and the minimum notional, so each of those must (:func:`_levels` gives the
    closed forms; each is monotone in P). Without that, a weight parked just outside the band
    with a rebalance worth less than ``min_notional`` would make every bar a candidate. Levels
    are widened by a relative 1e-7 so float rounding can only add candidates, never lose one. A
    candidate that does not trade (blocked, rounded to zero) changes nothing, so the search
    resumes at the next bar with the same levels: every bar beyond a level is evaluated until
    one trades. Other events: every dividend bar is processed, and once the daily cap is
    reached the rest of that calendar day is skipped. ``fast=False`` is the plain reference loop
    that evaluates every bar; the tests prove both identical. (A trigger whose own size stays
    under ``min_notional`` while the caps allow more still costs one evaluation per bar beyond
    the trigger: correct, only slower.) Resting orders (``fill: limit``, :class:`Limit`) skip
    the same way with the rungs as the levels: while one rests, the next candidate is the first
    bar whose low reaches the buy limit or whose high the sell limit (widened alike), or that
    holds a corporate action; their cost is one ladder search per fill.

Numbers (``exact``)
    ``exact=True`` runs the rules on ``Decimal`` (prices enter as the shortest decimal text of
    the float read from the data, i.e. as written in the file): the live path itself, used by
    default since only candidate bars are evaluated. ``exact=False`` runs the same rules on floats
    (the rules module's float mode); the tests check it agrees with the Decimal run to the cent,
    order by order.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from fractions import Fraction

import numpy as np

from positions.strategy import ladder, rules

LEVEL_SLACK = 1e-7  # relative widening of the float levels
_SCAN_FIRST = 64  # first window of the candidate search, in bars; grows 4x up to _SCAN_MAX
_SCAN_MAX = 1 << 16
_SCAN_PY = 24  # bars compared one by one before the numpy windows
FILLS = ("same_bar", "next_bar", "limit")


class SetupError(ValueError):
    """Bad backtest inputs (not strategy fields): ``fields`` maps name -> sentence."""

    def __init__(self, fields: dict[str, str]):
        super().__init__(" ".join(fields.values()))
        self.fields = fields


TOO_LARGE = ("The run's amounts grow too large for exact decimal arithmetic (28 significant "
             "digits): use a shorter series, less cash or a wider trigger.")


@contextlib.contextmanager
def exact_arithmetic():
    """A run's exact (Decimal) arithmetic, a quantity or amount past 28 significant digits
    (InvalidOperation) refused as a :class:`SetupError` on ``cash``: the one refusal of a
    single backtest, a portfolio's (whichever holding's thread met it) and a sweep's cell."""
    try:
        yield
    except InvalidOperation:
        raise SetupError({"cash": TOO_LARGE}) from None


@dataclass(frozen=True)
class Setup:
    """What the backtest adds to the strategy: starting cash and weight, slippage, and the
    splits of an unadjusted series (``(date, ratio)`` pairs, the ratio exact as
    ``rules.split_ratio`` takes it: on the first bar on or after the
    date, before anything else, the book splits as a live position does, rules.apply_split)."""

    cash: Decimal = Decimal("10000")
    start_weight: Decimal = Decimal("0.5")
    slippage_bps: Decimal = Decimal("0")
    fill: str = "same_bar"  # "same_bar" | "next_bar" | "limit" (docs/strategy.md#next-bar-fills,
    # #resting-orders)
    splits: tuple = ()


def setup_errors(setup: Setup) -> dict[str, str]:
    errors = {}
    if not (isinstance(setup.cash, Decimal) and setup.cash.is_finite() and setup.cash > 0):
        errors["cash"] = "cash must be a number greater than 0."
    w = setup.start_weight
    if not (isinstance(w, Decimal) and w.is_finite() and 0 <= w <= 1):
        errors["start_weight"] = "start_weight must be between 0 and 1."
    s = setup.slippage_bps
    if not (isinstance(s, Decimal) and s.is_finite() and 0 <= s < rules.SLIPPAGE_BPS_MAX):
        errors["slippage_bps"] = "slippage_bps must be at least 0 and less than 10000."
    if setup.fill not in FILLS:
        errors["fill"] = "fill must be one of: " + ", ".join(FILLS) + "."
    for day, ratio in setup.splits:
        why = rules.split_ratio_error(ratio)
        if why:
            errors["splits"] = f"split of {day}: {why}"
    return errors


@dataclass(frozen=True, slots=True)
class Order:
    bar: int
    side: str  # "BUY" | "SELL"
    qty: Decimal | float
    price: Decimal | float  # fill price (bar price worsened by the slippage)
    commission: Decimal | float
    notional: Decimal | float
    kind: str  # "opening" | "buy_trigger" | "sell_trigger" | "guardrail_rebalance"


# Positional constructors that skip the frozen dataclasses' __setattr__ detour (equal objects).
_new_order = rules.fast_constructor(Order)
_new_state = rules.fast_constructor(rules.State)


@dataclass
class Run:
    """What a backtest did: its orders, every state change, the final state and totals."""

    orders: list[Order]
    # One row per bar whose processing changed the state; the state holds from that bar on.
    # The first row (bar -1) is the starting state.
    change_bar: np.ndarray  # int64
    change_qty: np.ndarray  # float64
    change_cash: np.ndarray
    change_receivable: np.ndarray
    change_anchor: np.ndarray  # NaN while unset
    qty: Decimal | float
    cash: Decimal | float
    receivable: Decimal | float
    anchor: Decimal | float | None
    commissions: Decimal | float
    dividends: Decimal | float  # net dividends paid into cash
    evaluations: int  # evaluate() calls: the work the skipping saved is len(series) - this
    bars: int
    exact: bool = True
    cancelled: int = 0  # next_bar: orders the fill bar's cash or shares no longer covered
    open_order: Order | None = None  # next_bar: placed on the last bar, never filled
    # limit: (order index, the ladder's trigger price, the limit) of each resting order filled
    rungs: tuple = ()


def schedule(days: np.ndarray, dividends: Iterable) -> tuple[dict, dict]:
    """Dividends -> ({bar: [i, ...]} ex, {bar: [i, ...]} pay), bars being the first bar on or
    after the date. A dividend that goes ex on or before the first bar entitles nothing (the
    position holds no shares before its opening purchase) and is dropped; one paid after the last
    bar stays receivable."""
    ex: dict[int, list[int]] = {}
    pay: dict[int, list[int]] = {}
    n = len(days)
    if n == 0:
        return ex, pay
    for i, d in enumerate(dividends):
        e = int(np.searchsorted(days, _day(d.ex_date), "left"))
        if e == 0 or e >= n:
            continue
        ex.setdefault(e, []).append(i)
        p = int(np.searchsorted(days, _day(d.pay_date), "left"))
        if p < n:
            pay.setdefault(p, []).append(i)
    return ex, pay


def _day(d) -> int:
    return int(np.datetime64(d, "D").astype(np.int64))


def run(series, cfg: rules.Config, setup: Setup = Setup(), dividends: Iterable = (), *,
        exact: bool = True, fast: bool = True, hold: bool = False,
        progress: Callable[[int], None] | None = None) -> Run:
    """Backtest ``cfg`` over ``series`` (anything with float ``prices`` and int ``days`` arrays).

    ``hold=True`` is buy-and-hold: the same opening purchase, then only dividends. Raises
    :class:`SetupError` for bad setup values and ``rules.RuleError`` for a bad configuration."""
    return simulate(series, Hold() if hold else Rules(), cfg, setup, dividends, exact=exact,
                    fast=fast, progress=progress)


def simulate(series, policy, cfg: rules.Config, setup: Setup = Setup(),
             dividends: Iterable = (), *, exact: bool = True, fast: bool = True,
             progress: Callable[[int], None] | None = None,
             switches: dict[int, rules.Config] | None = None,
             moves: dict[int, Callable] | None = None) -> Run:
    """A run of ``policy`` (what decides on the bars: :class:`Rules`, :class:`Hold`, or any
    object with ``evaluates_first_bar`` and ``loop(book, start, fast)``) over ``series``, from
    the opening purchase of ``setup``, with the fill policy ``setup.fill`` (:class:`SameBar` or
    :class:`NextBar`) and the corporate actions (:class:`Actions`: splits, dividends, and
    ``switches``, the configuration that holds from a bar on: a walk-forward's windows; and
    ``moves``, cash that comes or goes at a bar: a portfolio's rebalance)."""
    errors = setup_errors(setup)
    if errors:
        raise SetupError(errors)
    for c in (cfg, *(switches or {}).values()):
        cfg_errors = rules.config_errors(c)
        if cfg_errors:
            raise rules.RuleError("invalid_config", " ".join(cfg_errors.values()))
    book = Book(series, cfg, setup, list(dividends), exact, progress, switches or {},
                moves or {})
    return book.go(policy, fast)


# -- the fill policies ---------------------------------------------------------------------------


class SameBar:
    """An actionable proposal fills at once at its bar's price (docs/strategy.md#backtest)."""

    pending = None  # never an open order

    def place(self, book: Book, j: int, prop: rules.Proposal) -> None:
        book.fill(j, prop.side, prop.qty, prop.kind, prop=prop)

    def settle(self, book: Book, j: int) -> None:
        """Nothing is ever open."""

    def split(self, ratio, step, num) -> None:
        """Nothing is ever open."""

    def open_order(self, book: Book) -> Order | None:
        return None


class NextBar:
    """An actionable proposal is placed as an open order on its bar (the daily cap counts it
    there) and fills at the next bar's price (docs/strategy.md#next-bar-fills)."""

    def __init__(self):
        self.pending: tuple | None = None  # (bar placed, side, qty, kind)

    def place(self, book: Book, j: int, prop: rules.Proposal) -> None:
        self.pending = (j, prop.side, prop.qty, prop.kind)
        book.orders_today += 1

    def settle(self, book: Book, j: int) -> None:
        """The order placed on an earlier bar fills at bar ``j``'s price (trimmed to what the
        cash or shares cover, cancelled when that leaves nothing)."""
        if self.pending is None:
            return
        _placed, side, q, kind = self.pending
        self.pending = None
        if side == rules.SELL and q > book.S:
            q = book.round_qty(book.S)
        if not (q > 0 and book.fill(j, side, q, kind, count=False)):
            book.cancelled += 1

    def split(self, ratio, step, num) -> None:
        """A split on the fill bar: the open order's quantity x ratio, rounded down to the step
        (it fills after the split)."""
        if self.pending is not None:
            placed, side, q, kind = self.pending
            self.pending = (placed, side, num(rules.split_qty(q, ratio, step)), kind)

    def open_order(self, book: Book) -> Order | None:
        """The order still open after the last bar (at its placing bar's price)."""
        if self.pending is None:
            return None
        j, side, q, kind = self.pending
        P = book.price(j)
        notional = q * P
        notional = (rules.fround(notional, 1e6) if not book.exact
                    else notional.quantize(rules.MONEY_PLACES))
        return Order(j, side, q, P, rules.default_commission(book.c, q, P), notional, kind)


class WorkExceeded(Exception):
    """The runs inside :func:`evaluation_cap` derived resting pairs past its limit."""


_CAP: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("engine_cap", default=None)


@contextlib.contextmanager
def evaluation_cap(limit: int):
    """Runs inside count, together, the evaluations their resting pairs' derivations make
    (``fill: limit``: ``ladder.resting``'s searches, :attr:`ladder.RestingPair.evaluations`);
    past ``limit`` the run stops with :class:`WorkExceeded` (at most one derivation later).
    The budget (budget.py) bounds a run's own evaluations before it starts; a derivation's
    searches it can only estimate (a fixed-fraction ladder near min_notional climbs thousands
    of teeth), so a server process answering at once caps them here."""
    token = _CAP.set([limit])
    try:
        yield
    finally:
        _CAP.reset(token)


class Limit:
    """The ladder's rungs rest as limit orders (docs/strategy.md#resting-orders, ``fill:
    limit``): the pair :func:`ladder.resting` gives for the state at the end of a bar rests from
    the next bar; a bar whose range reaches a rung fills it (:func:`ladder.first_side`,
    :func:`ladder.limit_fill_price`: at the limit, or at the open when the bar opens through it;
    no slippage, a limit fills at its price or better), trimmed to the cash or shares
    (:func:`ladder.limit_fill_qty`); the other rung is cancelled and the new pair rests from the
    next bar, so a bar fills at most one order. A bar whose corporate actions change the book
    (a split, a dividend, a new walk-forward window) cancels the pair before its range is read.
    While a rung rests nothing else is proposed; when neither side rests (an ``always`` rung: no
    shares, or no cash; the daily cap) the bar is evaluated at its close and a proposal goes as
    a market order filled at the next bar, exactly as ``next_bar`` (:class:`NextBar`). Without
    OHLC data a bar's open, high and low are its close."""

    def __init__(self):
        self.market = NextBar()
        self.pair = None  # ladder.RestingPair resting from the next bar, or None
        self.key = None  # the state it was derived from
        self.limit_fills = 0
        self.triggers: list[tuple] = []  # (order index, the rung's ladder price, its limit)

    @property
    def pending(self):
        return self.market.pending

    def place(self, book: Book, j: int, prop: rules.Proposal) -> None:
        self.market.place(book, j, prop)

    def settle(self, book: Book, j: int) -> None:
        self.market.settle(book, j)

    def split(self, ratio, step, num) -> None:
        self.market.split(ratio, step, num)

    def open_order(self, book: Book) -> Order | None:
        return self.market.open_order(book)

    def rest(self, book: Book, j: int) -> None:
        """At the end of bar ``j``: the pair for the book as it stands rests from the next bar
        (derived again only when the book, its configuration or the daily cap changed)."""
        if self.market.pending is not None or book.Pa is None:
            self.pair = None
            return
        nxt = j + 1
        ot = book.orders_today if nxt < book.n and int(book.days[nxt]) == book.day else 0
        key = (book.S, book.C, book.R, book.Pa, id(book.cfg), ot >= book.cap)
        if self.pair is None or key != self.key:
            self.key = key
            self.pair = ladder.resting(rules.State(book.S, book.C, book.R, book.Pa), book.cfg,
                                       orders_today=ot)
            cap = _CAP.get()
            if cap is not None:
                cap[0] -= self.pair.evaluations
                if cap[0] < 0:
                    raise WorkExceeded("the resting orders' derivations passed the cap")

    def loop(self, book: Book, start: int, fast: bool = True) -> None:
        """Every bar from ``start`` (:meth:`bar_at`); ``fast`` skips those that can change
        nothing (``fast=False``: the reference, bar by bar)."""
        n = book.n
        if start > 0:
            self.rest(book, start - 1)
        # The bars' lows and highs as the scan reads them (a series of closes: the closes).
        if book.lows is None:
            lows = highs = book.p
            lowl = highl = book.plist
        else:
            lowl, highl = book.lows, book.highs
            lows, highs = np.asarray(lowl), np.asarray(highl)
        events = book.events
        ne = len(events)
        e = 0
        progress = book.progress
        tick = max(n // 400, 1)
        shown = 0
        j = start
        while j < n:
            if progress is not None and j - shown >= tick:
                progress(j)
                shown = j
            pair = self.pair
            if fast and self.market.pending is None and pair is not None and (
                    pair.buy is not None or pair.sell is not None):
                # Only a bar with a corporate action or whose range may reach a rung can
                # change anything: skip to the first such bar (the module's "Skipping bars";
                # the levels widened by LEVEL_SLACK, the bar itself then read exactly).
                while e < ne and events[e] < j:
                    e += 1
                nxt = int(events[e]) if e < ne else n
                if nxt > j:
                    k = nxt
                    if pair.sell is not None:
                        k = _scan(highs, j, k, float(pair.sell.limit) * (1.0 - LEVEL_SLACK),
                                  -math.inf, highl)
                    if pair.buy is not None:
                        k = _scan(lows, j, k, math.inf,
                                  float(pair.buy.limit) * (1.0 + LEVEL_SLACK), lowl)
                    j = k
                    if j >= n:
                        break
            self.bar_at(book, j)
            j += 1
        if progress is not None:
            progress(n)

    def bar_at(self, book: Book, j: int) -> None:
        """Bar ``j``: its actions, then the market order's fill or the resting pair against
        its range, the rules at its close when nothing rests, the pair for the next bar."""
        book.actions_at(j)
        filled = False
        if self.market.pending is not None:
            self.market.settle(book, j)
            filled = True
        elif self.pair is not None:
            if (book.S, book.C, book.R, book.Pa, id(book.cfg)) != self.key[:5]:
                self.pair = None  # the book changed under the rungs: cancelled
            else:
                filled = self.fill(book, j)
        if not filled and (self.pair is None or (self.pair.buy is None
                                                 and self.pair.sell is None)):
            book.evaluate_at(j)
        self.rest(book, j)
        book.record(j)

    def fill(self, book: Book, j: int) -> bool:
        """Bar ``j``'s range against the resting pair: the rung it reaches first fills."""
        pair = self.pair
        o, hi, lo = book.bar(j)
        bl = None if pair.buy is None else pair.buy.limit
        sl = None if pair.sell is None else pair.sell.limit
        if not book.exact:
            bl = None if bl is None else float(bl)
            sl = None if sl is None else float(sl)
        side = ladder.first_side(bl, sl, open=o, low=lo, high=hi)
        if side is None:
            return False
        r = pair.buy if side == rules.BUY else pair.sell
        Pf = ladder.limit_fill_price(side, bl if side == rules.BUY else sl, open=o, low=lo,
                                     high=hi)
        q = r.qty if book.exact else float(r.qty)
        q = ladder.limit_fill_qty(book.cfg, side, q, held=book.S, cash=book.C, price=Pf)
        self.pair = None
        d = int(book.days[j])
        if d != book.day:
            book.day = d
            book.orders_today = 0
        if not (q > 0 and book.fill(j, side, q, r.kind, price=Pf)):
            book.cancelled += 1
            return False
        self.limit_fills += 1
        self.triggers.append((len(book.orders) - 1, r.rung, r.limit))
        return True


FILL_POLICIES = {"same_bar": SameBar, "next_bar": NextBar, "limit": Limit}


# -- the corporate actions -------------------------------------------------------------------------


class Actions:
    """What happens to the book at fixed bars, before the bar's fill and evaluation: the
    configuration switches first (a walk-forward's window starts), then a split, then the
    ex-dates, then the pay-dates (docs/strategy.md#backtest, #splits), then the cash moves:
    ``moves[j](book, j)`` answers the amount added to the cash at bar ``j`` (negative: taken;
    the caller keeps the cash non-negative: rules.portfolio.rebalance does)."""

    def __init__(self, days: np.ndarray, setup: Setup, dividends: list, num,
                 switches: dict[int, rules.Config], moves: dict[int, Callable] | None = None):
        n = len(days)
        self.num = num
        self.dps = [num(d.dps) for d in dividends]
        self.net = [num(0)] * len(dividends)
        self.ex_at, self.pay_at = schedule(days, dividends)
        self.split_at: dict[int, Fraction] = {}  # k = new/old, exactly
        for day, ratio in setup.splits:  # a split before the first bar changes nothing held
            j = int(np.searchsorted(days, _day(day), "left"))
            if 0 < j < n:
                self.split_at[j] = self.split_at.get(j, Fraction(1)) * rules.split_ratio(ratio)
        self.switches = switches
        self.moves = moves or {}
        self.bars = np.array(sorted(set(self.ex_at) | set(self.pay_at) | set(self.split_at)
                                    | set(switches) | set(self.moves)), dtype=np.int64)

    def at(self, book: Book, j: int) -> None:
        cfg = self.switches.get(j)
        if cfg is not None:  # a new window: its configuration from this bar on
            book.configure(cfg)
        num = self.num
        if j in self.split_at:
            ratio = self.split_at[j]
            split = rules.apply_split(qty=book.S, cash=book.C, anchor=book.Pa, ratio=ratio,
                                      step=book.step, price_before=book.plist[j - 1])
            book.S, book.C = num(split.qty), num(split.cash)
            book.Pa = None if split.anchor is None else num(split.anchor)
            book.fills.split(ratio, book.step, num)
            book.changed = True
        for i in self.ex_at.get(j, ()):
            _, net = rules.dividend_amounts(dps=self.dps[i], shares=book.S,
                                            withholding_rate=book.wh)
            self.net[i] = net
            book.R += net
            if book.Pa is not None:
                book.Pa -= self.dps[i]
            book.changed = True
        for i in self.pay_at.get(j, ()):
            net = self.net[i]
            book.C += net
            book.R -= net
            book.received += net
            book.changed = True
        move = self.moves.get(j)
        if move is not None:
            amount = move(book, j)
            if amount:
                book.C += num(amount)
                book.changed = True


# -- the book ------------------------------------------------------------------------------------


class Book:
    """The position during a run: its state (S, C, R, Pa), its orders and the record of its
    changes, with the composed fill policy (``fills``) and corporate actions (``actions``).
    A policy's loop reads and changes it through the methods below."""

    def __init__(self, series, cfg, setup, dividends, exact, progress, switches, moves=None):
        self.p = np.ascontiguousarray(series.prices, dtype=np.float64)
        # For the first bars of a scan, one by one: a data.Series keeps its own, built once
        # (when its prices are already this float64 array, the list is the same).
        self.plist = (series.price_list if self.p is series.prices
                      and hasattr(series, "price_list") else self.p.tolist())
        self.days = np.ascontiguousarray(series.days, dtype=np.int64)
        self.n = n = len(self.p)
        lows = getattr(series, "lows", None)
        self.opens = self.highs = self.lows = None
        if lows is not None:  # OHLC bars: the resting orders read their range (Limit)
            self.opens = np.asarray(series.opens, dtype=np.float64).tolist()
            self.highs = np.asarray(series.highs, dtype=np.float64).tolist()
            self.lows = np.asarray(lows, dtype=np.float64).tolist()
        self.exact = exact
        self.progress = progress
        num = _dec if exact else float
        self.num = num
        self.configure(cfg)
        self.bps = setup.slippage_bps
        self.start_weight = num(setup.start_weight)
        self.fills = FILL_POLICIES[setup.fill]()
        self.cancelled = 0
        self.actions = Actions(self.days, setup, dividends, num, switches, moves)
        self.events = self.actions.bars
        # State.
        zero = num(0)
        self.S = zero
        self.C = num(setup.cash)
        self.R = zero
        self.Pa = None
        self.orders_today = 0
        self.day = None
        self.orders: list[Order] = []
        self.commissions = zero
        self.received = zero
        self.evaluations = 0
        self.changed = False
        self.rows = [(-1, 0.0, float(self.C), 0.0, math.nan)]
        if n:
            ends = getattr(series, "day_ends", None)
            if ends is None:
                ends = np.append(np.flatnonzero(np.diff(self.days)), n - 1)
            self.day_starts = ends + 1  # the first bar of the next day (n after the last)

    def configure(self, cfg: rules.Config) -> None:
        """The strategy's configuration and the constants drawn from it (changed again by a
        configuration switch of the corporate actions)."""
        num = self.num
        self.cfg = cfg
        self.c = num(cfg.commission_rate)
        self.wh = num(cfg.withholding_tax_rate)
        self.cap = cfg.max_orders_per_day
        if cfg.qty_step is not None:
            self.step = num(cfg.qty_step)
        elif not cfg.fractional:
            self.step = num(1)
        else:
            self.step = num(rules.QTY_PLACES)
        self.k = _consts(cfg)  # constants of the levels

    # -- one bar ------------------------------------------------------------------------------

    def price(self, j: int):
        x = self.plist[j]
        return _dec(x) if self.exact else x

    def actions_at(self, j: int) -> None:
        """The bar's corporate actions (:class:`Actions`)."""
        self.actions.at(self, j)

    def evaluate_at(self, j: int) -> None:
        """The rules at bar ``j``; an actionable proposal goes to the fill policy."""
        d = int(self.days[j])
        if d != self.day:
            self.day = d
            self.orders_today = 0
        self.evaluations += 1
        P = self.plist[j]
        dec = rules.evaluate(_new_state(self.S, self.C, self.R, self.Pa), self.cfg,
                             _dec(P) if self.exact else P, orders_today=self.orders_today,
                             explain=False)
        if dec.anchor_set:
            self.Pa = dec.anchor
            self.changed = True
        prop = dec.proposal
        if prop is not None:
            self.fills.place(self, j, prop)

    def round_qty(self, q):
        """A quantity toward zero to the step: the rules' rounding
        (docs/strategy.md#evaluation, step 8)."""
        step = self.step
        if not self.exact:
            return rules.fround(math.floor(q / step + 1e-9) * step, 1e8)
        return ((q / step).to_integral_value(ROUND_DOWN) * step).quantize(rules.QTY_PLACES,
                                                                        ROUND_DOWN)

    def fill_price(self, j: int, side: str):
        """The bar price worsened by the slippage, to 6 places (half-even, in Decimal in both
        modes so that the float run fills at exactly the same prices)."""
        if not self.bps:
            return self.price(j)
        Pf = rules.slipped_price(float(self.p[j]), side, self.bps)
        return Pf if self.exact else float(Pf)

    def affordable(self, q, Pf):
        """The largest quantity up to ``q``, on the step, that the cash pays for at ``Pf``
        with its commission: ``q`` itself unless the slippage (the proposal was sized at the
        bar price) or the commission's rounding make it overdraw. 0 when nothing fits."""
        if not self.exact and self.C - q * Pf * (1.0 + self.c) >= 1e-6 + 1e-12 * abs(self.C):
            return q  # paid for with a micro to spare: no commission rounding can overdraw
        return rules.covered_qty(self.cfg, rules.BUY, q, held=self.S, cash=self.C, price=Pf)

    def bar(self, j: int):
        """(open, high, low) of bar ``j``: the OHLC columns, or the close thrice."""
        if self.lows is None:
            x = self.price(j)
            return x, x, x
        o, h, lo = self.opens[j], self.highs[j], self.lows[j]
        return (_dec(o), _dec(h), _dec(lo)) if self.exact else (o, h, lo)

    def fill(self, j: int, side: str, q, kind: str, count: bool = True, price=None,
             prop: rules.Proposal | None = None) -> bool:
        """Fill ``q`` at bar ``j``'s price worsened by the slippage, or at ``price`` (a limit's
        price, as it is), trimmed to what the cash pays for a buy. ``prop``: the proposal this
        fill carries out; on floats, when it fills its own quantity at its own price, its
        commission and notional are this fill's (``rules.evaluate`` computes them as
        ``rules.default_commission`` does), not computed a second time. (In Decimal the notional
        is quantized here in the default context, which refuses a value past 28 digits as the
        command reports it; the proposal's wide context would not.)"""
        if price is not None:
            Pf = price
        elif self.bps:
            Pf = self.fill_price(j, side)
        else:  # fill_price without slippage: the bar's price (the float hot path, inline)
            Pf = self.plist[j] if not self.exact else _dec(self.plist[j])
        if side == rules.BUY:
            q = self.affordable(q, Pf)
            if not q > 0:
                return False
        if prop is not None and not self.exact and q == prop.qty and Pf == prop.price:
            k = prop.commission
            notional = prop.notional
        else:
            k = rules.default_commission(self.c, q, Pf)
            notional = q * Pf
            notional = (rules.fround(notional, 1e6) if not self.exact
                        else notional.quantize(rules.MONEY_PLACES))
        self.S, self.C = rules.apply_fill(qty=self.S, cash=self.C, side=side, fill_qty=q,
                                          price=Pf, commission=k)
        self.Pa = Pf
        if count:
            self.orders_today += 1
        self.orders.append(_new_order(j, side, q, Pf, k, notional, kind))
        self.commissions += k
        self.changed = True
        return True

    def open(self) -> bool:
        """The opening purchase at bar 0: buy_to(start weight) at the fill price, rounded."""
        d = int(self.days[0])
        self.day = d
        self.orders_today = 0
        Pf = self.fill_price(0, rules.BUY)
        raw = rules.buy_to(self.start_weight, qty=self.S, cash=self.C, receivable=self.R,
                           price=Pf, commission_rate=self.c)
        if not raw > 0:
            return False
        q = self.round_qty(raw)
        if not q > 0:
            return False
        return self.fill(0, rules.BUY, q, "opening")

    def record(self, j: int) -> None:
        if self.changed:
            Pa = math.nan if self.Pa is None else self.Pa
            if self.exact:
                self.rows.append((j, float(self.S), float(self.C), float(self.R), float(Pa)))
            else:  # already floats (np.array converts the rows)
                self.rows.append((j, self.S, self.C, self.R, Pa))
            self.changed = False

    def go(self, policy, fast: bool) -> Run:
        """Bar 0 (its actions, the opening purchase, or the policy's first evaluation when that
        rounds to nothing), then the policy's loop from the next bar."""
        n = self.n
        if n:
            self.actions_at(0)
            start = 1 if self.open() else 0
            if start == 0 and policy.evaluates_first_bar:
                self.evaluate_at(0)
                start = 1
            self.record(0)
            policy.loop(self, start, fast)
        rows = np.array(self.rows, dtype=np.float64)
        return Run(
            orders=self.orders,
            change_bar=rows[:, 0].astype(np.int64),
            change_qty=rows[:, 1].copy(),
            change_cash=rows[:, 2].copy(),
            change_receivable=rows[:, 3].copy(),
            change_anchor=rows[:, 4].copy(),
            qty=self.S, cash=self.C, receivable=self.R, anchor=self.Pa,
            commissions=self.commissions, dividends=self.received,
            evaluations=self.evaluations, bars=n, exact=self.exact,
            cancelled=self.cancelled, open_order=self.fills.open_order(self),
            rungs=tuple(getattr(self.fills, "triggers", ())),
        )

    def levels(self) -> tuple[float, float]:
        """(hi, lo): only a bar whose price is >= hi can sell and only one <= lo can buy."""
        if not self.exact:  # floats already
            return _levels(self.S, self.C, self.R, self.Pa, self.k)
        return _levels(float(self.S), float(self.C), float(self.R), float(self.Pa), self.k)


# -- the policies: what decides on a bar ----------------------------------------------------------


class Hold:
    """Buy-and-hold: the opening purchase, then only the corporate actions."""

    evaluates_first_bar = False

    def loop(self, book: Book, start: int, fast: bool) -> None:
        events = book.events
        for j in events[events >= start].tolist():
            book.actions_at(j)
            book.fills.settle(book, j)
            book.record(j)
        if book.progress is not None:
            book.progress(book.n)


class Rules:
    """The strategy's rules on every bar that needs them (docs/strategy.md#backtest)."""

    evaluates_first_bar = True

    def loop(self, book: Book, start: int, fast: bool) -> None:
        own = getattr(book.fills, "loop", None)  # resting orders read every bar's range
        if own is not None:
            own(book, start, fast)
        elif fast:
            self.loop_fast(book, start)
        else:
            self.loop_plain(book, start)

    def loop_plain(self, book: Book, start: int) -> None:
        """The reference: every bar, its actions, the open order's fill, then evaluate."""
        for j in range(start, book.n):
            book.actions_at(j)
            book.fills.settle(book, j)
            book.evaluate_at(j)
            book.record(j)

    def loop_fast(self, book: Book, i: int) -> None:
        """Only the bars that can change something (the module's "Skipping bars")."""
        n = book.n
        events = book.events
        ne = len(events)
        e = int(np.searchsorted(events, i, "left"))
        days = book.days
        fills = book.fills
        progress = book.progress
        tick = max(n // 400, 1)
        shown = 0
        while i < n:
            if progress is not None and i - shown >= tick:
                progress(i)
                shown = i
            if fills.pending is not None:  # next_bar: this bar fills it, then is evaluated
                book.actions_at(i)
                fills.settle(book, i)
                book.evaluate_at(i)
                book.record(i)
                i += 1
                continue
            while e < ne and events[e] < i:
                e += 1
            nxt = int(events[e]) if e < ne else n
            if nxt == i or book.Pa is None:
                if nxt == i:
                    book.actions_at(i)
                book.evaluate_at(i)
                book.record(i)
                i += 1
                continue
            if book.orders_today >= book.cap and days[i] == book.day:
                # The rest of this calendar day can only be blocked by the cap.
                k = int(np.searchsorted(book.day_starts, i, "right"))
                i = min(int(book.day_starts[k]), nxt)
                continue
            hi, lo = book.levels()
            j = _scan(book.p, i, nxt, hi, lo, book.plist)
            if j >= nxt:
                i = nxt
                continue
            book.evaluate_at(j)
            book.record(j)
            i = j + 1
        if progress is not None:
            progress(n)


@dataclass(frozen=True, slots=True)
class _Consts:
    """A configuration's constants of :func:`_levels`, with the products it uses on every call
    computed once (the same float operations in the same order: the levels are unchanged)."""

    tau: float
    low: float
    high: float
    m: float  # min_notional
    c: float  # commission rate
    step: float  # quantity step, shaved so float rounding cannot make it unreachable
    up1: float  # 1 + tau
    dn1: float  # 1 - tau
    l1: float  # 1 - low
    h1: float  # 1 - high
    c1: float  # 1 + c
    bl: float  # 1 + low*c
    bh: float  # 1 + high*c
    m_up: float  # m * (1 - LEVEL_SLACK)
    m_sl: float  # m * (1 - low*c)
    m_sh: float  # m * (1 - high*c)
    m_bl: float  # m * (1 + low*c)
    m_bh: float  # m * (1 + high*c)
    st_sl: float  # step * (1 - low*c)
    st_sh: float  # step * (1 - high*c)
    st_bl: float  # step * (1 + low*c)
    st_bh: float  # step * (1 + high*c)
    st_c1: float  # step * (1 + c)


def _consts(cfg: rules.Config) -> _Consts:
    if cfg.qty_step is not None:
        step = float(cfg.qty_step)
    elif not cfg.fractional:
        step = 1.0
    else:
        step = float(rules.QTY_PLACES)
    tau, low, high = float(cfg.trigger_pct), float(cfg.guard_low), float(cfg.guard_high)
    m, c, st = float(cfg.min_notional), float(cfg.commission_rate), step * (1.0 - 1e-6)
    sl, sh, bl, bh = 1.0 - low * c, 1.0 - high * c, 1.0 + low * c, 1.0 + high * c
    return _Consts(tau, low, high, m, c, st, 1.0 + tau, 1.0 - tau, 1.0 - low, 1.0 - high,
                   1.0 + c, bl, bh, m * (1.0 - LEVEL_SLACK), m * sl, m * sh, m * bl, m * bh,
                   st * sl, st * sh, st * bl, st * bh, st * (1.0 + c))


def _levels(S: float, C: float, R: float, Pa: float, k: _Consts) -> tuple[float, float]:
    """The price levels of the fast path: necessary conditions for an order, in closed form.

    The order ``evaluate`` can make at price P is min(raw, far-guardrail cap, cash or holdings
    cap) rounded down to the step st, and it must reach the step and the minimum notional m.
    So the raw size and both caps must each be >= st and >= m/P in shares. With K = C + R,
    l/h the guardrails and c the commission rate:

    - a sell needs a sell trigger (P >= Pa*(1+tau)) or, without one, a guardrail sell
      (S*P*(1-h) - h*K) / (P*(1-h*c)) big enough; caps sell_to(l) = (S*P*(1-l) - l*K) /
      (P*(1-l*c)) and the holdings S;
    - a buy needs a buy trigger (P <= Pa*(1-tau)) or a guardrail buy (l*K - S*P*(1-l)) /
      (P*(1+l*c)) big enough; caps buy_to(h) = (h*K - S*P*(1-h)) / (P*(1+h*c)) and the cash
      C / (P*(1+c)).

    Each condition is monotone in P and gives a bound on P; a side whose condition cannot hold
    has no level. With m = 0 and a tiny step these are the two triggers and the prices at which
    the weight leaves the band. A bound is only tightened where the algebra is unambiguous
    (positive denominators); elsewhere it is left open, which only costs an evaluation."""
    # min(a, b) and max(a, b) written out (b if b < a else a, b if b > a else a: the same
    # value, NaN or not, at a third of a builtin call's cost; ~10 of them a trade)
    inf = math.inf
    low, high = k.low, k.high
    K = C + R
    m_up = k.m_up

    # -- sells --
    if S > 0 and S >= k.step:
        side = Pa * k.up1
        Sl = S * k.l1
        if high < 1.0:
            hK = high * K
            Sh = S * k.h1
            g = (k.m_sh + hK) / Sh
            den = Sh - k.st_sh
            if den > 0:
                x = hK / den
                g = x if x > g else g
            side = g if g < side else side
        lK = low * K
        cap = (k.m_sl + lK) / Sl
        den = Sl - k.st_sl
        if den > 0:
            x = lK / den
            cap = x if x > cap else cap
        hi = cap if cap > side else side
        x = k.m / S
        hi = (x if x > hi else hi) * (1.0 - LEVEL_SLACK)
    else:
        hi = inf

    # -- buys --
    if not (C > 0 and C / k.c1 >= m_up):
        return hi, -inf
    lo = Pa * k.dn1
    if low > 0:
        lK = low * K
        if S > 0:
            Sl = S * k.l1
            g = (lK - k.m_bl) / Sl
            x = lK / (Sl + k.st_bl)
            g = x if x < g else g
        elif lK / k.bl >= m_up:
            g = lK / k.st_bl  # weight 0 < low on every bar
        else:
            g = -inf
        lo = g if g > lo else lo
    if high < 1.0:
        hK = high * K
        if S > 0:
            Sh = S * k.h1
            cap = (hK - k.m_bh) / Sh
            x = hK / (Sh + k.st_bh)
            cap = x if x < cap else cap
        elif hK / k.bh >= m_up:
            cap = hK / k.st_bh
        else:
            cap = -inf
        lo = cap if cap < lo else lo
    else:
        x = K / k.st_c1
        lo = x if x < lo else lo
    x = C / k.st_c1
    lo = x if x < lo else lo
    return hi, lo * (1.0 + LEVEL_SLACK) if lo > 0 else lo


def _scan(p: np.ndarray, i: int, limit: int, hi: float, lo: float,
          plist: list[float] | None = None) -> int:
    """The first bar in [i, limit) with p >= hi or p <= lo, else ``limit``. The first
    :data:`_SCAN_PY` bars are compared one by one on ``plist`` (``p`` as a list; a level is
    usually reached within a few bars, where numpy's per-call cost dominates), then windows
    that grow so the work is proportional to the distance travelled."""
    if hi == math.inf and lo == -math.inf:
        return limit
    if plist is not None:
        e = min(i + _SCAN_PY, limit)
        for j in range(i, e):
            x = plist[j]
            if x >= hi or x <= lo:
                return j
        i = e
    w = _SCAN_FIRST
    while i < limit:
        e = min(i + w, limit)
        seg = p[i:e]
        m = (seg >= hi) | (seg <= lo)
        k = int(m.argmax())
        if m[k]:
            return i + k
        i = e
        if w < _SCAN_MAX:
            w <<= 2
    return limit


def _dec(x) -> Decimal:
    if type(x) is Decimal:
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(x)
