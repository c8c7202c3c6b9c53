"""Writes on orders: submit, fill, cancel. Each is one transaction with the position locked."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from events.models import EventType
from events.services import event_record, event_record_refusal, events_unheard, refusal_scope
from orders.brokers.port import HOLDING_BROKERS
from orders.models import (
    OPEN_STATUSES,
    Fill,
    IdempotencyRecord,
    Order,
    OrderStatus,
    Side,
    TimeInForce,
)
from orders.selectors import (
    known_price,
    open_remaining,
    order_book,
    order_not_found,
    orders_created_today,
    submission_annotations,
)
from positions import books
from positions.models import OrderType, Position
from positions.selectors import position_get
from positions.services import position_configure
from positions.strategy import rules
from volbal import clock, market
from volbal.columns import out_of_range as _out_of_range
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt
from volbal.rows import fetch_one


def order_fillable_check(*, position: Position, side: str, qty: Decimal,
                         price: Decimal | None = None, nothing_open: bool = False,
                         committed: dict[str, Decimal] | None = None) -> None:
    """Refuse an order that could never fill, counting what the open orders already commit.

    A sell of more than the shares held less the open sells' remaining quantity: 409
    ``insufficient_qty``. A buy whose cost (with the default commission) at ``price`` (default:
    the latest known price, :func:`positions.selectors.known_price`), together with the open
    buys' remaining quantity, exceeds the cash: 409 ``insufficient_cash``. With no price known
    at all a buy cannot be costed and is accepted; its fill is checked like any fill.
    ``nothing_open``: the caller knows the position has no open order (nothing committed);
    ``committed``: the caller has read what they commit (:func:`open_remaining`'s answer)."""
    if committed is None:
        committed = {side: Decimal(0)} if nothing_open else open_remaining(position=position)
    committed = committed[side]
    if side == Side.SELL:
        free = position.qty - committed
        if qty > free:
            raise DomainError(
                "insufficient_qty",
                f"Cannot sell {fmt(qty)} {position.ticker}: {fmt(max(free, Decimal(0)))} shares "
                f"are free ({fmt(position.qty)} held, {fmt(committed)} already committed to open "
                "sells).", status=409)
        return
    if price is None:
        known = known_price(position)
        if known is None:
            return
        price = known.price

    def cost(q: Decimal) -> Decimal:
        return buy_cost(position, q, price)

    if cost(committed + qty) > position.cash:
        raise DomainError(
            "insufficient_cash",
            f"Buying {fmt(qty)} {position.ticker} at {fmt(price)} costs {fmt(cost(qty))} with "
            f"commission; the cash is {fmt(position.cash)}"
            + (f", of which open buys of {fmt(committed)} shares already commit "
               f"{fmt(cost(committed))}" if committed else "")
            + ".", status=409)


def buy_cost(position: Position, qty: Decimal, price: Decimal) -> Decimal:
    """The cash a buy of ``qty`` at ``price`` takes, with the position's default commission:
    what :func:`order_fillable_check` counts against the cash (open buys and the new one)."""
    commission = rules.default_commission(position.commission_rate, qty, price)
    return -rules.cash_after_buy(cash=Decimal(0), qty=qty, price=price, commission=commission)


@dataclass(frozen=True)
class Committed:
    """What a position's open buy orders commit: the shares they still have to fill, the cash
    that takes at the latest known price (:func:`buy_cost`; 0 when no price is known, as
    :func:`order_fillable_check` then accepts a buy) and the orders' ids."""

    qty: Decimal
    cash: Decimal
    order_ids: tuple[str, ...]


def cash_committed(position: Position) -> Committed:
    """What the open buys of ``position`` commit (:class:`Committed`); the caller holds its
    lock. The same rule as a submission's (:func:`open_remaining`, :func:`buy_cost`)."""
    qty = open_remaining(position=position)[Side.BUY]
    if not qty:
        return Committed(Decimal(0), Decimal(0), ())
    known = known_price(position)
    cash = Decimal(0) if known is None else buy_cost(position, qty, known.price)
    ids = tuple(Order.objects.filter(position_id=position.id, side=Side.BUY,
                                     status__in=OPEN_STATUSES)
                .order_by("id").values_list("id", flat=True))
    return Committed(qty, cash, ids)


def cash_out_check(position: Position, amount: Decimal) -> None:
    """``amount`` may leave the position's cash (a withdrawal, a transfer out) only if what
    its open buy orders commit stays: 409 ``insufficient_cash`` naming them otherwise, so a
    broker's fill of an accepted order is never refused for cash moved away under it."""
    committed = cash_committed(position)
    if not committed.cash or position.cash - amount >= committed.cash:
        return
    free = max(position.cash - committed.cash, Decimal(0))
    raise DomainError(
        "insufficient_cash",
        f"Cannot take {fmt(amount)} out of {position.id}: its cash is {fmt(position.cash)}, of "
        f"which open buy order(s) {', '.join(committed.order_ids)} commit "
        f"{fmt(committed.cash)} ({fmt(committed.qty)} {position.ticker} still to buy at the "
        f"latest price, with commission); at most {fmt(free)} can leave. Cancel those orders "
        "or wait for their fills first.", status=409)


def time_in_force_of(broker: str, asked: str | None) -> str:
    """An order's time in force: what was asked, else the broker's. A broker that holds our
    orders (Alpaca) is sent market *day* orders (Alpaca takes fractional quantities only as
    day orders), which it expires at the session's close: its orders are day orders, and a
    ``gtc`` asked of it is refused (400) rather than recorded as something it is not. Other
    orders (manual, paper: the simulator fills at the next price, whenever it comes, as the
    backtest's ``fill: next_bar``) are ``gtc`` unless ``day`` is asked."""
    if broker in HOLDING_BROKERS:
        if asked not in (None, TimeInForce.DAY):
            raise DomainError(
                "validation_error",
                f"Orders of the {broker} broker are day orders (it expires them at the "
                "session's close); time_in_force must be day.",
                status=400, fields={"time_in_force": "Must be day for this broker."})
        return TimeInForce.DAY
    return asked or TimeInForce.GTC


def order_submit(
    *,
    position: Position,
    side: str,
    qty: Decimal,
    idempotency_key: str | None = None,
    source: str = "api",
    note: str = "",
    price: Decimal | None = None,
    time_in_force: str | None = None,
    created_today: int | None = None,
    nothing_open: bool = False,
    limit_price: Decimal | None = None,
    rung: str | None = None,
    committed: dict[str, Decimal] | None = None,
    today: dt.date | None = None,
) -> Order:
    """Create an order on a position the caller has already locked (``select_for_update``).

    Refuses with 409 ``daily_order_cap_exceeded`` once the position's cap for the trading day
    is reached, and an order that could never fill (:func:`order_fillable_check`, at ``price``
    or the latest known price). A refusal creates nothing, so it counts toward no cap.
    Callers: the orders endpoint (:func:`order_submit_for`) and evaluation, which may pass what
    it already read for the locked position: ``created_today`` (the session's orders) and
    ``nothing_open`` (no open order) or ``committed`` (what the open orders commit, per side),
    and ``today``: the session those were read for (default: the current one), the order's.
    ``time_in_force`` None: the broker's (:func:`time_in_force_of`). ``limit_price``: a limit
    order at that price (checked for cash at it); ``rung``: the ladder's rung it rests for
    (docs/strategy.md#resting-orders), named in its ``order_submitted`` event."""
    time_in_force = time_in_force_of(position.broker, time_in_force)
    if side not in rules.SIDES:  # Side.values, without building its list per order
        raise DomainError(
            "validation_error",
            "side must be BUY or SELL.",
            status=400,
            fields={"side": "Must be BUY or SELL."},
        )
    if qty <= 0:
        raise DomainError(
            "validation_error",
            "qty must be greater than zero.",
            status=400,
            fields={"qty": "Must be greater than zero."},
        )
    if today is None:
        today = clock.session_day()
    if created_today is None:
        created_today = orders_created_today(position=position, today=today)
    if created_today >= position.max_orders_per_day:
        raise DomainError(
            "daily_order_cap_exceeded",
            f"The position already has {created_today} orders on {today} "
            f"(max_orders_per_day is {position.max_orders_per_day}).",
            status=409,
        )
    order_fillable_check(position=position, side=side, qty=qty,
                         price=limit_price if limit_price is not None else price,
                         nothing_open=nothing_open, committed=committed)
    limit = {} if limit_price is None else {"order_type": OrderType.LIMIT,
                                            "limit_price": limit_price, "rung": rung}
    order = Order(
        position=position,
        side=side,
        qty=qty,
        idempotency_key=idempotency_key,
        source=source,
        trading_day=today,
        broker=position.broker,
        time_in_force=time_in_force,
        **limit,
    )
    event_record(  # the order inserted first, in the event's statement
        inserted_first=(order,),
        position_id=position.id,
        order_id=order.id,
        type=EventType.ORDER_SUBMITTED,
        message=f"Order {order.id} submitted: {side} {fmt(qty)} {position.ticker}"
        + (f" limit {fmt(limit_price)}" if limit_price is not None else "")
        + (f", the ladder's {rung.lower()} rung" if rung else "")
        + (f" ({note})" if note else "")
        + ".",
        inputs={"side": side, "qty": qty, "source": source, "idempotency_key": idempotency_key,
                **({"order_type": OrderType.LIMIT, "limit_price": limit_price, "rung": rung}
                   if limit else {})},
        outputs={
            "order_id": order.id,
            "status": order.status,
            "trading_day": today.isoformat(),
            "orders_today": created_today + 1,
        },
    )
    return order


def order_submit_for(
    *, owner, position_id: str, side: str, qty: Decimal, idempotency_key: str | None,
    time_in_force: str | None = None,
) -> tuple[Order, bool]:
    """The orders endpoint's use case: lock the caller's position, then submit.

    Returns ``(order, created)``. A key already used on this position returns its order (even
    after the idempotency record expired): the order table holds one order per key.

    No savepoint of its own: nothing here recovers from a failed statement, and a refusal
    rolls back the caller's whole transaction anyway (the request's, under the middleware).

    Two reads (bench/orders_load.py's hot path): the position, locked, with what its known
    price needs and whether its owner listens to events (:func:`submission_annotations`),
    then, under the lock, the key's order, the session's count and the open orders' sums
    (:func:`order_book`)."""
    with transaction.atomic(savepoint=False):
        position = position_get(owner=owner, position_id=position_id, for_update=True,
                                annotate=submission_annotations())
        time_in_force = time_in_force_of(position.broker, time_in_force)
        today = clock.session_day()  # once: the count's session is the order's
        book = order_book(position=position, idempotency_key=idempotency_key, today=today)
        existing = None
        if book.existing_id is not None:
            existing = fetch_one(Order, id=book.existing_id)
        if existing is not None:
            if (existing.side, existing.qty, existing.time_in_force) != (side, qty, time_in_force):
                raise DomainError(
                    "idempotency_signature_mismatch",
                    "This Idempotency-Key was used with another order body.",
                    status=409,
                )
            return existing, False
        with (contextlib.nullcontext() if position.owner_listens
              else events_unheard(position.id)):
            return order_submit(
                position=position, side=side, qty=qty, idempotency_key=idempotency_key,
                time_in_force=time_in_force, created_today=book.created_today,
                committed=book.open_remaining, today=today,
            ), True


def _locked_order(*, owner, order_id: str) -> tuple[Order, Position]:
    """Lock the order's position, then the order (always in that order: no deadlocks).

    ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: a row locked FOR UPDATE also blocks every insert
    that merely refers to it (the FOR KEY SHARE of a foreign-key check). A refused fill's event,
    written after its transaction, refers to both rows; with FOR UPDATE it could hold the order
    and wait for the position while a fill held the position and waited for the order: a
    deadlock. Fills still exclude each other: NO KEY UPDATE conflicts with itself."""
    qs = Order.objects.filter(pk=order_id)
    if owner is not None:
        qs = qs.filter(position__owner=owner)
    position_id = qs.values_list("position_id", flat=True).first()
    if position_id is None:
        raise order_not_found(order_id)
    position = Position.objects.select_for_update(no_key=True).get(pk=position_id)
    order = Order.objects.select_for_update(no_key=True).get(pk=order_id)
    return order, position


def _refuse_fill(order: Order, code: str, message: str, inputs: dict) -> DomainError:
    event_record_refusal(
        position_id=order.position_id,
        order_id=order.id,
        type=EventType.FILL_REJECTED,
        message=f"Fill refused on {order.id}: {message}",
        inputs=inputs,
        outputs={"code": code},
    )
    return DomainError(code, message, status=409)


def order_fill(
    *, owner, order_id: str, price: Decimal, filled_qty: Decimal, commission: Decimal | None = None,
    broker: str = "manual", broker_fill_id: str | None = None,
) -> tuple[Order, Position, Fill]:
    """Apply an execution: balances, the order's progress, the anchor, and their events.

    A refused fill changes nothing but the ``fill_rejected`` event that says why. Only a
    ``manual`` order takes typed-in fills (``broker`` "manual"): an order a broker holds
    (paper, alpaca) takes only that broker's fills, 409 ``order_held_by_broker``. A broker's
    execution carries ``broker_fill_id``: the same id again (a repeated poll) changes nothing
    and returns the fill already applied; if its numbers differ from the stored ones, a
    ``broker_fill_mismatch`` event records the anomaly and the stored fill stands."""
    with refusal_scope(), transaction.atomic():
        order, position = _locked_order(owner=owner, order_id=order_id)
        inputs = {"price": price, "filled_qty": filled_qty, "commission": commission}
        if broker_fill_id is not None:
            inputs.update(broker=broker, broker_fill_id=broker_fill_id)
            seen = fetch_one(Fill, broker=broker, broker_fill_id=broker_fill_id)
            if seen is not None:
                _compare_replayed_fill(seen, order, inputs)
                return order, position, seen
        if broker == "manual" and order.broker != "manual":
            raise _refuse_fill(
                order, "order_held_by_broker",
                f"Order {order.id} is held by the {order.broker} broker: its fills come from "
                "that broker (the trade cycle polls it). Only orders of manual positions take "
                "typed-in fills.", inputs)
        if order.status not in OPEN_STATUSES:
            raise _refuse_fill(
                order, "order_not_open", f"Order {order.id} is {order.status}.", inputs
            )
        if filled_qty > order.remaining_qty:
            raise _refuse_fill(
                order,
                "fill_exceeds_order",
                f"A fill of {fmt(filled_qty)} exceeds the {fmt(order.remaining_qty)} "
                "the order has left.",
                inputs,
            )
        if commission is None:
            commission = rules.default_commission(position.commission_rate, filled_qty, price)
        try:
            new_qty, new_cash = books.fill_effect(position=position, side=order.side,
                                                  qty=filled_qty, price=price,
                                                  commission=commission)
        except (rules.RuleError, DomainError) as exc:
            raise _refuse_fill(order, exc.code, exc.message, inputs) from None
        too_large = _out_of_range((Order, "commission_paid", order.commission_paid + commission))
        if too_large:
            raise _refuse_fill(order, "balance_out_of_range",
                               books.balance_out_of_range(too_large).message, inputs)

        order.avg_fill_price = rules.avg_fill_price(avg=order.avg_fill_price,
                                                    filled=order.filled_qty, price=price,
                                                    qty=filled_qty)
        order.filled_qty += filled_qty
        order.commission_paid += commission
        order.status = (
            OrderStatus.FILLED if order.filled_qty == order.qty else OrderStatus.PARTIALLY_FILLED
        )
        order.save(
            update_fields=[
                "filled_qty",
                "avg_fill_price",
                "commission_paid",
                "status",
                "updated_at",
            ]
        )
        fill = Fill.objects.create(order=order, qty=filled_qty, price=price, commission=commission,
                                   broker=broker, broker_fill_id=broker_fill_id)
        filled = order.status == OrderStatus.FILLED
        event_record(
            position_id=position.id,
            order_id=order.id,
            type=EventType.ORDER_FILLED if filled else EventType.ORDER_PARTIALLY_FILLED,
            message=f"{order.side} {fmt(filled_qty)} {position.ticker} at {fmt(price)} "
            f"(commission {fmt(commission)}); order {fmt(order.filled_qty)}/{fmt(order.qty)} "
            "filled.",
            inputs={**inputs, "commission": commission},
            outputs={
                "fill_id": fill.id,
                "status": order.status,
                "filled_qty": order.filled_qty,
                "avg_fill_price": order.avg_fill_price,
                "position_qty": new_qty,
                "position_cash": new_cash,
            },
        )
        # the books last: their anchor_updated follows the fill's event
        books.fill(position=position, side=order.side, qty=filled_qty, price=price,
                   commission=commission, at=fill.created_at, order_id=order.id)
    return order, position, fill


def _compare_replayed_fill(seen: Fill, order: Order, inputs: dict) -> None:
    """A broker fill id already applied: record an anomaly if the numbers differ."""
    if seen.order_id != order.id or seen.qty != inputs["filled_qty"] \
            or seen.price != inputs["price"] \
            or inputs["commission"] not in (None, seen.commission):
        event_record(
            position_id=order.position_id, order_id=order.id,
            type=EventType.BROKER_FILL_MISMATCH,
            message=f"Broker fill {seen.broker_fill_id} reported again with other numbers "
            f"({fmt(inputs['filled_qty'])} at {fmt(inputs['price'])}); the fill applied "
            f"({fmt(seen.qty)} at {fmt(seen.price)}) stands.",
            inputs=inputs,
            outputs={"fill_id": seen.id, "qty": seen.qty, "price": seen.price,
                     "commission": seen.commission, "order_id": seen.order_id},
        )


def order_cancel(*, owner, order_id: str, reason: str = "", by: str = "",
                 event_type: str = EventType.ORDER_CANCELLED) -> Order:
    """Cancel an open order; what was already filled stays filled. ``reason`` (a clause) and
    ``by`` (e.g. the broker that ended it) are recorded in the event (``order_cancelled``, or
    ``order_expired`` for a day order past its session)."""
    with transaction.atomic():
        order, position = _locked_order(owner=owner, order_id=order_id)
        if order.status not in OPEN_STATUSES:
            raise DomainError("order_not_open", f"Order {order.id} is {order.status}.", status=409)
        order.status = OrderStatus.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        _ended_event(order, reason=reason, by=by, event_type=event_type)
    return order


def _ended_event(order: Order, *, reason: str = "", by: str = "",
                 event_type: str = EventType.ORDER_CANCELLED) -> None:
    """The event of an order that ended unfilled in part or whole (``order_cancelled`` or
    ``order_expired``): one per ending, whatever ended it (:func:`order_cancel`, a split)."""
    event_record(
        position_id=order.position_id,
        order_id=order.id,
        type=event_type,
        message=f"Order {order.id} "
        f"{'expired' if event_type == EventType.ORDER_EXPIRED else 'cancelled'} with "
        f"{fmt(order.filled_qty)}/{fmt(order.qty)} filled"
        + (f" by the {by} broker" if by else "") + (f": {reason}." if reason else "."),
        inputs={"reason": reason, "by": by} if (reason or by) else {},
        outputs={"status": order.status, "filled_qty": order.filled_qty},
    )


# How long a placement under way keeps a cancel a request: past the Alpaca adapter's longest
# call (its timeouts and retries), a placement still unrecorded is taken for a cycle that died.
PLACING_WINDOW_SECONDS = 120


def _broker_may_hold(order: Order) -> bool:
    """The holding broker has the order, or may have it: routed, or a cycle began placing it
    within :data:`PLACING_WINDOW_SECONDS` (``placing_at``, set under the order's lock). An
    order never sent cannot be live there and ends at once."""
    if order.routed_at is not None or order.broker_order_id:
        return True
    return (order.placing_at is not None and order.placing_at
            > clock.now() - dt.timedelta(seconds=PLACING_WINDOW_SECONDS))


def order_cancel_request(*, owner, order_id: str, reason: str = "") -> tuple[Order, bool]:
    """The API's and the admin's cancel; returns ``(order, ended)``.

    An order a broker holds (Alpaca) is not ended here: the request is recorded
    (``order_cancel_requested``), the trade cycle sends it (``order_cancel_routed``) and the
    order ends when the broker reports it ended, with the fills it had until then. Ending it
    here first would leave it live at the broker, and a fill there would never be recorded.
    That includes an order a cycle is placing right now (:func:`_broker_may_hold`: the order
    row is locked here and when the placement begins, so one of them sees the other). An
    order of such a broker not yet sent, and any other order, is cancelled at once
    (:func:`order_cancel`): a cycle that then reads it finds it ended and never places it."""
    with transaction.atomic():
        order, position = _locked_order(owner=owner, order_id=order_id)
        if (order.broker not in HOLDING_BROKERS or order.status not in OPEN_STATUSES
                or not _broker_may_hold(order)):
            return order_cancel(owner=owner, order_id=order_id, reason=reason), True
        if order.cancel_requested_at is None:
            order.cancel_requested_at = clock.now()
            order.save(update_fields=["cancel_requested_at", "updated_at"])
            event_record(
                position_id=position.id, order_id=order.id,
                type=EventType.ORDER_CANCEL_REQUESTED,
                message=f"Cancel of order {order.id} requested"
                + (f" ({reason})" if reason else "") + f"; the {order.broker} broker holds "
                "it: the order ends when the broker reports it ended (it may still fill).",
                inputs={"broker": order.broker, **({"reason": reason} if reason else {})},
                outputs={"status": order.status, "filled_qty": order.filled_qty})
    return order, False


def orders_expire(*, now=None) -> list[str]:
    """Cancel every open day order whose session has closed, with an ``order_expired`` event;
    returns their ids. Each in its own transaction; one ended meanwhile is left alone.
    An order routed to a broker that expires its own day orders (Alpaca) is left to it: the
    broker may still report fills from before the close, and its poll reports the expiry."""
    now = now or clock.now()
    expired = []
    day_orders = (Order.objects.filter(status__in=OPEN_STATUSES, time_in_force=TimeInForce.DAY,
                                       trading_day__lte=clock.session_day(now))
                  .exclude(broker__in=HOLDING_BROKERS, routed_at__isnull=False)
                  .order_by("trading_day", "id").values_list("id", "trading_day"))
    for order_id, day in day_orders:
        close = market.session_close(day) or clock.start_of_trading_day(
            day + dt.timedelta(days=1))
        if now < close:
            continue
        try:
            order_cancel(owner=None, order_id=order_id, event_type=EventType.ORDER_EXPIRED,
                         reason=f"a day order, its session ({day}) closed at "
                         f"{close.isoformat()}")
        except DomainError:
            continue
        expired.append(order_id)
    return expired


PURGE_BATCH = 5000


def idempotency_records_purge(*, now=None) -> int:
    """Delete the idempotency records that expired at or before ``now`` (default: now); returns
    how many. Batched, so a large backlog never holds many row locks at once. A record still
    being written belongs to an uncommitted transaction and is not seen; an expired key that
    is reused meanwhile is claimed afresh by the middleware either way."""
    now = now or clock.now()
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                IdempotencyRecord.objects.filter(expires_at__lte=now)
                .order_by("expires_at", "id")
                .values_list("id", flat=True)[:PURGE_BATCH]
            )
            if not ids:
                return deleted
            deleted += IdempotencyRecord.objects.filter(id__in=ids, expires_at__lte=now).delete()[0]


