"""Reads: a position's (and a portfolio's) value over time and its returns
(docs/returns.md, docs/strategy.md#returns).

History is not stored twice: it is read back from the audit log, which records the books after
every change (a fill's ``position_qty`` and ``position_cash``, a dividend step's cash and
receivable, a split's ``after``, a cash movement's ``balances``; docs/portfolios.md#events).
Nothing here writes (``positions/books.py`` stays the one writer).

Clocks: an event happened at its ``created_at``; a stored price is known from its market time
``ts``. The value of a position at an instant is its shares, cash and receivable after the
events recorded by then, the shares at the price known then: the newer of the ticker's newest
stored price with ``ts`` at or before it and the position's last fill by then (the fill wins a
tie, as :func:`orders.selectors.known_price` decides), divided by the ratios of the splits
applied by then that took effect after that price was observed
(docs/splits-and-guard.md#prices-across-a-split). The two clocks agree for prices recorded as
they happen and for a history replayed with the service's clock set to each bar.

The timeline handed to the pure returns (:mod:`positions.strategy.rules.returns`): a mark at
``since``, one at each flow inside the span (valued just before it), one at each session's close
(the exchange calendar, :func:`volbal.market.session_closes`) and one at ``until``.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from django.db.models import Max, Q

from events.models import Event
from positions.models import Portfolio, Position, Price
from positions.strategy import rules
from positions.strategy.rules import returns
from positions.strategy.rules.numbers import money
from volbal import clock, market
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt

ZERO = Decimal(0)
CENT = Decimal("0.01")
END = 2**63  # an event id after every other: (moment, END) sorts after each event at moment

FILL_EVENTS = ("order_filled", "order_partially_filled")
CASH_EVENTS = ("cash_deposited", "cash_withdrawn", "cash_transferred")
# The events whose outputs say what a position's books became (docs/portfolios.md#events).
BOOK_EVENTS = ("position_created", *FILL_EVENTS, "ex_div_effective", "dividend_cash_received",
               "dividend_entitlement_corrected", "split_applied", *CASH_EVENTS)


def _dec(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(x)


@dataclass
class Books:
    """One position's books after each of its events, oldest first: the instant, the event's
    id, shares, cash, receivable, and the cash that came in (+) or went out (-) with it."""

    position_id: str
    at: list[dt.datetime] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    keys: list[tuple[dt.datetime, int]] = field(default_factory=list)  # (at, id)
    qty: list[Decimal] = field(default_factory=list)
    cash: list[Decimal] = field(default_factory=list)
    receivable: list[Decimal] = field(default_factory=list)
    flow: list[Decimal | None] = field(default_factory=list)  # None: the opening (its value)
    # (applied at, took effect at, ratio) of each applied split
    splits: list[tuple[dt.datetime, dt.datetime, Fraction]] = field(default_factory=list)
    fills: list[tuple[dt.datetime, Decimal]] = field(default_factory=list)  # (at, price)

    def index_at(self, moment: dt.datetime) -> int:
        """The last event at or before ``moment`` (-1: none, the position did not exist)."""
        return bisect.bisect_right(self.at, moment) - 1

    def index_before(self, key: tuple[dt.datetime, int]) -> int:
        """The last event before the event ``key`` ``(at, id)`` of any account (-1: none)."""
        return bisect.bisect_left(self.keys, key) - 1


def book_events(position_ids, until: dt.datetime):
    """The events that changed the books of these positions, recorded by ``until``, in the
    order recorded: one read however many positions."""
    return (Event.objects.filter(position_id__in=list(position_ids), type__in=BOOK_EVENTS,
                                 created_at__lte=until)
            .only("id", "type", "position_id", "inputs", "outputs", "created_at")
            .order_by("id"))


def books_of(position_id: str, until: dt.datetime) -> Books:
    """The position's books replayed from the outputs of its events up to ``until``."""
    return replay(position_id, book_events([position_id], until))


