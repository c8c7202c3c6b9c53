"""Resting orders live (docs/strategy.md#resting-orders, docs/brokers.md#resting-orders): a
position with ``order_type: limit`` keeps exactly its ladder's rungs resting at its broker as
limit orders. The rung rule itself (prices on the tick, sizes, blocked rungs) is the strategy
core's :func:`positions.strategy.ladder.resting`, the one the backtest's ``fill: limit`` rests;
this module compares it with the orders resting now and cancels and places the difference.

Called by the evaluation step (:func:`positions.workflows.evaluation.position_evaluate`) on a
locked position, in its transaction; no broker is called here: the cycle routes the new orders
afterwards and sends the cancels of orders a broker holds (orders/brokers/service.py), so no
lock is held across a network call. As in the backtest:

- while a rung rests, or when an order filled since the last evaluation, no market order is
  proposed; when no rung rests (an ``always`` rung, the daily cap) the proposal goes as a market
  order, as with ``order_type: market``;
- a rung whose price or size the ladder no longer has is cancelled (``order_cancelled``, or
  ``order_cancel_requested`` at a broker that holds it, with the reason), and the new rung is
  placed once no cancel is pending at the broker (``order_submitted`` naming the rung);
- the manual broker rests nothing and submits nothing: :func:`resting_wanted` shows what a
  person would place by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orders.models import OPEN_STATUSES, Fill, Order
from orders.selectors import orders_created_today
from orders.services import order_cancel_request, order_submit
from positions.models import Broker, OrderType, Position
from positions.strategy import rules
from positions.strategy.ladder import Resting, RestingPair, resting
from volbal.renderers import decimal_text as fmt


def is_limit(position: Position) -> bool:
    return position.order_type == OrderType.LIMIT


def resting_open(position: Position) -> list[Order]:
    """The position's rung orders still open (resting, or a cancel pending at the broker)."""
    return list(Order.objects.filter(position_id=position.id, rung__isnull=False,
                                     status__in=OPEN_STATUSES).order_by("created_at", "id"))


def market_allowed(position: Position, *, since: dt.datetime | None) -> bool:
    """Whether this evaluation may propose a market order: no rung rests and no order of the
    position filled since the last evaluation (``since``; the backtest's bar that filled is not
    evaluated at its close either). Never with the manual broker: a person places the rungs by
    hand there, and a market order beside them would trade the same trigger twice."""
    if position.broker == Broker.MANUAL:
        return False
    if Order.objects.filter(position_id=position.id, rung__isnull=False,
                            status__in=OPEN_STATUSES).exists():
        return False
    return since is None or not Fill.objects.filter(order__position_id=position.id,
                                                    created_at__gt=since).exists()


def resting_wanted(position: Position, *, guard_blocked: bool = False,
                   others_open: bool | None = None) -> RestingPair:
    """The rungs the position should have resting now (the strategy core's rule), the daily
    cap counted as :func:`orders.selectors.orders_created_today` (a rung with no fill is not
    a trade) and an open order other than a rung blocking both."""
    if others_open is None:
        others_open = Order.objects.filter(position_id=position.id, rung__isnull=True,
                                           status__in=OPEN_STATUSES).exists()
    return resting(position.state(), position.config(),
                   orders_today=orders_created_today(position=position),
                   has_open_order=others_open, guard_blocked=guard_blocked)


@dataclass(frozen=True)
class Sync:
    placed: tuple[Order, ...] = ()
    cancelled: tuple[Order, ...] = ()
    kept: tuple[Order, ...] = ()
    waiting: bool = False  # a cancel is pending at the broker: nothing placed until it ends


def _matches(order: Order, want: Resting | None) -> bool:
    return (want is not None and order.filled_qty == 0 and order.cancel_requested_at is None
            and order.limit_price == want.limit and order.qty == want.qty)


def _why(order: Order, want: Resting | None) -> str:
    if want is None:
        return f"the ladder rests no {order.rung.lower()} rung now"
    return (f"the ladder's {order.rung.lower()} rung is now {fmt(want.qty)} at "
            f"{fmt(want.limit)}")


def resting_sync(*, position: Position, guard_blocked: bool, why: str = "") -> Sync:
    """Make the position's resting rung orders exactly the ladder's (see the module's docs). The
    caller holds the position's lock in its transaction. ``why``: the reason a cancel gives
    (default: the rung the ladder has instead)."""
    if position.broker == Broker.MANUAL:
        return Sync()  # rests nothing: the API and the admin show what to place
    others_open = Order.objects.filter(position_id=position.id, rung__isnull=True,
                                       status__in=OPEN_STATUSES).exists()
    want = resting_wanted(position, guard_blocked=guard_blocked, others_open=others_open)
    wanted = {rules.BUY: want.buy, rules.SELL: want.sell}
    kept, cancelled, waiting = [], [], False
    for order in resting_open(position):
        if order.cancel_requested_at is not None:
            waiting = True  # the broker has not ended it yet
            continue
        w = wanted.get(order.rung)
        if _matches(order, w):
            kept.append(order)
            continue
        order, ended = order_cancel_request(owner=None, order_id=order.id,
                                             reason=why or _why(order, w))
        cancelled.append(order)
        waiting = waiting or not ended
    if waiting:
        return Sync(kept=tuple(kept), cancelled=tuple(cancelled), waiting=True)
    have = {o.rung for o in kept}
    placed, today = [], orders_created_today(position=position)
    for side, w in wanted.items():
        if w is None or side in have:
            continue
        placed.append(order_submit(
            position=position, side=side, qty=w.qty, source="ladder", price=w.limit,
            limit_price=w.limit, rung=side, created_today=today,
            note=f"{w.kind}, the ladder's trigger {fmt(w.rung)}"))
    return Sync(tuple(placed), tuple(cancelled), tuple(kept))