def orders_resize_for_split(*, position_id: str, ratio,
                            step: Decimal | None) -> list[dict]:
    """A split of ``ratio`` (k = new/old, exactly) re-sizes the position's open orders
    (docs/strategy.md#splits): each one's remaining quantity × k, rounded to ``step``; an
    order left with nothing to trade ends (cancelled). An order whose cancel is requested (a
    broker holds it: :func:`orders_held_cancel_for_split`) is left to the broker. The caller
    has locked the position and applies the split to its books (:func:`positions.books.split`)
    in the same transaction.
    409 ``split_out_of_range`` naming the order when its quantity could not be stored (checked
    for every order before any is changed). Returns ``{"order_id", "remaining_before",
    "remaining_after"}`` per order, for its event; the caller then records the end of each
    order left with nothing (:func:`orders_ended_by_split_record`), after ``split_applied``
    (the ledger's replay ends them when it replays the split)."""
    orders, resized = [], []
    for order in Order.objects.select_for_update().filter(
            position_id=position_id, status__in=OPEN_STATUSES, cancel_requested_at=None):
        remaining = order.qty - order.filled_qty
        new_remaining = rules.split_qty(remaining, ratio, step)
        if _out_of_range((Order, "qty", order.filled_qty + new_remaining)):
            raise DomainError(
                "split_out_of_range", f"After the split the quantity of open order {order.id} "
                f"({fmt(remaining)} left × {rules.split_ratio_text(ratio)}) would be beyond "
                "what an order can hold; nothing was applied.", status=409,
                fields={"ratio": f"open order {order.id}'s qty would overflow."})
        resized.append((order, remaining, new_remaining))
    for order, remaining, new_remaining in resized:
        orders.append({"order_id": order.id, "remaining_before": remaining,
                       "remaining_after": new_remaining})
        order.qty = order.filled_qty + new_remaining
        if new_remaining == 0:  # nothing left to trade after rounding: the order ends
            order.qty = order.filled_qty if order.filled_qty > 0 else remaining
            order.status = OrderStatus.CANCELLED
        order.save(update_fields=["qty", "status", "updated_at"])
    return orders