def replay(position_id: str, events) -> Books:
    """The position's books from the outputs of its events (in the order recorded)."""
    books = Books(position_id)
    qty = cash = receivable = ZERO
    for event in events:
        kind, inputs, outputs, flow = event.type, event.inputs, event.outputs, ZERO
        # in the order recorded (ids); a time a concurrent writer stamped a moment earlier
        # than the event before it counts as that event's, so the times stay sorted
        at = event.created_at if not books.at else max(event.created_at, books.at[-1])
        if kind == "position_created":
            qty, cash, receivable, flow = _dec(inputs["qty"]), _dec(inputs["cash"]), ZERO, None
        elif kind in FILL_EVENTS:
            qty, cash = _dec(outputs["position_qty"]), _dec(outputs["position_cash"])
            books.fills.append((at, _dec(inputs["price"])))
        elif kind == "ex_div_effective":
            receivable = _dec(outputs["receivable"])
        elif kind == "dividend_cash_received":
            cash, receivable = _dec(outputs["cash"]), _dec(outputs["receivable"])
        elif kind == "dividend_entitlement_corrected":
            if outputs["to"] == "cash":
                cash = _dec(outputs["cash"])
            else:
                receivable = _dec(outputs["dividend_receivable"])
        elif kind == "split_applied":
            qty, cash = _dec(outputs["after"]["qty"]), _dec(outputs["after"]["cash"])
            effective = dt.date.fromisoformat(str(inputs["effective_date"]))
            books.splits.append((at, clock.start_of_trading_day(effective),
                                 rules.split_ratio(inputs["ratio"])))
        else:  # a cash movement: the position's balance after it, and the amount in or out
            cash = _dec(outputs["balances"][position_id])
            amount = _dec(inputs["amount"])
            flow = amount if inputs.get("to") == position_id else -amount
        books.at.append(at)
        books.ids.append(event.id)
        books.keys.append((at, event.id))
        books.qty.append(qty)
        books.cash.append(cash)
        books.receivable.append(receivable)
        books.flow.append(flow)
    return books


class PriceTrail:
    """The prices of one ticker known over time (stored by ``ts``) and a position's fills."""

    def __init__(self, ticker: str, since: dt.datetime, until: dt.datetime, books: Books,
                 rows: tuple[list[dt.datetime], list[Decimal]] | None = None):
        """``rows``: the ticker's ``(ts, price)`` lists already read (:func:`prices_of`)."""
        self.ts, self.prices = rows if rows is not None else prices_of([ticker], since,
                                                                       until)[ticker]
        self.fill_at = [at for at, _p in books.fills]
        self.fill_prices = [p for _at, p in books.fills]
        self.splits = books.splits

    def at(self, moment: dt.datetime) -> Decimal | None:
        """The price known at ``moment``, split-adjusted as the position then used it."""
        i = bisect.bisect_right(self.ts, moment) - 1
        j = bisect.bisect_right(self.fill_at, moment) - 1
        if j >= 0 and (i < 0 or self.fill_at[j] >= self.ts[i]):
            observed, price = self.fill_at[j], self.fill_prices[j]
        elif i >= 0:
            observed, price = self.ts[i], self.prices[i]
        else:
            return None
        ratio = Fraction(1)
        for applied, took_effect, k in self.splits:
            if applied <= moment and took_effect > observed:
                ratio *= k
        return price if ratio == 1 else rules.split_adjusted_price(price, ratio)


def prices_of(tickers, since: dt.datetime, until: dt.datetime
              ) -> dict[str, tuple[list[dt.datetime], list[Decimal]]]:
    """Each ticker's stored prices known over [since, until]: its newest at or before
    ``since`` and every later one by ``until``, as ``(ts list, price list)`` oldest first. A
    constant number of reads however many tickers."""
    tickers = sorted(set(tickers))
    out: dict[str, tuple[list[dt.datetime], list[Decimal]]] = {t: ([], []) for t in tickers}
    if not tickers:
        return out
    stored = Price.objects.filter(ticker__in=tickers)
    newest = dict(stored.filter(ts__lte=since).values("ticker").annotate(ts=Max("ts"))
                  .values_list("ticker", "ts"))
    rows = list(stored.filter(ts__gt=since, ts__lte=until).values_list("ticker", "ts", "price"))
    if newest:
        before = Q()
        for ticker, ts in newest.items():
            before |= Q(ticker=ticker, ts=ts)
        rows += list(Price.objects.filter(before).values_list("ticker", "ts", "price"))
    for ticker, ts, price in sorted(rows, key=lambda r: (r[0], r[1])):
        out[ticker][0].append(ts)
        out[ticker][1].append(price)
    return out


def price_unknown(ticker: str, moment: dt.datetime) -> DomainError:
    return DomainError("price_unknown", f"No price of {ticker} is known at "
                       f"{moment.isoformat()}, and the position held shares then: its value "
                       "cannot be stated. Record a price (POST /v1/prices) at or before that "
                       "time.", status=409)


