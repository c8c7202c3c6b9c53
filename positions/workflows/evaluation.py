"""Evaluation (docs/strategy.md#live-loop): the rules applied to a locked position at a
known price, the price-jump guard, the submission of the proposal and the events, for one
position or a claimed batch of the trade cycle; and the ladder preview, which asks the same
questions without acting."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Exists, OuterRef

from events.models import EventType
from events.services import event_record
from orders.models import OPEN_STATUSES, Order
from orders.selectors import (
    KnownPrice,
    has_open_order,
    known_price,
    orders_created_today,
    orders_created_today_many,
    positions_with_open_orders,
)
from orders.services import order_submit
from positions import books
from positions.models import MONEY, Broker, OrderType, Position, Price, Split, SplitStatus
from positions.selectors import (
    PriceSource,
    applied_splits,
    latest_price,
    latest_prices,
    position_get,
    split_adjusted,
)
from positions.strategy import rules
from positions.strategy.ladder import Ladder, RestingPair, ladder
from positions.workflows.corporate_actions import splits_apply_due
from positions.workflows.guard import (
    PRICE_JUMP,
    JumpFacts,
    accept,
    guard_decision,
    jump_facts_many,
    price_jump_of,
)
from positions.workflows.resting import (
    Sync,
    is_limit,
    market_allowed,
    resting_open,
    resting_sync,
    resting_wanted,
)
from volbal import clock
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt
from volbal.rows import deferred_inserts

_GUARDRAIL_CAPS = ("guardrail_high", "guardrail_low")


ORDER_QTY_LIMIT = Decimal(10) ** 16  # an order's qty column holds 24 digits, 8 of them decimals


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation decided and did."""

    position: Position
    decision: rules.Decision | None  # None when there was no price to evaluate at
    price_source: str  # a PriceSource: request, stored, fill or none
    price_ts: dt.datetime | None = None  # when the known price was observed (stored or fill)
    order: Order | None = None  # the order submitted with ``submit``
    rungs: Sync | None = None  # a limit position's resting orders, as this evaluation left them
    reason: str = ""
    message: str = ""


def proposal_payload(proposal: rules.Proposal) -> dict:
    return {
        "side": proposal.side,
        "qty": proposal.qty,
        "price": proposal.price,
        "notional": proposal.notional,
        "commission": proposal.commission,
        "kind": proposal.kind,
        "raw_qty": proposal.raw_qty,
        "trimmed": proposal.trimmed,
        "trimmed_by": proposal.trimmed_by,
        "post_trade_weight": proposal.post_trade_weight,
        "reason": proposal.reason,
    }


def decision_payload(decision: rules.Decision) -> dict:
    """The decision as the API and the ``evaluation`` event show it."""
    blocked = []
    if decision.blocked is not None:
        blocked.append({**proposal_payload(decision.blocked), "blocked_by": decision.blocked_by})
    return {
        "price": decision.price,
        "anchor_price": decision.anchor,
        "anchor_set": decision.anchor_set,
        "value": decision.value,
        "weight": decision.weight,
        "proposals": [proposal_payload(decision.proposal)] if decision.proposal else [],
        "blocked": blocked,
        "reason": decision.reason,
        "message": decision.message,
    }


@dataclass(frozen=True)
class Facts:
    """What an evaluation reads besides the position and the price: the orders the position
    placed in the session (the daily cap), whether it has an open order, and the price-jump
    guard's facts. The trade cycle reads them for a whole batch at once; without them each is
    one query."""

    orders_today: int
    has_open_order: bool
    jump: JumpFacts | None = None  # None: the guard reads its own


def position_decide(*, position: Position, price: Decimal,
                    facts: Facts | None = None) -> rules.Decision:
    """The rules applied to a position as it stands: read-only (the admin's preview uses it)."""
    if facts is None:
        facts = Facts(orders_created_today(position=position), has_open_order(position=position))
    try:
        return rules.evaluate(
            position.state(), position.config(), price,
            orders_today=facts.orders_today, has_open_order=facts.has_open_order,
        )
    except InvalidOperation:  # a size beyond 28 significant digits: no order could hold it
        raise DomainError("qty_out_of_range", f"At price {fmt(price)} the position's size is "
                          "beyond what an order can hold; nothing was evaluated.",
                          status=409) from None