def orders_held_cancel_for_split(*, position: Position, reason: str) -> list[Order]:
    """Before a split re-sizes a position's open orders: each one a broker holds, or may hold
    (Alpaca, routed or being placed: :func:`_broker_may_hold`), gets a cancel request
    (``order_cancel_requested``, ``reason`` naming the split), as a cancel from the API would.
    The broker has it in the old shares: re-sizing or ending it here alone would leave it live
    there, and a fill there would never be recorded. It ends when the broker reports it ended;
    the next cycle proposes again at the new prices. The caller holds the position's lock."""
    held = (Order.objects.filter(position_id=position.id, status__in=OPEN_STATUSES,
                                 broker__in=HOLDING_BROKERS, cancel_requested_at=None)
            .order_by("id"))
    return [order_cancel_request(owner=None, order_id=order.id, reason=reason)[0]
            for order in held if _broker_may_hold(order)]


def orders_ended_by_split_record(*, orders: list[dict], reason: str) -> None:
    """``order_cancelled`` for each order :func:`orders_resize_for_split` ended (nothing left to
    trade: ``remaining_after`` 0), ``reason`` naming the split: the same event as any cancel,
    so the log and the webhooks tell every ending (docs/strategy.md#events)."""
    ended = Order.objects.in_bulk([e["order_id"] for e in orders if e["remaining_after"] == 0])
    for entry in orders:  # in the order the split reported them
        if entry["order_id"] in ended:
            _ended_event(ended[entry["order_id"]], reason=reason)


