"""Routing orders to their broker and reconciling what it reports (docs/brokers.md#brokers).

No transaction is open and no row is locked while a broker is called: the order was committed
before (by the submission's own transaction), the call runs bare, and what it answers is
applied in a new transaction that locks the position and the order again and re-checks them.
Fills enter through the one fill service (:func:`orders.services.order_fill`) keyed by the
broker's fill id, which a database constraint makes unique: a repeated poll never fills twice.
Every broker interaction is an event: ``order_routed``, ``broker_rejected``, ``broker_error``,
``order_cancel_routed`` (a cancel sent to a broker holding the order), then the fill and cancel
events of the fill service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from events.models import EventType
from events.services import event_record
from orders.brokers.alpaca import AlpacaBroker
from orders.brokers.manual import ManualBroker
from orders.brokers.paper import PaperBroker
from orders.brokers.port import (
    CANCELLED,
    EXPIRED,
    HOLDING_BROKERS,
    REJECTED,
    Broker,
    BrokerRejected,
    BrokerUnavailable,
    Report,
    Ticket,
)
from orders.models import OPEN_STATUSES, Fill, Order
from orders.selectors import positions_with_open_orders
from orders.services import _locked_order, order_cancel, order_fill
from positions.models import Broker as BrokerName
from positions.models import Position
from volbal import clock
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt
from volbal.rows import deferred_inserts, update_many

# One adapter per broker of positions.models.Broker (BrokerName here), keyed by its name.
ADAPTERS = {adapter.name: adapter for adapter in (ManualBroker, PaperBroker, AlpacaBroker)}


def broker_for(name: str) -> Broker:
    """The adapter for a position's ``broker`` field."""
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise ValueError(f"no broker adapter named {name!r}") from None


@dataclass
class BrokerRun:
    """What one routing and polling pass did (the trade cycle's summary adds these up)."""

    routed: int = 0
    rejected: int = 0
    errors: int = 0
    fills: int = 0
    fills_refused: int = 0
    cancelled: int = 0
    messages: list[str] = field(default_factory=list)
    # One line per error, for a person: "position order code: sentence".
    failures: list[str] = field(default_factory=list)
    # (action, order id) already attempted in this run: a cycle routes its claimed batches,
    # then whatever is left, and polls both times; an order is placed, polled and its cancel
    # sent at most once per run, so an unreachable broker is one broker_error per order and
    # cycle (docs/brokers.md#alpaca).
    tried: set[tuple[str, str]] = field(default_factory=set)

    def first_try(self, action: str, order_id: str) -> bool:
        """True the first time this run attempts ``action`` on the order (and notes it)."""
        if (action, order_id) in self.tried:
            return False
        self.tried.add((action, order_id))
        return True


def _broker_error(run: BrokerRun, order: Order, action: str, exc: BrokerUnavailable,
                  message: str) -> None:
    """``broker_error`` for one order: the event, counted once and told in one line."""
    run.errors += 1
    run.failures.append(f"{order.position_id} order {order.id} {exc.code}: {message}")
    event_record(position_id=order.position_id, order_id=order.id,
                 type=EventType.BROKER_ERROR, message=message,
                 inputs={"broker": order.broker, "action": action},
                 outputs={"code": exc.code, "error": str(exc)})


def ticket_of(order: Order) -> Ticket:
    position = order.position
    return Ticket(
        order_id=order.id, broker_order_id=order.broker_order_id, ticker=position.ticker,
        side=order.side, qty=order.qty, filled_qty=order.filled_qty,
        placed_at=order.created_at, account=position.state(), cfg=position.config(),
        slippage_bps=position.slippage_bps, order_type=order.order_type,
        limit_price=order.limit_price, rung=order.rung, position_id=order.position_id,
    )