def position_evaluate(*, owner, position_id: str, price: Decimal | None = None,
                      submit: bool = False, source: str = "api",
                      skip_if_evaluated_at_latest: bool = False,
                      mark_latest: bool = False,
                      idempotency_key: str | None = None) -> Evaluation | None:
    """Evaluate a position at ``price`` (or its ticker's latest stored price), record the
    decision and, with ``submit``, place the proposal through the same submission service as
    the orders endpoint. One transaction, the position row locked.

    With ``skip_if_evaluated_at_latest`` (cron) returns None when the position was already
    evaluated with ``submit`` at the latest stored price. Only a submitting evaluation marks
    the price as done: a look (a dry run, the API without submit) must not stop the run that
    places the order. The trade cycle passes ``mark_latest``: its evaluation is the record
    for that price whether or not it submits, and it ends the cycle's claim on the position
    (the cycle evaluates whole batches with :func:`positions_evaluate_claimed`, the same
    step). The order submitted keeps the request's ``idempotency_key``.

    The price-jump guard measures the price from the position's reference; a stored price or
    a fill it finds no jump in becomes the reference (a price given in the request is
    checked, never accepted: it was not observed on a market)."""
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        if splits_apply_due(position_id=position.id).applied:  # never trade across a split
            position.refresh_from_db()
        since = position.evaluated_price_ts  # the last evaluation's price (resting orders)
        price_source, price_ts, observed = PriceSource.REQUEST, None, None
        if price is None:
            if mark_latest:  # the cycle evaluates at the new stored price that called for it
                stored = latest_price(ticker=position.ticker)
                known = stored and KnownPrice(
                    price=split_adjusted(position=position, price=stored.price, ts=stored.ts),
                    ts=stored.ts, source=PriceSource.STORED, observed=stored.price)
            else:
                known = known_price(position)
            if known is not None:
                if skip_if_evaluated_at_latest and position.evaluated_price_ts == known.ts:
                    return None
                price, price_source, price_ts = known.price, known.source, known.ts
                observed = known.observed
                if submit or mark_latest:
                    position.evaluated_price_ts = known.ts
                    position.cycle_lease_until = None
                    books.marks_save(position, ("evaluated_price_ts", "cycle_lease_until"))
        if price is None:
            message = (f"No price to evaluate {position.ticker} at: none was given and none is "
                       "stored (POST /v1/prices).")
            event_record(position_id=position.id, type=EventType.EVALUATION, message=message,
                         inputs={"price": None, "source": source},
                         outputs={"price": None, "anchor_price": position.anchor_price,
                                  "anchor_set": False, "value": None, "weight": None,
                                  "proposals": [], "blocked": [], "reason": "no_price",
                                  "message": message, "order_id": None})
            return Evaluation(position=position, decision=None, price_source=PriceSource.NONE,
                              reason="no_price", message=message)
        evaluation, changed = _evaluate_at(position=position, price=price,
                                           price_source=price_source, price_ts=price_ts,
                                           submit=submit, source=source, observed=observed,
                                           idempotency_key=idempotency_key, since=since)
        if changed:
            books.marks_save(position, changed)
    return evaluation


