"""The next-trigger ladder (docs/strategy.md#ladder): from a position's state alone, the
highest price at or below which the next buy fires and the lowest at or above which the next sell
fires, with the proposal each would give (after the caps, the rounding and the minimum notional).

Pure: the standard library and :mod:`positions.strategy.rules`. Every answer comes from
``rules.evaluate`` itself, so the ladder cannot disagree with the rules; this module only decides
*where to look*. Prices live on the 6-decimal grid that prices are stored with.

How it searches
    The side an evaluation takes is monotone in the price: the stock weight w = S*P / V never
    falls as P rises, so the buy side (w below the low guardrail, or a buy trigger with w at most
    the high guardrail) is a set of prices closed downward and the sell side (w above the high
    guardrail, or a sell trigger with w at least the low guardrail) one closed upward, and the
    two never meet. A bisection over the grid finds the edge of each side (``rules.side_at``, the
    side choice of ``rules.evaluate`` itself). Inside
    a side an order fires once its size, after the caps and the rounding, reaches the step and
    the minimum notional; from the side's edge the search walks outward in steps that double
    (1, 2, 4, ... micro-units) to the first grid price where ``evaluate`` proposes, then bisects
    back to the first such price. The sizes grow as the price moves away from the edge for every
    sizing near the edge; a window of firing prices narrower than the doubling step before the
    first one found would be missed (the property tests look for one and find none).

    The daily cap and the open-order check block at every price alike, so the ladder is computed
    without them: it is where the next order fires once nothing blocks it.

Beyond a guardrail at every price
    A position with no shares has the weight 0 whatever the price: under its low guardrail, it
    buys at *every* price up to the one where its buy (the guardrail's target, a fixed amount of
    cash) rounds to less than one step. With fractional shares (a step of 10^-8) that is the
    target over 10^-8: 2,500 of cash to place gives 2.5 * 10^11. The number is right (at it the
    rules buy 10^-8 shares, above it nothing) but says nothing about a trigger: such a rung is
    marked ``always`` (likewise a sell with shares and no cash: the weight is 1), and the API
    answers it with no price and no proposal ("buys at any price") instead of presenting that
    bound as a trigger price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from positions.strategy import rules
from positions.strategy.rules.evaluate import params as _params  # evaluate's cached constants

TICK = rules.MONEY_PLACES  # the price grid: 6 decimal places
DEFAULT_MAX_PRICE = Decimal(10) ** 12  # the search's ceiling unless the caller gives its own
_TEETH = 64  # at most this many rounding teeth are climbed (see _Search.climb)


@dataclass(frozen=True, slots=True)
class Rung:
    """One side of the ladder: the price at which it fires and what evaluating there proposes."""

    side: str  # "BUY" | "SELL"
    price: Decimal
    proposal: rules.Proposal
    # The state is beyond this side's guardrail whatever the price (no shares: the weight is 0,
    # under the low guardrail; shares but no cash: 1, over the high one), so the side fires
    # at every price up to (a buy) or from (a sell) ``price``, not from a trigger on.
    always: bool = False


@dataclass(frozen=True, slots=True)
class Ladder:
    """The next buy (at or below ``buy.price``) and the next sell (at or above ``sell.price``);
    None for a side that fires at no price on the grid up to ``max_price``."""

    buy: Rung | None
    sell: Rung | None
    evaluations: int  # rules.evaluate calls the search took


class _Search:
    def __init__(self, state: rules.State, cfg: rules.Config, top: int, explain: bool = True):
        self.state = _decimal_state(state)
        self.cfg = cfg
        self.top = top  # the highest grid index (price = index * TICK)
        self.explain = explain  # the rungs' proposals with their sentences
        self.evaluations = 0

    def side(self, n: int) -> str | None:
        return rules.side_at(self.state, self.cfg, n * TICK)

    def fires(self, n: int, side: str, explain: bool = False) -> rules.Proposal | None:
        """The actionable proposal of ``side`` at grid index ``n``, if evaluate makes one (its
        sentence only with ``explain``: the search reads the side and the size alone)."""
        self.evaluations += 1
        try:
            d = rules.evaluate(self.state, self.cfg, n * TICK, explain=explain)
        except InvalidOperation:  # a size past 28 significant digits: no order could hold it
            return None
        p = d.proposal
        return p if p is not None and p.side == side else None

    def rung(self, side: str, n: int, prop: rules.Proposal) -> Rung:
        """The rung found at grid index ``n``: its proposal evaluated again with the sentence
        when the ladder is explained (``explain`` changes nothing else)."""
        if self.explain:
            prop = self.fires(n, side, explain=True)
        return Rung(side, prop.price, prop)

    def hint(self, side: str) -> int | None:
        """Where the side's edge usually lies, to start its search from: the anchor's trigger
        price (``rules.evaluate``'s own bound) on the grid; None without an anchor. Only a
        starting point: the search answers the same from anywhere."""
        a = self.state.anchor
        if a is None or not a > 0:
            return None
        p = _params(self.cfg, False)
        n = int((a * (p.down if side == rules.BUY else p.up)) / TICK)
        return min(max(n, 1), self.top)

    def last_true(self, ok, h: int) -> int:
        """The highest grid index where ``ok`` holds (0 if none), ``ok`` holding on every
        index up to it and on none above: from ``h`` outward in doubling steps until ``ok``
        changes, then a bisection between the two."""
        top = self.top
        if ok(h):
            lo, d = h, 1
            while True:
                n = lo + d
                if n >= top:
                    if ok(top):
                        return top
                    hi = top
                    break
                if not ok(n):
                    hi = n
                    break
                lo, d = n, d * 2
        else:
            hi, d = h, 1
            while True:
                n = hi - d
                if n <= 1:
                    if not ok(1):
                        return 0
                    lo = 1
                    break
                if ok(n):
                    lo = n
                    break
                hi, d = n, d * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return lo

    def edge(self, side: str) -> int | None:
        """The buy side's highest grid index, or the sell side's lowest; None if it is empty.
        Searched from the :meth:`hint` when there is one, else by bisecting the whole grid."""
        h = self.hint(side)
        if h is not None:
            if side == rules.BUY:
                e = self.last_true(lambda n: self.side(n) == rules.BUY, h)
                return e or None
            e = self.last_true(lambda n: self.side(n) != rules.SELL, h) + 1
            return e if e <= self.top else None
        if side == rules.BUY:
            if self.side(1) != rules.BUY:
                return None
            lo, hi = 1, self.top + 1  # side(lo) is BUY; hi is past it or past the grid
            if self.side(self.top) == rules.BUY:
                return self.top
            hi = self.top
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.side(mid) == rules.BUY:
                    lo = mid
                else:
                    hi = mid
            return lo
        if self.side(self.top) != rules.SELL:
            return None
        if self.side(1) == rules.SELL:
            return 1
        lo, hi = 1, self.top  # side(hi) is SELL, side(lo) is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.side(mid) == rules.SELL:
                hi = mid
            else:
                lo = mid
        return hi

    def first(self, side: str, start: int) -> Rung | None:
        """From the side's edge ``start``, walking away from the other side, the first grid
        index where ``side`` fires."""
        sign = 1 if side == rules.SELL else -1
        prop = self.fires(start, side)
        if prop is not None:
            return self.rung(side, start, prop)
        last_quiet = start
        d = 1
        while True:
            n = start + sign * d
            if n < 1 or n > self.top:
                n = 1 if sign < 0 else self.top
                if n == last_quiet:
                    return None
            prop = self.fires(n, side)
            if prop is not None:
                hit = n
                break
            if n in (1, self.top):
                return None
            last_quiet = n
            d *= 2
        # Bisect between the last quiet index and the first firing one found.
        quiet = last_quiet
        while abs(hit - quiet) > 1:
            mid = (hit + quiet) // 2
            p = self.fires(mid, side)
            if p is not None:
                hit, prop = mid, p
            else:
                quiet = mid
        if side == rules.BUY:
            hit, prop = self.climb(hit, prop, start)
        return self.rung(side, hit, prop)

    def qty(self, n: int):
        """The rounded quantity evaluate computes at ``n`` (proposed or blocked), 0 for none."""
        self.evaluations += 1
        try:
            d = rules.evaluate(self.state, self.cfg, n * TICK, explain=False)
        except InvalidOperation:
            return Decimal(0)
        p = d.proposal or d.blocked
        return p.qty if p is not None and p.side == rules.BUY else Decimal(0)

    def climb(self, hit: int, prop: rules.Proposal, edge: int):
        """Buys: the quantity never grows as the price rises (every size and cap of a buy falls
        with P), so the prices of one rounded quantity form an interval (a *tooth*) over which
        the notional q*P rises. Rounding to a coarse step makes the notional saw-toothed: a
        smaller quantity at a higher price can still reach the minimum at the top of its
        tooth. From the first firing price found, go up tooth by tooth toward the side's edge
        while the top of the next tooth fires (at most _TEETH teeth)."""
        for _ in range(_TEETH):
            # The top of hit's tooth: the highest index <= edge whose quantity is still >= q.
            q = prop.qty
            lo, hi = hit, edge + 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.qty(mid) >= q:
                    lo = mid
                else:
                    hi = mid
            top_prop = self.fires(lo, rules.BUY)
            if top_prop is None:  # cannot happen while q*P rises inside a tooth; keep hit
                return hit, prop
            hit, prop = lo, top_prop
            if hit >= edge:
                return hit, prop
            # The next tooth up: its quantity is below q; does its top fire?
            q2 = self.qty(hit + 1)
            if not q2 > 0:
                return hit, prop
            lo, hi = hit + 1, edge + 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.qty(mid) >= q2:
                    lo = mid
                else:
                    hi = mid
            nxt = self.fires(lo, rules.BUY)
            if nxt is None:
                return hit, prop
            hit, prop = lo, nxt
        return hit, prop


def _decimal_state(state: rules.State) -> rules.State:
    def dec(x):
        return x if x is None or type(x) is Decimal else Decimal(str(x))

    return rules.State(dec(state.qty), dec(state.cash), dec(state.receivable), dec(state.anchor))


def ladder(state: rules.State, cfg: rules.Config, *,
           max_price: Decimal = DEFAULT_MAX_PRICE, explain: bool = True) -> Ladder:
    """The ladder of a position in ``state`` with configuration ``cfg``, over the prices of the
    6-decimal grid from 0.000001 to ``max_price``; ``explain=False`` leaves the rungs'
    proposals without their sentences (``Proposal.reason``; nothing else changes). Raises
    ``rules.RuleError`` for an invalid configuration."""
    _params(cfg, False)  # validates the configuration (once per Config object)
    top = int((Decimal(max_price) / TICK).to_integral_value())
    if top < 1:
        raise rules.RuleError("invalid_price", "max_price must be at least 0.000001.")
    s = _Search(state, cfg, top, explain)
    rungs = {}
    for side in (rules.BUY, rules.SELL):
        start = s.edge(side)
        rungs[side] = None if start is None else s.first(side, start)
    st = s.state
    always = {rules.BUY: st.qty == 0 and cfg.guard_low > 0,
              rules.SELL: st.qty > 0 and st.cash + st.receivable == 0 and cfg.guard_high < 1}
    for side, rung in rungs.items():
        if rung is not None and always[side]:
            rungs[side] = Rung(rung.side, rung.price, rung.proposal, always=True)
    return Ladder(rungs[rules.BUY], rungs[rules.SELL], s.evaluations)


# -- resting orders (docs/strategy.md#resting-orders) --------------------------------------------

TICK_UNDER_ONE = Decimal("0.0001")  # the exchange tick below 1
TICK_FROM_ONE = Decimal("0.01")  # at or above 1 (brokers refuse sub-penny limits there)
_TICK_WALK = 64  # ticks tried away from the rung when its rounded price proposes nothing


def limit_price(price, side: str) -> Decimal:
    """``price`` on the exchange tick: a buy rounded down, a sell up, so the limit never lies on
    the wrong side of its trigger (0.01 at or above 1, 0.0001 below; 0 for a buy under 0.0001)."""
    p = Decimal(price) if type(price) is not Decimal else price
    if side == rules.BUY:
        q = p.quantize(TICK_FROM_ONE, ROUND_FLOOR)
        return q if q >= 1 else p.quantize(TICK_UNDER_ONE, ROUND_FLOOR)
    q = p.quantize(TICK_UNDER_ONE, ROUND_CEILING)
    return q if q < 1 else p.quantize(TICK_FROM_ONE, ROUND_CEILING)


def _next_tick(price: Decimal, side: str) -> Decimal:
    """The tick one step further from the other side: down for a buy, up for a sell."""
    if side == rules.BUY:
        return price - (TICK_FROM_ONE if price > 1 else TICK_UNDER_ONE)
    return price + (TICK_FROM_ONE if price >= 1 else TICK_UNDER_ONE)


@dataclass(frozen=True, slots=True)
class Resting:
    """A rung resting as a limit order: ``side`` ``qty`` at ``limit`` (on the exchange tick),
    the proposal ``rules.evaluate`` makes at that price (``kind`` says which rung), and the
    ladder's own trigger price ``rung`` (6 places) it was rounded from."""

    side: str
    limit: Decimal
    qty: Decimal
    kind: str  # "buy_trigger" | "sell_trigger" | "guardrail_rebalance"
    rung: Decimal
    proposal: rules.Proposal


@dataclass(frozen=True, slots=True)
class RestingPair:
    buy: Resting | None
    sell: Resting | None
    evaluations: int = 0  # rules.evaluate calls its derivation took (the ladder's and the walk's)


def resting(state: rules.State, cfg: rules.Config, *, orders_today: int = 0,
            has_open_order: bool = False, guard_blocked: bool = False,
            of: Ladder | None = None) -> RestingPair:
    """The limit orders a position with ``order_type: limit`` keeps resting
    (docs/strategy.md#resting-orders): each side of its ladder (``of``, else computed here),
    its price rounded onto the exchange tick away from the other side, and the quantity
    ``rules.evaluate`` proposes at that price (the checks included: the daily cap with
    ``orders_today``, an open order of another kind). A side rests nothing when its rung is
    ``always`` or missing, when the checks block it, when ``guard_blocked`` (a price jump waits
    for an operator), or when no tick within :data:`_TICK_WALK` of the rounded price proposes
    (a coarse step's saw-toothed notional can leave a gap under a buy rung: the walk goes on to
    the first tick beyond it that fires)."""
    if guard_blocked or has_open_order:
        return RestingPair(None, None)
    lad = of if of is not None else ladder(state, cfg, explain=False)
    evaluations = 0 if of is not None else lad.evaluations
    st = _decimal_state(state)
    out = {}
    for side, rung in ((rules.BUY, lad.buy), (rules.SELL, lad.sell)):
        out[side] = None
        if rung is None or rung.always:
            continue
        limit = limit_price(rung.price, side)
        for _ in range(_TICK_WALK):
            if not limit > 0:
                break
            evaluations += 1
            try:
                d = rules.evaluate(st, cfg, limit, orders_today=orders_today, explain=False)
            except InvalidOperation:
                break
            p = d.proposal
            if p is not None and p.side == side:
                out[side] = Resting(side, limit, p.qty, p.kind, rung.price, p)
                break
            if d.blocked is not None and d.blocked.side == side \
                    and d.blocked_by != "below_min_notional":
                break  # the daily cap blocks at every price alike
            limit = _next_tick(limit, side)
    return RestingPair(out[rules.BUY], out[rules.SELL], evaluations)


def limit_fill_price(side: str, limit, *, open, low=None, high=None):
    """The price a resting limit fills at on a later bar (docs/strategy.md#resting-orders), or
    None: a buy when the bar's ``low`` reaches ``limit``, at ``limit``, or at the ``open`` when
    the bar already opens below it; a sell symmetrically with the ``high``. On a series of
    closes give the close as ``open`` alone (low = high = open). Decimal or float."""
    if side == rules.BUY:
        low = open if low is None else low
        if open <= limit:
            return open
        return limit if low <= limit else None
    high = open if high is None else high
    if open >= limit:
        return open
    return limit if high >= limit else None


def limit_fill_qty(cfg: rules.Config, side: str, qty, *, held, cash, price):
    """A resting order's quantity trimmed to what the shares (a sell) or the cash with its
    commission at the fill ``price`` (a buy) cover, on the step: the rule of next-bar fills
    (``rules.covered_qty``); 0 when nothing is left."""
    return rules.covered_qty(cfg, side, qty, held=held, cash=cash, price=price)


def first_side(buy_limit, sell_limit, *, open, low, high) -> str | None:
    """Which of two resting limits a bar reaches first, or None when it reaches neither. A bar
    that opens through one fills it first; a bar whose range reaches both is taken to go from
    the open to the nearer extreme first (open -> high -> low when the high is nearer, else
    open -> low -> high), the usual assumption when only OHLC is known. Either limit may be
    None (that side rests nothing)."""
    b = buy_limit is not None and low <= buy_limit
    s = sell_limit is not None and high >= sell_limit
    if not (b and s):
        return rules.BUY if b else rules.SELL if s else None
    if open <= buy_limit:
        return rules.BUY
    if open >= sell_limit:
        return rules.SELL
    return rules.SELL if high - open < open - low else rules.BUY