def _unrouted(position_ids=None, positions: dict[str, Position] | None = None) -> list[Order]:
    """The open orders not yet routed (of these positions), oldest first, each with its
    position: read with them, or, for those in ``positions``, the caller's instance."""
    qs = (Order.objects.filter(status__in=OPEN_STATUSES, routed_at__isnull=True)
          .exclude(broker=BrokerName.MANUAL).order_by("created_at", "id"))
    if position_ids is not None:
        qs = qs.filter(position_id__any=position_ids)
    if not positions:
        return list(qs.select_related("position"))
    orders = list(qs)
    missing = {o.position_id for o in orders} - positions.keys()
    known = {**positions, **(Position.objects.in_bulk(missing) if missing else {})}
    for order in orders:
        order.position = known[order.position_id]
    return orders


def _routed_open(position_ids=None):
    qs = (Order.objects.filter(status__in=OPEN_STATUSES, routed_at__isnull=False)
          .exclude(broker=BrokerName.MANUAL).select_related("position")
          .order_by("created_at", "id"))
    return qs if position_ids is None else qs.filter(position_id__any=position_ids)


def orders_route(*, position_ids=None, run: BrokerRun | None = None,
                 positions: dict[str, Position] | None = None) -> BrokerRun:
    """Send every open order not yet routed (of these positions) to its broker: each placed
    with no transaction open, then what they answered recorded for all of them in one
    transaction (:func:`_routed_record`); then the
    cancel requests of the orders a broker holds (:func:`cancels_route`).

    ``positions`` (id → instance): positions the caller has just read (the trade cycle's
    batch, as its evaluation committed them), given to their orders' tickets instead of being
    read again with the orders. A placement reads nothing of a position but its ticker, which
    never changes (the orders themselves are read afresh)."""
    run = run or BrokerRun()
    if position_ids is not None:  # only positions with an open order (see the selector)
        position_ids = positions_with_open_orders(position_ids)
        if not position_ids:
            return run
    placed = []
    for order in _unrouted(position_ids, positions):
        if not run.first_try("place", order.id):
            continue
        broker_order_id = _place(order, run)
        if broker_order_id is not None:
            placed.append((order, broker_order_id))
    _routed_record(placed, run)
    cancels_route(position_ids=position_ids, run=run)
    return run


def order_route(*, order: Order, run: BrokerRun | None = None) -> BrokerRun:
    """Place one committed order with its broker, then record the outcome."""
    run = run or BrokerRun()
    broker_order_id = _place(order, run)
    if broker_order_id is not None:
        _routed_record([(order, broker_order_id)], run)
    return run


def _place(order: Order, run: BrokerRun) -> str | None:
    """Place the order with its broker (no transaction, no lock): the broker's order id, or
    None when the broker does not route, refused it (recorded) or could not be reached
    (recorded; tried again on the next cycle)."""
    broker = broker_for(order.broker)
    if not broker.routes:
        return None
    if order.cancel_requested_at is not None:  # cancelled before it ever reached the broker
        _cancelled_unrouted(order, run)
        return None
    if order.broker in HOLDING_BROKERS and not _placing(order):
        return None  # ended (a cancel at once) or cancel requested meanwhile: not placed
    try:
        return broker.place(ticket_of(order))  # no transaction, no lock
    except BrokerRejected as exc:
        run.rejected += 1
        _rejected(order, exc)
    except BrokerUnavailable as exc:
        _broker_error(run, order, "place", exc,
                      f"Order {order.id} could not be placed with the {broker.name} broker "
                      f"({exc}); it is tried again on the next cycle.")
    return None


def _placing(order: Order) -> bool:
    """Mark the order as being placed (``placing_at``), under its lock, if it is still open,
    unrouted and not asked to cancel: a cancel from now on is a request the cycle sends once
    the placement is recorded (orders.services.order_cancel_request). False: not to place."""
    with transaction.atomic():
        return bool(Order.objects.filter(
            pk=order.pk, status__in=OPEN_STATUSES, routed_at__isnull=True,
            cancel_requested_at__isnull=True).update(placing_at=clock.now()))