def _evaluate_at(*, position: Position, price: Decimal, price_source: str, price_ts,
                 submit: bool, source: str, observed: Decimal | None = None,
                 idempotency_key: str | None = None,
                 facts: Facts | None = None,
                 since: dt.datetime | None = None) -> tuple[Evaluation, set[str]]:
    """The evaluation step on a locked position at a known price: the rules, the price-jump
    guard, the anchor, the submission and the events. Changes the position in memory and
    returns the fields it changed (the caller saves them: one row, or a batch at once).
    ``observed`` is the known price as stored or filled (``price`` split-adjusted): when the
    guard finds no jump it becomes the position's reference (guard.accept).

    A position with ``order_type: limit`` that submits keeps its ladder's rungs resting
    (:mod:`positions.workflows.resting`): a market order only when no rung rests and nothing
    filled since ``since`` (the last evaluation's price time); otherwise, or when there is no
    proposal, the rungs are made the ladder's. Only the one-position path takes these (the
    batch leaves them out)."""
    changed: set[str] = set()
    if submit and is_limit(position) and facts is None:
        # the guard holds the price: the rungs go first, so the decision names the jump, not
        # the position's own rung as an open order (the cycle cancelled them before its poll)
        rungs_cancel_if_held(position, price=price, price_source=price_source, ts=price_ts)
    decision, jump = guard_decision(position=position,
                                    decision=position_decide(position=position, price=price,
                                                             facts=facts),
                                    price_ts=price_ts, price_source=price_source,
                                    facts=facts.jump if facts is not None else None)
    if decision.blocked_by == PRICE_JUMP and price_ts is not None:
        # held back, not done: once the price is confirmed the next run submits at it
        position.evaluated_price_ts = None
        changed.add("evaluated_price_ts")
    if (jump is None and observed is not None and price_ts is not None
            and price_source in PriceSource.KNOWN
            and accept(position, observed=observed, ts=price_ts)):
        changed |= {"guard_ref_price", "guard_ref_ts"}
    if decision.anchor_set:
        books.anchor_set(position=position, anchor=decision.anchor, price=price)
        changed.add("anchor_price")

    order = None
    limit = submit and is_limit(position)
    if submit and decision.proposal is not None and (
            not limit or market_allowed(position, since=since)):
        if decision.proposal.qty >= ORDER_QTY_LIMIT:
            raise DomainError(
                "qty_out_of_range",
                f"The proposal to {decision.proposal.side} {fmt(decision.proposal.qty)} "
                "shares is more than an order can hold (under 10^16 shares); nothing was "
                "submitted.", status=409)
        if idempotency_key is not None and Order.objects.filter(
                position=position, idempotency_key=idempotency_key).exists():
            raise DomainError(
                "idempotency_signature_mismatch",
                "This Idempotency-Key already placed an order on this position; use a new key "
                "for a new evaluation that submits.", status=409)
        order = order_submit(position=position, side=decision.proposal.side,
                             qty=decision.proposal.qty, source="evaluation",
                             idempotency_key=idempotency_key,
                             note=decision.proposal.kind, price=price,
                             created_today=facts and facts.orders_today,
                             nothing_open=bool(facts and not facts.has_open_order))
    rungs = None
    if limit and order is None:
        rungs = resting_sync(position=position, guard_blocked=jump is not None,
                             why=held_why(decision.price, price_ts) if jump else "")
    payload = decision_payload(decision)
    if rungs is not None:
        payload["resting"] = {"placed": [o.id for o in rungs.placed],
                              "cancelled": [o.id for o in rungs.cancelled],
                              "kept": [o.id for o in rungs.kept], "waiting": rungs.waiting}
    event_record(
        position_id=position.id,
        order_id=order.id if order else None,
        type=EventType.EVALUATION,
        message=decision.message,
        inputs={"price": price, "price_source": price_source, "price_ts": price_ts,
                "submit": submit,
                "source": source, "qty": position.qty, "cash": position.cash,
                "dividend_receivable": position.dividend_receivable},
        outputs={**payload, "order_id": order.id if order else None},
    )
    shown = decision.proposal or decision.blocked
    if shown is not None and shown.trimmed_by in _GUARDRAIL_CAPS:
        event_record(
            position_id=position.id, order_id=order.id if order else None,
            type=EventType.ORDER_TRIMMED_GUARDRAIL,
            message=f"{shown.side} trimmed from {fmt(shown.raw_qty)} to {fmt(shown.qty)} "
            f"by the {shown.trimmed_by.replace('_', ' ')}.",
            inputs={"raw_qty": shown.raw_qty, "price": price},
            outputs={"qty": shown.qty, "trimmed_by": shown.trimmed_by,
                     "post_trade_weight": shown.post_trade_weight},
        )
    if decision.blocked_by == "below_min_notional":
        event_record(
            position_id=position.id, type=EventType.ORDER_REJECTED_MIN,
            message=f"{decision.blocked.side} {fmt(decision.blocked.qty)} "
            f"({fmt(decision.blocked.notional)}) is below the minimum notional "
            f"{fmt(position.min_notional)}: not placed.",
            inputs={"notional": decision.blocked.notional,
                    "min_notional": position.min_notional},
            outputs=proposal_payload(decision.blocked),
        )
    return Evaluation(position=position, decision=decision, price_source=price_source,
                      price_ts=price_ts, order=order, rungs=rungs, reason=decision.reason,
                      message=decision.message), changed