class PositionHistory:
    """A position's value at any instant of a span (see the module's docstring)."""

    def __init__(self, position: Position, since: dt.datetime, until: dt.datetime,
                 books: Books | None = None,
                 prices: tuple[list[dt.datetime], list[Decimal]] | None = None):
        """``books`` and ``prices``: already read (a portfolio reads all its members' at
        once); read here otherwise."""
        self.position = position
        self.books = books if books is not None else books_of(position.id, until)
        self.prices = PriceTrail(position.ticker, since, until, self.books, prices)

    def _value(self, i: int, moment: dt.datetime) -> Decimal:
        if i < 0:
            return ZERO
        qty, cash, recv = self.books.qty[i], self.books.cash[i], self.books.receivable[i]
        if qty == 0:
            return cash + recv
        price = self.prices.at(moment)
        if price is None:
            raise price_unknown(self.position.ticker, moment)
        return rules.weight_of(qty=qty, cash=cash, receivable=recv, price=price)[0]

    def value_at(self, moment: dt.datetime) -> Decimal:
        """The value after every event recorded by ``moment``."""
        return self._value(self.books.index_at(moment), moment)

    def value_before(self, key: tuple[dt.datetime, int]) -> Decimal:
        """The value just before the event ``key`` ``(at, id)``, at the prices known then."""
        return self._value(self.books.index_before(key), key[0])

    def flows(self, since: dt.datetime, until: dt.datetime) -> Iterable[returns.Mark]:
        """A mark per flow recorded after ``since`` and by ``until``: the value just before
        it (the books of the event before, at the price known at the flow) and the flow (the
        opening: all its value)."""
        b = self.books
        for i in range(b.index_at(since) + 1, b.index_at(until) + 1):
            flow = b.flow[i]
            if flow is None:
                yield returns.Mark(b.at[i], ZERO, self._value(i, b.at[i]))
            elif flow:
                yield returns.Mark(b.at[i], self._value(i - 1, b.at[i]), flow)


@dataclass(frozen=True)
class Day:
    """A row of the daily series: a session, its close, the value then, the net flows of the
    session and the time-weighted return from the start to that close (None: see reason)."""

    session: dt.date
    close: dt.datetime
    value: Decimal
    flows: Decimal
    time_weighted_return: Decimal | None


@dataclass(frozen=True)
class Performance:
    since: dt.datetime
    until: dt.datetime
    figures: returns.Returns
    daily: list[Day]


def _timeline(value_at, flow_marks: list[returns.Mark], since: dt.datetime,
              until: dt.datetime, opened: dt.datetime
              ) -> tuple[list[returns.Mark], list[tuple[dt.date, int]]]:
    """The marks of the span: ``since``, the flows, each session's close from the opening
    (before it there is nothing to value), ``until``; and the index of each session's close
    mark."""
    first = max(since, opened)
    closes = [(day, close) for day, close in market.session_closes(
        clock.trading_day(first), clock.trading_day(until)) if since < close <= until]
    marks = [returns.Mark(since, value_at(since))]
    tagged = [(m.at, 0, m) for m in flow_marks]
    tagged += [(close, 1, day) for day, close in closes]
    tagged.sort(key=lambda t: (t[0], t[1]))
    sessions: list[tuple[dt.date, int]] = []
    for at, kind, item in tagged:
        if kind == 0:
            marks.append(item)
        else:
            marks.append(returns.Mark(at, value_at(at)))
            sessions.append((item, len(marks) - 1))
    if marks[-1].at != until or marks[-1].flow:
        marks.append(returns.Mark(until, value_at(until)))
    return marks, sessions


def performance(value_at, flow_marks: list[returns.Mark], since: dt.datetime,
                until: dt.datetime, opened: dt.datetime) -> Performance:
    """The figures and the daily series of a span, from a valuation (instant → value) and the
    flows' marks (see :func:`_timeline`)."""
    marks, sessions = _timeline(value_at, flow_marks, since, until, opened)
    cumulative = returns.cumulative_time_weighted(marks)
    daily, previous = [], 0
    for day, i in sessions:
        flows = sum((m.flow for m in marks[previous + 1:i + 1]), ZERO)
        daily.append(Day(day, marks[i].at, marks[i].after, flows, cumulative[i].value))
        previous = i
    return Performance(since, until, returns.returns_of(marks), daily)