def resting_orders_replace(*, position: Position, reason: str) -> list[Order]:
    """The ladder of ``position`` changed outside a trade cycle (a configuration change, a cash
    movement, a dividend, a split): its resting rung orders (docs/strategy.md#resting-orders)
    are cancelled now, ``reason`` in each cancel's event, and the next cycle places the new
    ladder's rungs. An order a broker holds (Alpaca) gets a cancel request
    (``order_cancel_requested``; it ends when the broker reports it ended, and no rung is placed
    while it is open); others end at once (``order_cancelled``). The caller holds the
    position's lock, in its own transaction. Returns the orders, as they are now.

    When it cancels any, the position is made due (its ``evaluated_price_ts`` cleared): the
    next cycle claims it without waiting for a new price and rests the new ladder's rungs."""
    out = []
    for order_id in (Order.objects.filter(position_id=position.id, rung__isnull=False,
                                          status__in=OPEN_STATUSES, cancel_requested_at=None)
                     .order_by("id").values_list("id", flat=True)):
        out.append(order_cancel_request(owner=None, order_id=order_id, reason=reason)[0])
    if out and position.evaluated_price_ts is not None:
        position.evaluated_price_ts = None
        books.marks_save(position, ("evaluated_price_ts",))
    return out


def position_configure_replacing_rungs(*, owner, position_id: str, changes: dict,
                                       origin: dict | None = None) -> Position:
    """Change a position's configuration (:func:`positions.services.position_configure`, its
    ``config_changed`` event) and, when anything changed, replace its resting rungs in the same
    transaction (:func:`resting_orders_replace`): the ladder moved, or the order type or the
    broker did. The PATCH endpoint, the admin and a sweep cell's apply all configure here."""
    with transaction.atomic():
        before = Position.objects.filter(pk=position_id).values("updated_at").first()
        position = position_configure(owner=owner, position_id=position_id, changes=changes,
                                      origin=origin)
        if before is not None and position.updated_at != before["updated_at"]:
            resting_orders_replace(position=position,
                                   reason="the ladder moved: the configuration changed")
    return position
