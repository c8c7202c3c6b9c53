"""The ledger check: replay every position from its append-only events (its opening, each
order, fill, dividend step, split, correction and cash movement, in the order they were
recorded) through the functions the live path uses, and compare every stored column the replay
determines; and every portfolio's unallocated cash from its opening and its cash movements.

Nothing mutable is trusted as an input: the opening shares, cash, anchor and owner come from
the ``position_created`` event, not from the ``opening_*`` columns; each order's quantity from
its ``order_submitted`` event; a fill's numbers from its row (a fill row is never changed),
taken in the order of its fill event. The stored columns are only compared."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from django.db import connection, transaction
from django.db.models import Max

from events.models import Event
from orders.models import OPEN_STATUSES, Fill, Order, OrderStatus
from positions.models import Dividend, DividendStatus, Portfolio, Position, Split, SplitStatus
from positions.strategy import rules
from positions.workflows.corporate_actions import AnchorTrail, entitlement
from volbal import clock

ZERO = Decimal(0)

# The events that record a change to the books this check compares (see ledger_verify): the
# opening values, each order and its fills and its end, a dividend's ex-date and pay-date steps
# and corrections, an applied split, the anchor an evaluation set. Alerts, evaluations, routing
# and configuration changes write none of them.
FILL_EVENTS = ("order_filled", "order_partially_filled")
ORDER_ENDS = ("order_cancelled", "order_expired")
CASH_EVENTS = ("cash_deposited", "cash_withdrawn", "cash_transferred")
BOOK_CHANGES = frozenset({"position_created", "order_submitted", *FILL_EVENTS, *ORDER_ENDS,
                          "anchor_set", "ex_div_effective", "dividend_cash_received",
                          "dividend_entitlement_corrected", "split_applied",
                          "anchor_adjusted_for_dividend", *CASH_EVENTS})
PORTFOLIO = "portfolio"  # the account name of a portfolio's unallocated cash (positions.books)


@dataclass(frozen=True)
class Difference:
    position_id: str
    field: str
    stored: object
    expected: object

    def __str__(self) -> str:
        return (f"{self.position_id} {self.field}: stored {self.stored}, "
                f"expected {self.expected}")


@dataclass(frozen=True)
class LedgerReport:
    positions: int
    orders: int
    fills: int
    dividends: int
    differences: list[Difference]
    portfolios: int = 0


@dataclass
class _Order:
    qty: Decimal
    side: str
    filled: Decimal = ZERO
    avg: Decimal | None = None
    commission: Decimal = ZERO
    status: str = OrderStatus.SUBMITTED
    fills: int = 0


@dataclass
class _Book:
    """One position as its events make it."""

    opened: bool = False
    opening_qty: Decimal = ZERO
    opening_cash: Decimal = ZERO
    owner_id: int | None = None
    qty: Decimal = ZERO
    cash: Decimal = ZERO
    receivable: Decimal = ZERO
    anchor: Decimal | None = None
    anchor_priced_at: object = None  # when the anchor last became a market price
    fills: list = field(default_factory=list)  # (at, side, qty), for the entitlement
    splits: list = field(default_factory=list)  # (applied_at, effective_date, ratio, step)
    orders: dict = field(default_factory=dict)  # order id -> _Order
    dividends: dict = field(default_factory=dict)  # id -> {"shares","gross","net","paid"}
    split_results: dict = field(default_factory=dict)  # split id -> (qty_after, cash_in_lieu)
    trail: AnchorTrail = field(default_factory=AnchorTrail)  # the anchor across a split
    split_anchors: dict = field(default_factory=dict)  # split id -> the anchor the ruling gives
    broken: bool = False  # a fill the rules refuse: later balances would only repeat it


def _ratio_of(value) -> Fraction:
    """A ratio as an event recorded it: ``"new:old"`` text, or a decimal (older events)."""
    if isinstance(value, str) and ":" in value:
        new, _, old = value.partition(":")
        return Fraction(int(new), int(old))
    return Fraction(Decimal(value))


class _Rows:
    """The rows the events name, read once: fills, dividends and splits by id."""

    def __init__(self):
        self.fills = {fid: (at, oid, side, q, price, k) for fid, at, oid, side, q, price, k in
                      Fill.objects.values_list("id", "created_at", "order_id", "order__side",
                                               "qty", "price", "commission")
                      .iterator(chunk_size=5000)}
        self.dividends = {d["id"]: d for d in Dividend.objects.values(
            "id", "position_id", "status", "ex_date", "dps", "withholding_rate",
            "entitlement_qty", "gross_amount", "net_amount")}
        self.splits = {s["id"]: s for s in Split.objects.values(
            "id", "position_id", "status", "effective_date", "new_rate", "old_rate", "step",
            "price_before", "qty_after", "cash_in_lieu", "applied_at")}
        self.of_position: dict[str, list[dict]] = defaultdict(list)  # dividends and splits
        for row in (*self.dividends.values(), *self.splits.values()):
            self.of_position[row["position_id"]].append(row)


def _step(book: _Book, event: Event, rows: _Rows, out: list[Difference], pid: str) -> None:
    """One event applied to ``book`` as the live path applied it."""
    kind, inputs, outputs = event.type, event.inputs, event.outputs
    if kind == "position_created":
        book.opened = True
        book.opening_qty = book.qty = Decimal(inputs["qty"])
        book.opening_cash = book.cash = Decimal(inputs["cash"])
        anchor = inputs.get("anchor_price")
        book.anchor = None if anchor is None else Decimal(anchor)
        book.owner_id = outputs.get("owner_id", event.actor_user_id)
    elif kind == "order_submitted":
        book.orders[event.order_id] = _Order(Decimal(inputs["qty"]), inputs["side"])
    elif kind in FILL_EVENTS:
        fill = rows.fills.get(outputs.get("fill_id"))
        order = book.orders.get(event.order_id)
        if fill is None or order is None:
            out.append(Difference(pid, f"order {event.order_id} fill event {event.pk}",
                                  "recorded", "a fill row and an order_submitted event"))
            return
        at, _oid, side, q, price, k = fill
        try:
            book.qty, book.cash = rules.apply_fill(qty=book.qty, cash=book.cash, side=side,
                                                   fill_qty=q, price=price, commission=k)
        except rules.RuleError as exc:
            out.append(Difference(pid, f"fill {outputs['fill_id']}", "recorded",
                                  f"refused ({exc.code}: {exc.message})"))
            book.broken = True
            return
        book.anchor, book.anchor_priced_at = price, event.created_at
        book.trail.priced()
        book.fills.append((at, side, q))
        order.avg = rules.avg_fill_price(avg=order.avg, filled=order.filled, price=price, qty=q)
        order.filled += q
        order.commission += k
        order.fills += 1
        order.status = (OrderStatus.FILLED if order.filled == order.qty
                        else OrderStatus.PARTIALLY_FILLED)
    elif kind in ORDER_ENDS:
        if event.order_id in book.orders:
            book.orders[event.order_id].status = OrderStatus.CANCELLED
    elif kind == "anchor_set":
        book.anchor = Decimal(outputs["new"])
        book.anchor_priced_at = event.created_at
        book.trail.priced()
    elif kind == "ex_div_effective":
        div = rows.dividends[inputs["dividend_id"]]
        shares = entitlement(opening_qty=book.opening_qty, ex_date=div["ex_date"],
                             fills=book.fills, splits=book.splits)
        gross, net = rules.dividend_amounts(dps=div["dps"], shares=shares,
                                            withholding_rate=div["withholding_rate"])
        book.dividends[div["id"]] = {"shares": shares, "gross": gross, "net": net,
                                     "paid": False}
        book.receivable += net
        start = clock.start_of_trading_day(div["ex_date"])
        if book.anchor is not None and not (book.anchor_priced_at is not None
                                            and book.anchor_priced_at >= start):
            before = book.anchor
            book.anchor = book.anchor - div["dps"] if book.anchor > div["dps"] else None
            book.trail.adjusted(before=before, after=book.anchor, ex_date=div["ex_date"],
                                dps=div["dps"], dividend_id=div["id"])
    elif kind == "anchor_adjusted_for_dividend":
        # a split's correction of the anchor (the steps' own are replayed by ex_div_effective):
        # to the anchor the replay's trail gave when it replayed that split
        corrected = book.split_anchors.get(inputs.get("split_id"))
        if corrected is not None:
            book.anchor = corrected
    elif kind == "dividend_cash_received":
        div = book.dividends[inputs["dividend_id"]]
        book.cash += div["net"]
        book.receivable -= div["net"]
        div["paid"] = True
    elif kind == "dividend_entitlement_corrected":
        row = rows.dividends[inputs["dividend_id"]]
        div = book.dividends[row["id"]]
        shares = entitlement(opening_qty=book.opening_qty, ex_date=row["ex_date"],
                             fills=book.fills, splits=book.splits)
        gross, net = rules.dividend_amounts(dps=row["dps"], shares=shares,
                                            withholding_rate=row["withholding_rate"])
        if div["paid"]:
            book.cash += net - div["net"]
        else:
            book.receivable += net - div["net"]
        div.update(shares=shares, gross=gross, net=net)
    elif kind in CASH_EVENTS:
        book.cash = _cash_moved(book, pid, event, out)
    elif kind == "split_applied":
        split = rows.splits[inputs["split_id"]]
        k = _ratio_of(inputs["ratio"])
        step = Decimal(inputs["step"])
        price_before = inputs.get("price_before")
        result = rules.apply_split(qty=book.qty, cash=book.cash, anchor=book.anchor, ratio=k,
                                   step=step, price_before=None if price_before is None
                                   else Decimal(price_before))
        book.qty, book.cash, book.anchor = result.qty, result.cash, result.anchor
        # the orders it re-sized, as it named them (one a broker holds is left to the broker:
        # orders.services.orders_held_cancel_for_split); an event without the list, all open
        named = outputs.get("orders")
        named = None if named is None else {o["order_id"] for o in named}
        for order_id, order in book.orders.items():
            if order.status in OPEN_STATUSES and (named is None or order_id in named):
                remaining = order.qty - order.filled
                left = rules.split_qty(remaining, k, step)
                order.qty = order.filled + left
                if left == 0:
                    order.qty = order.filled if order.filled > 0 else remaining
                    order.status = OrderStatus.CANCELLED
        book.splits.append((split["applied_at"], split["effective_date"], k, step))
        book.split_results[split["id"]] = (result.qty, result.cash_in_lieu)
        corrected = book.trail.split(ratio=k, effective_date=split["effective_date"])
        if corrected is not None:
            book.split_anchors[split["id"]] = corrected[0]


def _cash_moved(book, account: str, event: Event, out: list[Difference]) -> Decimal:
    """The cash of ``account`` (a position's id or ``"portfolio"``) after a cash movement event,
    by the rule the books apply (``rules.apply_cash_movement``); a movement the rule refuses
    (it would overdraw) is a difference and breaks the book."""
    inputs = event.inputs
    amount = Decimal(inputs["amount"])
    sign = (1 if inputs.get("to") == account else 0) - (1 if inputs.get("from") == account else 0)
    if not sign:
        return book.cash
    try:
        return rules.apply_cash_movement(cash=book.cash, amount=sign * amount)
    except rules.RuleError as exc:
        out.append(Difference(event.portfolio_id if account == PORTFOLIO else account,
                              f"{event.type} event {event.pk}", "recorded",
                              f"refused ({exc.code}: {exc.message})"))
        book.broken = True
        return book.cash


@dataclass
class _Fund:
    """A portfolio's unallocated cash as its events make it."""

    opened: bool = False
    opening_cash: Decimal = ZERO
    cash: Decimal = ZERO
    broken: bool = False


def _portfolios_verify(differences: list[Difference]) -> int:
    """Each portfolio's unallocated cash replayed from its ``portfolio_created`` event and the
    cash movements naming ``"portfolio"`` (docs/portfolios.md#events), compared with its row."""
    funds: dict[str, _Fund] = defaultdict(_Fund)
    for event in (Event.objects.filter(portfolio_id__isnull=False,
                                       type__in=("portfolio_created", *CASH_EVENTS))
                  .only("id", "portfolio_id", "position_id", "type", "inputs")
                  .order_by("portfolio_id", "id").iterator(chunk_size=5000)):
        fund = funds[event.portfolio_id]
        if fund.broken:
            continue
        if event.type == "portfolio_created":
            fund.opened = True
            fund.opening_cash = fund.cash = Decimal(event.inputs["cash"])
        else:
            fund.cash = _cash_moved(fund, PORTFOLIO, event, differences)
    n = 0
    for row in Portfolio.objects.values("id", "cash", "opening_cash").iterator(chunk_size=2000):
        n += 1
        fund = funds[row["id"]]
        if not fund.opened:
            differences.append(Difference(row["id"], "portfolio_created event", "missing",
                                          "recorded"))
            continue
        checks = [("opening_cash", fund.opening_cash)] + ([] if fund.broken
                                                           else [("cash", fund.cash)])
        for name, want in checks:
            if row[name] != want:
                differences.append(Difference(row["id"], name, row[name], want))
    return n


def _compare(pid: str, book: _Book, stored: dict, rows: _Rows, orders: dict,
             out: list[Difference]) -> None:
    if not book.opened:
        out.append(Difference(pid, "position_created event", "missing", "recorded"))
        return
    if not book.broken:
        for div_id, div in book.dividends.items():
            row = rows.dividends[div_id]
            for name, want in (("entitlement_qty", div["shares"]), ("gross_amount", div["gross"]),
                               ("net_amount", div["net"])):
                if row[name] != want:
                    out.append(Difference(pid, f"dividend {div_id} {name}", row[name], want))
            status = DividendStatus.PAID if div["paid"] else DividendStatus.EFFECTIVE
            if row["status"] != status:
                out.append(Difference(pid, f"dividend {div_id} status", row["status"], status))
        for row in rows.of_position.get(pid, ()):
            if row["id"] in rows.dividends:
                if row["status"] != DividendStatus.ANNOUNCED and row["id"] not in book.dividends:
                    out.append(Difference(pid, f"dividend {row['id']} status", row["status"],
                                          "announced (no ex_div_effective event)"))
            elif row["status"] == SplitStatus.APPLIED and row["id"] not in book.split_results:
                out.append(Difference(pid, f"split {row['id']} status", row["status"],
                                      "announced (no split_applied event)"))
        for split_id, (qty_after, lieu) in book.split_results.items():
            row = rows.splits[split_id]
            for name, want in (("qty_after", qty_after), ("cash_in_lieu", lieu)):
                if row[name] != want:
                    out.append(Difference(pid, f"split {split_id} {name}", row[name], want))
    checks = [("opening_qty", book.opening_qty), ("opening_cash", book.opening_cash),
              ("owner_id", book.owner_id)]
    if not book.broken:
        checks += [("qty", book.qty), ("cash", book.cash),
                   ("dividend_receivable", book.receivable), ("anchor_price", book.anchor)]
    for name, want in checks:
        if stored[name] != want:
            out.append(Difference(pid, name, stored[name], want))
    if book.broken:
        return
    for order_id, want in book.orders.items():
        row = orders.get(order_id)
        if row is None:
            continue
        for name, value in (("qty", want.qty), ("filled_qty", want.filled),
                            ("avg_fill_price", want.avg),
                            ("commission_paid", want.commission), ("status", want.status)):
            if row[name] != value:
                out.append(Difference(pid, f"order {order_id} {name}", row[name], value))
        if want.fills != row["fill events"]:  # a fill row without its event
            out.append(Difference(pid, f"order {order_id} fill events", want.fills,
                                  row["fill events"]))


def ledger_verify() -> LedgerReport:
    """Every position replayed from its events (see :func:`_step`) and compared: its shares,
    cash, receivable, anchor, opening values and owner; its dividends' entitlements and amounts
    and its splits' results; each order's quantity, filled quantity, average price, commission
    and status. Every order must have its ``order_submitted`` event and every fill its fill
    event. Reads only (a few streaming queries, no per-position query), all of them in one
    snapshot of the database (:func:`_one_snapshot`)."""
    with _one_snapshot():
        return _verify()


@contextlib.contextmanager
def _one_snapshot():
    """Every read of the check sees the database as of one moment: a write that commits
    while it runs (a deposit and its event, a fill) is seen whole or not at all, never its
    event without its row, which would be reported, and alerted, as a difference of sound
    books. On PostgreSQL a REPEATABLE READ, READ ONLY transaction; on SQLite a transaction
    (its reads keep their first snapshot). Inside a caller's transaction: that one's."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _verify() -> LedgerReport:
    rows = _Rows()
    orders: dict[str, dict] = {}
    fills_per_order: dict[str, int] = defaultdict(int)
    for _at, oid, *_rest in rows.fills.values():
        fills_per_order[oid] += 1
    for order in Order.objects.values("id", "position_id", "qty", "filled_qty",
                                      "avg_fill_price", "commission_paid", "status"
                                      ).iterator(chunk_size=5000):
        order["fill events"] = fills_per_order[order["id"]]
        orders[order["id"]] = order
    positions = {p["id"]: p for p in Position.objects.values(
        "id", "qty", "cash", "dividend_receivable", "anchor_price", "opening_qty",
        "opening_cash", "owner_id").iterator(chunk_size=2000)}
    differences: list[Difference] = []
    books: dict[str, _Book] = defaultdict(_Book)
    for event in (Event.objects.filter(type__in=BOOK_CHANGES).exclude(position_id="")
                  .only("id", "position_id", "portfolio_id", "order_id", "type", "inputs",
                        "outputs", "created_at", "actor_user_id")
                  .order_by("position_id", "id").iterator(chunk_size=5000)):
        book = books[event.position_id]
        if not book.broken:
            _step(book, event, rows, differences, event.position_id)
    for pid, stored in positions.items():
        _compare(pid, books[pid], stored, rows, orders, differences)
    for order_id, row in orders.items():
        if order_id not in books[row["position_id"]].orders:
            differences.append(Difference(row["position_id"],
                                          f"order {order_id} order_submitted event", False,
                                          True))
    n_div = sum(1 for d in rows.dividends.values() if d["status"] != DividendStatus.ANNOUNCED)
    n_portfolios = _portfolios_verify(differences)
    return LedgerReport(len(positions), len(orders), len(rows.fills), n_div, differences,
                        n_portfolios)


def last_book_changes(position_ids) -> dict:
    """Each position's latest event of :data:`BOOK_CHANGES` (position id → event): the last
    change of its books made through the services, with when and who. A later difference came
    from elsewhere. Two queries however many positions."""
    latest = (Event.objects.filter(position_id__in=list(position_ids), type__in=BOOK_CHANGES)
              .values("position_id").annotate(last=Max("id")).values_list("last", flat=True))
    return {event.position_id: event for event in Event.objects.filter(id__in=list(latest))}