def positions_evaluate_claimed(ids: list[str], *, submit_ids: set[str],
                               source: str) -> dict[str, Evaluation | Exception | None]:
    """The trade cycle's evaluation step for a batch of claimed positions: what
    :func:`position_evaluate` with ``mark_latest`` does for each (the same step,
    :func:`_evaluate_at`), in one transaction with a few queries for the whole batch.

    The positions are locked in id order; the latest price of each ticker, the session's order
    counts, the open orders and the guard's facts are read once; each position is evaluated in
    memory, its events and order collected (:func:`volbal.rows.deferred_inserts`); then one
    multi-row INSERT per table and one UPDATE of the positions. A position whose evaluation is
    refused (a DomainError) or fails keeps nothing of it and is reported as that exception, as
    the one-position path would (its claim runs out). Returns, per id: the evaluation, None
    when it was already evaluated at the latest price, or the exception. Positions with no
    stored price or a split due, and limit positions that submit (their resting orders are
    cancelled and placed by services of their own), are left to :func:`position_evaluate`
    (returned absent)."""
    out: dict[str, Evaluation | Exception | None] = {}
    with transaction.atomic():
        qs = Position.objects.filter(id__any=ids).order_by("id")
        positions = list(qs.select_for_update(of=("self",)) if
                         transaction.get_connection().features.has_select_for_update else qs)
        split_due = set(Split.objects.filter(
            position_id__any=ids, status=SplitStatus.ANNOUNCED,
            effective_date__lte=clock.trading_day()).values_list("position_id", flat=True))
        latest = latest_prices(tickers={p.ticker for p in positions})
        positions = [p for p in positions if p.id not in split_due and p.ticker in latest
                     and not (is_limit(p) and p.id in submit_ids)]  # resting: one at a time
        here = [p.id for p in positions]
        today = clock.session_day()
        counts = orders_created_today_many(here, today=today)
        open_ids = positions_with_open_orders(here)
        # only positions with an applied split have any (positions.books keeps the date)
        splits = applied_splits([p.id for p in positions if p.last_split_date is not None])
        jumps = jump_facts_many(positions=positions, splits=splits)
        now = clock.now()
        changes = {}
        with deferred_inserts():
            for position in positions:
                stored = latest[position.ticker]
                if position.evaluated_price_ts == stored.ts:
                    out[position.id] = None
                    continue
                before = books.marks_of(position)
                facts = Facts(counts.get(position.id, 0), position.id in open_ids,
                              jumps.get(position.id))
                try:
                    with deferred_inserts():
                        position.evaluated_price_ts = stored.ts
                        position.cycle_lease_until = None
                        out[position.id], _changed = _evaluate_at(
                            position=position,
                            price=split_adjusted(position=position, price=stored.price,
                                                 ts=stored.ts,
                                                 splits=splits.get(position.id, ())),
                            price_source=PriceSource.STORED, price_ts=stored.ts,
                            observed=stored.price, submit=position.id in submit_ids,
                            source=source, facts=facts)
                except Exception as exc:  # nothing of it is kept; reported like the one path
                    for name, value in before.items():
                        setattr(position, name, value)
                    out[position.id] = exc
                    continue
                position.updated_at = now
                changes[position.id] = books.marks_of(position)
        books.marks_save_many(changes)
    return out


def held_why(price: Decimal, ts) -> str:
    """The reason a rung is cancelled when the price-jump guard holds the price back."""
    return (f"{PRICE_JUMP}: the price {fmt(price)}"
            + (f" ({ts.isoformat()})" if ts is not None else "")
            + " is an unconfirmed jump; the rungs rest again once an operator confirms it")


def rungs_cancel_if_held(position: Position, *, price: Decimal, price_source: str,
                         ts) -> Sync | None:
    """Cancel the locked limit position's resting rungs when the price-jump guard holds
    ``price`` back (docs/strategy.md#resting-orders: a rung the guard blocks rests nothing), so
    a broker never fills one at a price the guard has not accepted; None when it does not."""
    if not resting_open(position) or price_jump_of(
            position=position, price=price, price_source=price_source) is None:
        return None
    return resting_sync(position=position, guard_blocked=True, why=held_why(price, ts))


def rungs_cancel_held(ids: list[str]) -> list[str]:
    """The trade cycle's step before it polls the brokers: the claimed limit positions whose
    ticker's latest price the guard holds back have their rungs cancelled (each in its own
    transaction), so the paper broker does not fill a rung at that price. Returns their ids."""
    rungs = Order.objects.filter(position_id=OuterRef("pk"), rung__isnull=False,
                                 status__in=OPEN_STATUSES, cancel_requested_at__isnull=True)
    done = []
    for pid in Position.objects.filter(id__any=ids, order_type=OrderType.LIMIT).filter(
            Exists(rungs)).values_list("id", flat=True):
        with transaction.atomic():
            position = Position.objects.select_for_update().get(id=pid)
            stored = latest_price(ticker=position.ticker)
            if stored is not None and rungs_cancel_if_held(
                    position, price=split_adjusted(position=position, price=stored.price,
                                                   ts=stored.ts),
                    price_source=PriceSource.STORED, ts=stored.ts):
                done.append(pid)
    return done