def _routed_record(placed: list[tuple[Order, str]], run: BrokerRun) -> None:
    """Record the placed orders (``broker_order_id``, ``routed_at``, ``order_routed``) in one
    transaction: their positions, then the orders locked in id order (as the fill service
    locks them, no deadlock), each re-read; one routed meanwhile by another cycle is left
    alone."""
    if not placed:
        return
    answers = {order.id: broker_order_id for order, broker_order_id in placed}
    with transaction.atomic(), deferred_inserts():
        position_ids = sorted({order.position_id for order, _ in placed})
        tickers = dict(Position.objects.select_for_update(no_key=True)
                       .filter(id__any=position_ids).order_by("id").values_list("id", "ticker"))
        now = clock.now()
        changes = {}
        for order_id, position_id, side, qty, broker, routed_at in (
                Order.objects.select_for_update(no_key=True).filter(id__any=list(answers))
                .order_by("id").values_list("id", "position_id", "side", "qty", "broker",
                                            "routed_at")):
            if routed_at is not None:  # another cycle routed it meanwhile
                continue
            broker_order_id = answers[order_id]
            changes[order_id] = {"broker_order_id": broker_order_id, "routed_at": now,
                                 "updated_at": now}
            event_record(position_id=position_id, order_id=order_id,
                         type=EventType.ORDER_ROUTED,
                         message=f"Order {order_id} ({side} {fmt(qty)} {tickers[position_id]}) "
                         f"placed with the {broker} broker as {broker_order_id}.",
                         inputs={"broker": broker},
                         outputs={"broker_order_id": broker_order_id})
        update_many(Order, changes, ("broker_order_id", "routed_at", "updated_at"))
    run.routed += len(changes)


def _rejected(order: Order, exc: BrokerRejected) -> None:
    with transaction.atomic():
        order, position = _locked_order(owner=None, order_id=order.id)
        event_record(position_id=position.id, order_id=order.id,
                     type=EventType.BROKER_REJECTED,
                     message=f"The {order.broker} broker refused order {order.id}: "
                     f"{exc.message}",
                     inputs={"broker": order.broker}, outputs={"code": exc.code})
        if order.status in OPEN_STATUSES:
            order_cancel(owner=None, order_id=order.id, reason=exc.message, by=order.broker)


def brokers_poll(*, position_ids=None, run: BrokerRun | None = None,
                 skip_price_driven: bool = False) -> BrokerRun:
    """Ask each broker for the status and fills of its open routed orders (of these positions)
    and apply them. ``skip_price_driven`` leaves out brokers whose fills only follow a new
    price (paper): the trade cycle has polled those with the positions the price made due."""
    run = run or BrokerRun()
    if position_ids is not None:  # only positions with an open order (see the selector)
        position_ids = positions_with_open_orders(position_ids)
        if not position_ids:
            return run
    names = sorted(set(_routed_open(position_ids).order_by().values_list("broker", flat=True)
                       .distinct()))  # the orders themselves are read only for brokers polled
    for name in names:
        broker = broker_for(name)
        if skip_price_driven and broker.price_driven:
            continue
        orders = [o for o in _routed_open(position_ids).filter(broker=name)
                  if run.first_try("poll", o.id)]
        if not orders:
            continue
        try:
            reports = broker.poll([ticket_of(o) for o in orders])  # no transaction, no lock
        except BrokerUnavailable as exc:
            for o in orders:
                _broker_error(run, o, "poll", exc,
                              f"The {name} broker could not be polled ({exc}); order {o.id} "
                              "is polled again on the next cycle.")
            continue
        for report in reports:
            report_apply(broker=name, report=report, run=run)
    return run


