"""The ledger check: recompute every position from its opening values, fills and dividends."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from positions.models import Dividend, DividendStatus, Position

ZERO = Decimal(0)


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


def ledger_verify() -> LedgerReport:
    """Shares, cash and receivable of every position recomputed with exact decimals, and each
    order's filled quantity and commission from its fills; every order and fill has its event.
    Reads only (a few streaming queries, no per-position query)."""
    from events.models import Event
    from orders.models import Fill, Order

    qty: dict[str, Decimal] = defaultdict(Decimal)
    cash: dict[str, Decimal] = defaultdict(Decimal)
    receivable: dict[str, Decimal] = defaultdict(Decimal)
    order_filled: dict[str, Decimal] = defaultdict(Decimal)
    order_commission: dict[str, Decimal] = defaultdict(Decimal)
    fills_per_order: dict[str, int] = defaultdict(int)
    n_fills = 0
    for order_id, pos_id, side, q, price, k in Fill.objects.values_list(
            "order_id", "order__position_id", "order__side", "qty", "price",
            "commission").iterator(chunk_size=5000):
        n_fills += 1
        fills_per_order[order_id] += 1
        order_filled[order_id] += q
        order_commission[order_id] += k
        if side == "BUY":
            qty[pos_id] += q
            cash[pos_id] -= q * price + k
        else:
            qty[pos_id] -= q
            cash[pos_id] += q * price - k
    n_div = 0
    for pos_id, status, net in Dividend.objects.exclude(
            status=DividendStatus.ANNOUNCED).values_list("position_id", "status", "net_amount"):
        n_div += 1
        if status == DividendStatus.PAID:
            cash[pos_id] += net
        else:
            receivable[pos_id] += net

    differences: list[Difference] = []
    n_pos = 0
    for pos in Position.objects.values("id", "qty", "cash", "dividend_receivable",
                                       "opening_qty", "opening_cash").iterator(chunk_size=2000):
        n_pos += 1
        pid = pos["id"]
        expected = {
            "qty": pos["opening_qty"] + qty[pid],
            "cash": pos["opening_cash"] + cash[pid],
            "dividend_receivable": receivable[pid],
        }
        for name, value in expected.items():
            if pos[name] != value:
                differences.append(Difference(pid, name, pos[name], value))

    submitted = set(Event.objects.filter(type="order_submitted").values_list("order_id",
                                                                              flat=True))
    fill_events: dict[str, int] = defaultdict(int)
    for order_id in Event.objects.filter(
            type__in=("order_filled", "order_partially_filled")).values_list("order_id",
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