# --- The span asked for ------------------------------------------------------------------------


def invalid_span(message: str, name: str) -> DomainError:
    return DomainError("invalid_span", message, status=400, fields={name: message})


def span_of(*, since: dt.datetime | None, until: dt.datetime | None,
            opened: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The span asked for: ``since`` defaults to the opening (``opened``), ``until`` to now
    (a later ``until`` is now: nothing is known of the future). 400 ``invalid_span`` when
    ``since`` is not before ``until``."""
    now = clock.now()
    since = opened if since is None else since
    until = now if until is None or until > now else until
    if since >= until:
        raise invalid_span(f"since ({since.isoformat()}) must be before until "
                           f"({until.isoformat()}, now at the latest).", "since")
    return since, until


def position_performance(position: Position, *, since: dt.datetime | None = None,
                         until: dt.datetime | None = None) -> Performance:
    """The returns of a position over [since, until] (defaults: its opening, now). Its flows:
    its opening, deposits and withdrawals on it, transfers in and out of it. 409
    ``price_unknown`` when it held shares at an instant no price was known."""
    opened = (Event.objects.filter(position_id=position.id, type="position_created")
              .values_list("created_at", flat=True).first() or position.created_at)
    since, until = span_of(since=since, until=until, opened=opened)
    history = PositionHistory(position, since, until)
    return performance(history.value_at, list(history.flows(since, until)), since, until,
                       opened)


# --- Portfolios (docs/portfolios.md) -----------------------------------------------------------


class PortfolioHistory:
    """A portfolio's value at any instant: its unallocated cash F plus the value of each
    position that was a member then. F is read from its opening (``portfolio_created``) and
    the ``balances`` of every cash movement naming ``"portfolio"``; membership from each
    position's ``config_changed`` events naming the portfolio (``outputs.changed.portfolio``)
    and from a ``position_created`` of the portfolio (opened inside it); a member with neither
    joined at its opening."""

    def __init__(self, portfolio: Portfolio, since: dt.datetime, until: dt.datetime):
        self.portfolio = portfolio
        pid = portfolio.id
        mine = Event.objects.filter(portfolio_id=pid, created_at__lte=until).only(
            "id", "type", "position_id", "inputs", "outputs", "created_at").order_by("id")
        self.cash_keys: list[tuple[dt.datetime, int]] = []
        self.cash: list[Decimal] = []
        self.flows: list[tuple[tuple[dt.datetime, int], str, object]] = []
        joins: dict[str, list[tuple[tuple[dt.datetime, int], bool]]] = {}
        for event in mine:
            key = (event.created_at, event.id)
            kind, inputs, outputs = event.type, event.inputs, event.outputs
            if kind == "portfolio_created":
                self.cash_keys.append(key)
                self.cash.append(_dec(inputs["cash"]))
                self.flows.append((key, "opening", _dec(inputs["cash"])))
            elif kind in CASH_EVENTS:
                balances = outputs.get("balances") or {}
                if "portfolio" in balances:
                    self.cash_keys.append(key)
                    self.cash.append(_dec(balances["portfolio"]))
                if kind != "cash_transferred":  # a transfer stays inside: not a flow
                    amount = _dec(inputs["amount"])
                    self.flows.append((key, "cash", amount if kind == "cash_deposited"
                                       else -amount))
            elif kind == "position_created" and event.position_id:
                joins.setdefault(event.position_id, []).append((key, True))
            elif kind == "config_changed" and event.position_id:
                change = (outputs.get("changed") or {}).get("portfolio")
                if change is not None and change.get("old") != change.get("new"):
                    joins.setdefault(event.position_id, []).append(
                        (key, change.get("new") == pid))
        members = list((Position.objects.filter(pk__in=list(joins))
                        | portfolio.positions.all()).distinct())
        events: dict[str, list[Event]] = {p.id: [] for p in members}
        for event in book_events(events, until):
            events[event.position_id].append(event)
        prices = prices_of((p.ticker for p in members), since, until)
        self.positions = {p.id: PositionHistory(p, since, until, replay(p.id, events[p.id]),
                                                prices[p.ticker]) for p in members}
        for position_id, history in self.positions.items():
            if position_id not in joins:  # a member from its opening
                books = history.books
                opened = books.keys[0] if books.keys else (history.position.created_at, 0)
                joins[position_id] = [(opened, True)]
        self.joins = {p: sorted(j, key=lambda r: r[0]) for p, j in joins.items()}
        for position_id, changes in self.joins.items():
            for key, joined in changes:
                self.flows.append((key, "join" if joined else "leave", position_id))
        self.flows.sort(key=lambda f: f[0])
        self.changes = self._changes(prices)
        self._sweep = _Sweep(self)

    def _changes(self, prices) -> list[tuple[tuple[dt.datetime, int], int, str, object]]:
        """Everything that changes the value, in time order: ``(key, tie, kind, what)``. A
        stored price is known from its ``ts`` (key ``(ts, -1)``: before any event then); a
        member's books change at its events' keys; the unallocated cash at its movements';
        membership at the joins' and leaves'."""
        out: list[tuple[tuple[dt.datetime, int], int, str, object]] = []
        for ticker, (stamps, values) in prices.items():
            out += [((ts, -1), 0, "price", (ticker, price))
                    for ts, price in zip(stamps, values, strict=True)]
        for position_id, history in self.positions.items():
            out += [(key, 1, "books", (position_id, i))
                    for i, key in enumerate(history.books.keys)]
        out += [(key, 2, "cash", cash) for key, cash in zip(self.cash_keys, self.cash,
                                                            strict=True)]
        for position_id, changes in self.joins.items():
            out += [(key, 3, "member", (position_id, joined)) for key, joined in changes]
        out.sort(key=lambda c: (c[0], c[1]))
        return out

    def _value(self, key: tuple[dt.datetime, int]) -> Decimal:
        """The value after every event before ``key`` (an event's ``(at, id)``, or
        ``(moment, END)``: after every event by then), at the prices known at ``key[0]``.
        Asked in time order, each answer only applies what changed since the last
        (:class:`_Sweep`); asked earlier, it starts over."""
        if key < self._sweep.key:
            self._sweep = _Sweep(self)
        return self._sweep.value(key)

    def value_at(self, moment: dt.datetime) -> Decimal:
        return self._value((moment, END))

    def flow_marks(self, since: dt.datetime, until: dt.datetime) -> list[returns.Mark]:
        """A mark per flow of the portfolio after ``since`` and by ``until``: its opening cash,
        deposits and withdrawals on it and on its members, a position's value as it joins (+)
        or leaves (-). Transfers inside it are not flows."""
        marks = []
        for key, kind, what in self.flows:
            at = key[0]
            if not since < at <= until:
                continue
            before = self._value(key)
            if kind in ("opening", "cash"):
                flow = what
            else:
                value = self.positions[what].value_before((at, key[1] + 1))  # after its event
                flow = value if kind == "join" else -value
            if flow:
                marks.append(returns.Mark(at, before, flow))
        return marks


class _Sweep:
    """A portfolio's value kept as a running total while its changes are applied in time
    order (:meth:`PortfolioHistory._changes`), so a timeline costs O(events + prices +
    marks), not O(positions × marks).

    The total is the unallocated cash, the members' cash and receivable, and their shares at
    their prices. A member whose price is its ticker's newest stored price (no fill of its own
    since, no split applied after that price was observed) is *plain*: its shares are summed
    per ticker, so a new price moves the total by (shares of the ticker) × (change). The
    others (a fill newer than the ticker's price, a split not yet in a price; few, until the
    next price) are valued one by one at each mark, as :class:`PriceTrail` says. The total is
    rounded to money once (a position's own value rounds each position)."""

    def __init__(self, history: PortfolioHistory):
        self.history = history
        self.key: tuple[dt.datetime, int] = (dt.datetime.min.replace(tzinfo=dt.UTC), -2)
        self.next = 0
        self._at = self.key[0]  # the instant of the change being applied
        self.unallocated = ZERO
        self.price: dict[str, tuple[dt.datetime, Decimal]] = {}  # ticker -> newest (ts, price)
        self.books: dict[str, int] = {}  # position -> index of its last event applied
        self.members: set[str] = set()
        self.counted: dict[str, tuple[Decimal, bool]] = {}  # member -> (cash + recv, plain)
        self.plain_qty: dict[str, Decimal] = {}  # ticker -> shares of its plain members
        self.plain_value = ZERO  # sum over tickers of plain shares × price
        self.cash = ZERO  # the members' cash and receivable
        self.special: dict[str, set[str]] = {}  # ticker -> members valued one by one

    def _plain(self, position_id: str) -> bool:
        history = self.history.positions[position_id]
        i, known = self.books[position_id], self.price.get(history.position.ticker)
        if known is None:
            return False
        ts, books = known[0], history.books
        fills = books.fills
        last_fill = bisect.bisect_right(fills, books.at[i], key=lambda f: f[0]) - 1
        if last_fill >= 0 and fills[last_fill][0] >= ts:
            return False
        return not any(applied <= books.at[i] and took_effect > ts
                       for applied, took_effect, _k in books.splits)

    def _count(self, position_id: str, sign: int) -> None:
        """Add (+1) or take out (-1) a member's part of the total."""
        history = self.history.positions[position_id]
        i = self.books.get(position_id, -1)
        if i < 0:
            return
        b, ticker = history.books, history.position.ticker
        if sign > 0:
            plain = b.qty[i] != 0 and self._plain(position_id)
            self.counted[position_id] = (b.cash[i] + b.receivable[i], plain)
        cash, plain = self.counted[position_id]
        self.cash += sign * cash
        if b.qty[i] == 0:
            return
        if plain:
            self.plain_qty[ticker] = self.plain_qty.get(ticker, ZERO) + sign * b.qty[i]
            self.plain_value += sign * b.qty[i] * self.price[ticker][1]
        elif sign > 0:
            self.special.setdefault(ticker, set()).add(position_id)
        else:
            self.special[ticker].discard(position_id)

    def _apply(self, kind: str, what) -> None:
        if kind == "price":
            ticker, price = what
            old = self.price.get(ticker)
            if old is not None:
                self.plain_value += self.plain_qty.get(ticker, ZERO) * (price - old[1])
            self.price[ticker] = (self._at, price)
            for position_id in list(self.special.get(ticker, ())):  # plain again?
                self._count(position_id, -1)
                self._count(position_id, +1)
        elif kind == "books":
            position_id, i = what
            member = position_id in self.members
            if member:
                self._count(position_id, -1)
            self.books[position_id] = i
            if member:
                self._count(position_id, +1)
        elif kind == "cash":
            self.unallocated = what
        else:
            position_id, joined = what
            if joined and position_id not in self.members:
                self.members.add(position_id)
                self._count(position_id, +1)
            elif not joined and position_id in self.members:
                self._count(position_id, -1)
                self.members.discard(position_id)

    def value(self, key: tuple[dt.datetime, int]) -> Decimal:
        """The value after every change before ``key``, at the prices known at ``key[0]``."""
        changes = self.history.changes
        while self.next < len(changes) and changes[self.next][0] < key:
            change_key, _tie, kind, what = changes[self.next]
            self._at = change_key[0]
            self._apply(kind, what)
            self.next += 1
        self.key = key
        moment, total = key[0], self.unallocated + self.cash + self.plain_value
        for members in self.special.values():
            for position_id in members:
                history = self.history.positions[position_id]
                price = history.prices.at(moment)
                if price is None:
                    raise price_unknown(history.position.ticker, moment)
                total += history.books.qty[self.books[position_id]] * price
        return money(total)


def portfolio_performance(portfolio: Portfolio, *, since: dt.datetime | None = None,
                          until: dt.datetime | None = None) -> Performance:
    """The returns of a portfolio over [since, until] (defaults: its opening, now): its value
    is F + the value of its members; its flows are money in and out of it (see
    :meth:`PortfolioHistory.flow_marks`). 409 ``price_unknown`` as for a position."""
    opened = (Event.objects.filter(portfolio_id=portfolio.id, type="portfolio_created")
              .values_list("created_at", flat=True).first() or portfolio.created_at)
    since, until = span_of(since=since, until=until, opened=opened)
    history = PortfolioHistory(portfolio, since, until)
    return performance(history.value_at, history.flow_marks(since, until), since, until,
                       opened)


def describe(figures: returns.Returns) -> str:
    """One sentence of the figures (the admin's summary)."""
    def pct(rate: returns.Rate) -> str:
        if rate.value is None:
            return f"none ({rate.sentence})"
        return f"{fmt((rate.value * 100).quantize(CENT))} %"
    days = fmt(figures.days.quantize(CENT))
    return (f"Value {fmt(figures.start_value)} -> {fmt(figures.end_value)} with "
            f"{fmt(figures.net_flows)} net flows over {days} days: time-weighted "
            f"{pct(figures.time_weighted)}, money-weighted {pct(figures.money_weighted)} a year.")