@dataclass(frozen=True)
class PositionLadder:
    """A position's next-trigger ladder and what blocks it right now (the API and the admin)."""

    position: Position
    ladder: Ladder
    # "open_order" | "daily_cap_reached" | "price_jump_unconfirmed" | None
    blocked_by: str | None
    held_price: Price | None = None  # the latest price, when the price-jump guard holds it


# The highest price a Price row holds (its column: 22 digits, 6 of them decimals).
PRICE_MAX = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"]) - Decimal("0.000001")


def position_ladder(*, owner, position_id: str | None = None,
                    position: Position | None = None) -> PositionLadder:
    """The ladder (docs/strategy.md#ladder) of the caller's position: where the next buy and
    the next sell fire and what each would be. Read-only. ``blocked_by`` says whether the daily
    cap, an open order or the price-jump guard would block an order at any price now: the
    guard holds the ticker's latest stored price (the one the trade cycle evaluates at) when
    :func:`positions.workflows.guard.price_jump_of`, the evaluation's own check, finds it an
    unconfirmed jump."""
    if position is None:
        position = position_get(owner=owner, position_id=position_id)
    lad = ladder(position.state(), position.config(), max_price=PRICE_MAX)
    blocked_by = None
    if has_open_order(position=position):
        blocked_by = "open_order"
    elif orders_created_today(position=position) >= position.max_orders_per_day:
        blocked_by = "daily_cap_reached"
    held = held_price(position)
    if held is not None and blocked_by is None:
        blocked_by = "price_jump_unconfirmed"
    return PositionLadder(position=position, ladder=lad, blocked_by=blocked_by, held_price=held)


def held_price(position: Position) -> Price | None:
    """The ticker's latest stored price when the price-jump guard holds it back for this
    position (an unconfirmed jump, as an evaluation at it finds), else None. Read-only: the
    alert is the evaluation's to record."""
    stored = latest_price(ticker=position.ticker)
    if stored is None:
        return None
    jump = price_jump_of(position=position, price=split_adjusted(
        position=position, price=stored.price, ts=stored.ts), price_source=PriceSource.STORED)
    return None if jump is None else stored



@dataclass(frozen=True)
class PositionResting:
    """A position's resting orders (docs/strategy.md#resting-orders; the API and the admin): the
    rung orders open at its broker and the rungs its ladder rests now (``wanted``: what the
    next cycle keeps or places; with the manual broker, what a person would place)."""

    position: Position
    orders: list[Order]
    wanted: RestingPair
    held: Price | None = None  # the latest price, when the price-jump guard holds it back

    @property
    def rungs(self) -> list:
        return [r for r in (self.wanted.buy, self.wanted.sell) if r is not None]

    @property
    def message(self) -> str:
        """What rests and what the ladder rests, for a person (the API and the admin)."""
        what = "; ".join(f"{r.side} {fmt(r.qty)} at {fmt(r.limit)}" for r in self.rungs)
        position = self.position
        if position.order_type != OrderType.LIMIT:
            return ("order_type is market: nothing rests (order_type limit rests the ladder's "
                    "rungs" + (f": {what}" if what else "") + ").")
        if position.broker == Broker.MANUAL:
            return ("The manual broker rests nothing: place these limit orders by hand: "
                    + (what or "none now") + ".")
        if self.held is not None:
            return (f"{len(self.orders)} resting at the {position.broker} broker; the ladder "
                    f"rests nothing now: blocked by the price-jump guard (the price "
                    f"{fmt(self.held.price)} at {self.held.ts.isoformat()} is an unconfirmed "
                    "jump; they rest again once an operator confirms it)"
                    + ("; the next cycle cancels them." if self.orders else "."))
        return (f"{len(self.orders)} resting at the {position.broker} broker; the ladder rests "
                + (what or "nothing now") + ".")


def position_resting(*, owner, position_id: str | None = None,
                     position: Position | None = None) -> PositionResting:
    """Read-only: the open rung orders and the ladder's rungs (:func:`resting_wanted`, the
    price-jump guard's hold counted as the cycle counts it)."""
    if position is None:
        position = position_get(owner=owner, position_id=position_id)
    held = held_price(position)
    return PositionResting(position=position, orders=resting_open(position),
                           wanted=resting_wanted(position, guard_blocked=held is not None),
                           held=held)