def report_apply(*, broker: str, report: Report, run: BrokerRun | None = None) -> BrokerRun:
    """Apply one broker report: each fill through the fill service (idempotent by its id),
    then the end of the order if the broker ended it. A fill the broker reports again (Alpaca
    lists an order's every execution on each poll) changes nothing and is not counted again."""
    run = run or BrokerRun()
    applied = _applied_fill_ids(broker, report)
    for f in report.fills:
        try:
            order_fill(owner=None, order_id=report.order_id, price=f.price, filled_qty=f.qty,
                       commission=f.commission, broker=broker, broker_fill_id=f.broker_fill_id)
            run.fills += f.broker_fill_id not in applied
        except DomainError as exc:  # recorded as fill_rejected by the fill service
            run.fills_refused += 1
            run.messages.append(f"{report.order_id}: fill refused: {exc.message}")
            run.failures.append(f"order {report.order_id} {exc.code}: fill refused: "
                                f"{exc.message}")
    if report.status in (CANCELLED, REJECTED, EXPIRED):
        try:
            _ended_by_broker(broker, report)
            run.cancelled += 1
        except DomainError:  # already ended (filled or cancelled meanwhile)
            pass
    return run


def _applied_fill_ids(broker: str, report: Report) -> set[str]:
    if not report.fills:
        return set()
    return set(Fill.objects.filter(broker=broker, broker_fill_id__in=[
        f.broker_fill_id for f in report.fills]).values_list("broker_fill_id", flat=True))


def _ended_by_broker(broker: str, report: Report) -> None:
    """The broker ended the order: ``broker_rejected`` first if it refused it, then
    ``order_expired`` (a day order past its session) or ``order_cancelled``."""
    if report.status == REJECTED:
        order = Order.objects.get(pk=report.order_id)
        if order.status in OPEN_STATUSES:
            _rejected(order, BrokerRejected(f"{broker}_rejected", report.reason))
            return
    order_cancel(owner=None, order_id=report.order_id, reason=report.reason, by=broker,
                 event_type=(EventType.ORDER_EXPIRED if report.status == EXPIRED
                             else EventType.ORDER_CANCELLED))


def cancels_route(*, position_ids=None, run: BrokerRun | None = None) -> BrokerRun:
    """Send each cancel requested of an order a broker holds (orders.services.
    order_cancel_request) to the broker, once: ``order_cancel_routed``, or ``broker_error`` and
    sent again on the next cycle. The order ends when the broker's poll reports it ended."""
    run = run or BrokerRun()
    qs = (Order.objects.filter(status__in=OPEN_STATUSES, routed_at__isnull=False,
                               cancel_requested_at__isnull=False, cancel_sent_at__isnull=True)
          .select_related("position").order_by("cancel_requested_at", "id"))
    if position_ids is not None:
        qs = qs.filter(position_id__any=position_ids)
    for order in list(qs):
        if not run.first_try("cancel", order.id):
            continue
        broker = broker_for(order.broker)
        try:
            broker.cancel(ticket_of(order))  # no transaction, no lock
        except BrokerUnavailable as exc:
            _broker_error(run, order, "cancel", exc,
                          f"The cancel of order {order.id} could not be sent to the "
                          f"{broker.name} broker ({exc}); it is sent again on the next cycle.")
            continue
        with transaction.atomic():
            order, position = _locked_order(owner=None, order_id=order.id)
            if order.cancel_sent_at is not None:
                continue
            order.cancel_sent_at = clock.now()
            order.save(update_fields=["cancel_sent_at", "updated_at"])
            event_record(position_id=position.id, order_id=order.id,
                         type=EventType.ORDER_CANCEL_ROUTED,
                         message=f"The {broker.name} broker was asked to cancel order "
                         f"{order.id} ({order.broker_order_id}); it ends when the broker "
                         "reports it ended.",
                         inputs={"broker": broker.name},
                         outputs={"broker_order_id": order.broker_order_id})
    return run


def _cancelled_unrouted(order: Order, run: BrokerRun) -> None:
    try:
        order_cancel(owner=None, order_id=order.id,
                     reason="cancelled before it was sent to the broker")
        run.cancelled += 1
    except DomainError:  # ended meanwhile
        pass
