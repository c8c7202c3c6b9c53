"""The ledger check: replay every position from its opening values through its fills and
dividend steps, with the functions the live path uses, and compare with what is stored."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max

from events.models import Event
from orders.models import Fill, Order
from positions.models import Dividend, DividendStatus, Position, Split, SplitStatus
from positions.strategy import rules
from volbal import clock

ZERO = Decimal(0)

# The events that record a change to the books this check compares (see ledger_verify): the
# opening values, each order and its fills, a dividend's ex-date and pay-date steps, an applied
# split. Alerts, evaluations, routing, anchor and configuration changes write none of them.
FILL_EVENTS = ("order_filled", "order_partially_filled")
BOOK_CHANGES = frozenset({"position_created", "order_submitted", *FILL_EVENTS,
                          "ex_div_effective", "dividend_cash_received", "split_applied"})


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


@dataclass(frozen=True)
class _Fill:
    at: object
    id: str
    side: str
    qty: Decimal
    price: Decimal
    commission: Decimal


def _shares_before(start, opening_qty: Decimal, fills: list[_Fill], splits) -> Decimal:
    """The shares held at ``start`` (the start of an ex-date): the opening holding moved by
    the fills before it and set by the splits applied before it (as they were applied; a
    split's own difference is named by its step)."""
    moves = sorted([(f.at, 0, f) for f in fills if f.at < start]
                   + [(s["applied_at"], 1, s) for s in splits if s["applied_at"] < start],
                   key=lambda m: m[:2])
    shares = opening_qty
    for _at, kind, item in moves:
        if kind == 0:
            shares += item.qty if item.side == rules.BUY else -item.qty
        else:
            shares = item["qty_after"]
    return shares


def _replay(pos: dict, fills: list[_Fill], dividends: list[dict],
            splits: list[dict] = ()) -> list[Difference]:
    """One position's history in the order it happened: each fill through
    ``rules.apply_fill`` (the live fill's rounding and refusals), each ex-date through
    ``rules.dividend_amounts`` on the shares held at the start of the ex-date (fills on or
    after it do not count, as in :func:`positions.dividends.shares_at_start_of`), each pay-date
    moving the net amount from receivable to cash, each applied split through
    ``rules.apply_split`` (the live split's rounding, with the step and price it used).
    Returns what disagrees with the rows."""
    pid = pos["id"]
    out: list[Difference] = []
    steps: list[tuple] = [(f.at, 0, f.id, f) for f in fills]
    for div in dividends:
        steps.append((div["effective_at"], 1, div["id"], div))
        if div["status"] == DividendStatus.PAID:
            steps.append((div["paid_at"], 2, div["id"], div))
    steps += [(split["applied_at"], 3, split["id"], split) for split in splits]
    steps.sort(key=lambda s: s[:3])
    qty, cash, receivable = pos["opening_qty"], pos["opening_cash"], ZERO
    net_of: dict[str, Decimal] = {}
    for _at, kind, _id, item in steps:
        if kind == 0:
            try:
                qty, cash = rules.apply_fill(qty=qty, cash=cash, side=item.side,
                                             fill_qty=item.qty, price=item.price,
                                             commission=item.commission)
            except rules.RuleError as exc:
                out.append(Difference(pid, f"fill {item.id}", "recorded",
                                      f"refused ({exc.code}: {exc.message})"))
                return out  # every later balance would only repeat this difference
        elif kind == 1:
            shares = _shares_before(clock.start_of_trading_day(item["ex_date"]),
                                    pos["opening_qty"], fills, splits)
            gross, net = rules.dividend_amounts(dps=item["dps"], shares=shares,
                                                withholding_rate=item["withholding_rate"])
            for name, want in (("entitlement_qty", shares), ("gross_amount", gross),
                               ("net_amount", net)):
                if item[name] != want:
                    out.append(Difference(pid, f"dividend {item['id']} {name}", item[name],
                                          want))
            net_of[item["id"]] = net
            receivable += net
        elif kind == 2:
            net = net_of[item["id"]]
            cash += net
            receivable -= net
        else:
            result = rules.apply_split(qty=qty, cash=cash, anchor=None, ratio=item["ratio"],
                                       step=item["step"], price_before=item["price_before"])
            for name, want in (("qty_after", result.qty), ("cash_in_lieu", result.cash_in_lieu)):
                if item[name] != want:
                    out.append(Difference(pid, f"split {item['id']} {name}", item[name], want))
            qty, cash = result.qty, result.cash
    for name, want in (("qty", qty), ("cash", cash), ("dividend_receivable", receivable)):
        if pos[name] != want:
            out.append(Difference(pid, name, pos[name], want))
    return out


def ledger_verify() -> LedgerReport:
    """Every position replayed (see :func:`_replay`) and compared with its stored shares, cash
    and receivable and its dividends' amounts; each order's filled quantity and commission
    against its fills; every order has its ``order_submitted`` event and every fill its fill
    event. Reads only (a few streaming queries, no per-position query)."""
    fills_of: dict[str, list[_Fill]] = defaultdict(list)
    order_filled: dict[str, Decimal] = defaultdict(Decimal)
    order_commission: dict[str, Decimal] = defaultdict(Decimal)
    fills_per_order: dict[str, int] = defaultdict(int)
    n_fills = 0
    for fill_id, at, order_id, pos_id, side, q, price, k in Fill.objects.values_list(
            "id", "created_at", "order_id", "order__position_id", "order__side", "qty",
            "price", "commission").iterator(chunk_size=5000):
        n_fills += 1
        fills_per_order[order_id] += 1
        order_filled[order_id] += q
        order_commission[order_id] += k
        fills_of[pos_id].append(_Fill(at, fill_id, side, q, price, k))
    dividends_of: dict[str, list[dict]] = defaultdict(list)
    n_div = 0
    for div in Dividend.objects.exclude(status=DividendStatus.ANNOUNCED).values(
            "id", "position_id", "status", "ex_date", "dps", "withholding_rate",
            "entitlement_qty", "gross_amount", "net_amount", "effective_at", "paid_at"):
        n_div += 1
        dividends_of[div["position_id"]].append(div)

    splits_of: dict[str, list[dict]] = defaultdict(list)
    for split in Split.objects.filter(status=SplitStatus.APPLIED).values(
            "id", "position_id", "ratio", "step", "price_before", "qty_after", "cash_in_lieu",
            "applied_at"):
        splits_of[split["position_id"]].append(split)

    differences: list[Difference] = []
    n_pos = 0
    for pos in Position.objects.values("id", "qty", "cash", "dividend_receivable",
                                       "opening_qty", "opening_cash").iterator(chunk_size=2000):
        n_pos += 1
        differences += _replay(pos, fills_of.pop(pos["id"], []),
                               dividends_of.pop(pos["id"], []), splits_of.pop(pos["id"], []))

    submitted = set(Event.objects.filter(type="order_submitted").values_list("order_id",
                                                                              flat=True))
    fill_events: dict[str, int] = defaultdict(int)
    for order_id in Event.objects.filter(type__in=FILL_EVENTS).values_list("order_id",
                                                                           flat=True):
        fill_events[order_id] += 1
    n_orders = 0
    for order_id, pos_id, filled, commission in Order.objects.values_list(
            "id", "position_id", "filled_qty", "commission_paid").iterator(chunk_size=5000):
        n_orders += 1
        checks = {
            f"order {order_id} filled_qty": (filled, order_filled[order_id]),
            f"order {order_id} commission_paid": (commission, order_commission[order_id]),
            f"order {order_id} fill events": (fill_events[order_id], fills_per_order[order_id]),
            f"order {order_id} order_submitted event": (order_id in submitted, True),
        }
        for name, (stored, want) in checks.items():
            if stored != want:
                differences.append(Difference(pos_id, name, stored, want))
    return LedgerReport(n_pos, n_orders, n_fills, n_div, differences)


def last_book_changes(position_ids) -> dict:
    """Each position's latest event of :data:`BOOK_CHANGES` (position id → event): the last
    change of its books made through the services, with when and who. A later difference came
    from elsewhere. Two queries however many positions."""
    latest = (Event.objects.filter(position_id__in=list(position_ids), type__in=BOOK_CHANGES)
              .values("position_id").annotate(last=Max("id")).values_list("last", flat=True))
    return {event.position_id: event for event in Event.objects.filter(id__in=list(latest))}
