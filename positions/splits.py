"""Stock splits and the price-jump guard (strategy.md, "Splits" and "Price-jump guard").

A split is recorded per position (the API: the owner's position; ``manage.py apply_split`` and
the admin: every position in the ticker) and applied once on its effective date by
:func:`splits_apply_due`, which the trade cycle calls before it evaluates. The guard holds back
the submission of an evaluation whose price moved more than the position's ``max_price_jump``
from the ticker's previous stored price, unless a recorded split explains the move or an
operator confirmed the price (:func:`price_confirm`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction

from events.actor import current_actor
from events.models import EventType
from events.services import event_record
from positions.models import Position, Price, Split, SplitStatus
from positions.selectors import PriceSource, position_get
from positions.strategy import rules
from volbal import clock
from volbal.columns import out_of_range
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt

PRICE_JUMP = "price_jump_unconfirmed"


def _invalid(name: str, message: str) -> DomainError:
    return DomainError("validation_error", f"Invalid input. {name}: {message}", status=400,
                       fields={name: message})


def _check_ratio(ratio: Decimal) -> None:
    error = rules.split_ratio_error(ratio)
    if error:
        raise _invalid("ratio", error)


def _record(position: Position, ratio: Decimal, effective_date: dt.date) -> Split:
    """One split on a locked position (``split_announced``); 409 ``split_exists`` when the
    position already has one on that date."""
    opened = clock.trading_day(position.created_at)
    if effective_date < opened:
        raise _invalid("effective_date", f"The effective date {effective_date} is before the "
                       f"position was opened ({opened}).")
    if Split.objects.filter(position=position, effective_date=effective_date).exists():
        raise DomainError("split_exists", f"Position {position.id} already has a split "
                          f"effective {effective_date}.", status=409)
    split = Split.objects.create(position=position, ratio=ratio, effective_date=effective_date)
    event_record(
        position_id=position.id, type=EventType.SPLIT_ANNOUNCED,
        message=f"Split {fmt(ratio)} new shares per old share recorded, effective "
        f"{effective_date}.",
        inputs={"ratio": ratio, "effective_date": effective_date},
        outputs={"split_id": split.id, "status": split.status},
    )
    return split


def split_announce(*, owner, position_id: str, ratio: Decimal, effective_date: dt.date) -> Split:
    """Record a split on the owner's position (404 for another owner's) and apply it at once
    when it is already due. Returns the split as it stands."""
    _check_ratio(ratio)
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        split = _record(position, ratio, effective_date)
        if effective_date <= clock.trading_day():
            _apply(split, position)
    return split


@dataclass
class TickerSplitReport:
    recorded: list[str] = field(default_factory=list)  # split ids
    existing: list[str] = field(default_factory=list)  # positions with this split already
    conflicts: list[str] = field(default_factory=list)  # positions with another ratio that day
    applied: list[str] = field(default_factory=list)


def split_announce_ticker(*, ticker: str, ratio: Decimal, effective_date: dt.date,
                          progress=None) -> TickerSplitReport:
    """Record a split for every position in ``ticker`` (the command's and the admin's), each
    position in its own transaction, then apply the due ones (:func:`splits_apply_due`).
    Running it again records nothing twice: a position with the same split is ``existing``,
    one with another ratio on that date a ``conflict``."""
    from positions.services import ticker_normalize

    _check_ratio(ratio)
    ticker = ticker_normalize(ticker)
    report = TickerSplitReport()
    ids = list(Position.objects.filter(ticker=ticker).values_list("id", flat=True))
    for n, pid in enumerate(ids, 1):
        with transaction.atomic():
            position = Position.objects.select_for_update().get(pk=pid)
            found = Split.objects.filter(position=position, effective_date=effective_date).first()
            if found is None:
                report.recorded.append(_record(position, ratio, effective_date).id)
            elif found.ratio == ratio:
                report.existing.append(pid)
            else:
                report.conflicts.append(pid)
        if progress is not None:
            progress(n, len(ids))
    report.applied = splits_apply_due(ticker=ticker).applied
    return report


def _price_before(ticker: str, day: dt.date) -> Price | None:
    """The ticker's last stored price before ``day`` (in the trading time zone)."""
    return (Price.objects.filter(ticker=ticker, ts__lt=clock.start_of_trading_day(day))
            .order_by("-ts").first())


def _apply(split: Split, position: Position) -> None:
    """Apply one due split to its locked position (strategy.md, "Splits"): shares × k with the
    fraction in cash, anchor ÷ k, open orders' remaining quantity × k; ``split_applied``."""
    from orders.models import OPEN_STATUSES, Order, OrderStatus

    k = split.ratio
    step = rules.qty_step(position.config())
    before = _price_before(position.ticker, split.effective_date)
    p0 = before.price if before is not None else position.anchor_price
    result = rules.apply_split(qty=position.qty, cash=position.cash,
                               anchor=position.anchor_price, ratio=k, step=step, price_before=p0)
    too_big = out_of_range((Position, "qty", result.qty), (Position, "cash", result.cash))
    if too_big:
        raise DomainError("split_out_of_range", f"After the split the {too_big} would be "
                          "beyond what the books can hold; nothing was applied.", status=409)
    old = {"qty": position.qty, "cash": position.cash, "anchor_price": position.anchor_price}
    position.qty, position.cash, position.anchor_price = result.qty, result.cash, result.anchor
    position.save(update_fields=["qty", "cash", "anchor_price", "updated_at"])
    orders = []
    for order in Order.objects.select_for_update().filter(position=position,
                                                         status__in=OPEN_STATUSES):
        remaining = order.qty - order.filled_qty
        new_remaining = rules.split_qty(remaining, k, step)
        orders.append({"order_id": order.id, "remaining_before": remaining,
                       "remaining_after": new_remaining})
        order.qty = order.filled_qty + new_remaining
        if new_remaining == 0:  # nothing left to trade after rounding: the order ends
            order.qty = order.filled_qty if order.filled_qty > 0 else remaining
            order.status = OrderStatus.CANCELLED
        order.save(update_fields=["qty", "status", "updated_at"])
    split.status = SplitStatus.APPLIED
    split.qty_before, split.qty_after, split.step = old["qty"], result.qty, step
    split.price_before, split.cash_in_lieu = p0, result.cash_in_lieu
    split.anchor_before, split.anchor_after = old["anchor_price"], result.anchor
    split.applied_at = clock.now()
    split.save()
    event_record(
        position_id=position.id, type=EventType.SPLIT_APPLIED,
        message=f"Split {fmt(k)}:1 effective {split.effective_date}: shares "
        f"{fmt(old['qty'])} -> {fmt(result.qty)}, anchor "
        f"{'unset' if old['anchor_price'] is None else fmt(old['anchor_price'])} -> "
        f"{'unset' if result.anchor is None else fmt(result.anchor)}"
        + (f", {fmt(result.cash_in_lieu)} cash in lieu of the fraction" if result.cash_in_lieu
           else "")
        + (f", {len(orders)} open order(s) re-sized" if orders else "") + ".",
        inputs={"split_id": split.id, "ratio": k, "effective_date": split.effective_date,
                "step": step, "price_before": p0},
        outputs={"before": old,
                 "after": {"qty": result.qty, "cash": result.cash,
                           "anchor_price": result.anchor},
                 "cash_in_lieu": result.cash_in_lieu, "orders": orders},
    )


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (split id, reason)


def splits_apply_due(*, today: dt.date | None = None, ticker: str | None = None,
                     position_id: str | None = None) -> ApplyReport:
    """Apply every recorded split effective on or before ``today`` (default: the trading day)
    that is not applied yet, oldest first: the trade cycle calls this before it evaluates.
    Each split is its own transaction with the position and the split locked and the status
    re-read, so however often or concurrently it runs each split applies exactly once. A split
    that cannot apply rolls back alone and is reported in ``failed``."""
    today = today or clock.trading_day()
    due = Split.objects.filter(status=SplitStatus.ANNOUNCED, effective_date__lte=today)
    if ticker is not None:
        due = due.filter(position__ticker=ticker)
    if position_id is not None:
        due = due.filter(position_id=position_id)
    report = ApplyReport()
    for split_id, pos_id in due.order_by("effective_date", "id").values_list("id",
                                                                             "position_id"):
        try:
            with transaction.atomic():
                position = Position.objects.select_for_update().get(pk=pos_id)
                split = Split.objects.select_for_update().get(pk=split_id)
                if split.status == SplitStatus.ANNOUNCED:
                    _apply(split, position)
                    report.applied.append(split_id)
        except (DomainError, rules.RuleError, ArithmeticError, IntegrityError,
                DatabaseError) as exc:
            report.failed.append((split_id, getattr(exc, "message", None) or str(exc)))
    return report


# --- The price-jump guard --------------------------------------------------------------------


@dataclass(frozen=True)
class Jump:
    previous: Price
    move: Decimal  # the relative move from the split-adjusted previous price
    ratio: Decimal  # the product of the splits effective since the previous price


@dataclass(frozen=True)
class JumpFacts:
    """What the guard reads for one position and price: the ticker's previous stored price,
    whether an operator confirmed the price, and the position's splits (effective date,
    ratio) effective after the previous price's day up to the price's."""

    previous: Price | None
    confirmed: bool = False
    splits: tuple[tuple[dt.date, Decimal], ...] = ()


def jump_facts(*, position: Position, price_ts: dt.datetime | None,
               price_source: str) -> JumpFacts:
    """The guard's facts for one position, read with a few queries (see :func:`jump_facts_many`
    for a batch)."""
    stored = Price.objects.filter(ticker=position.ticker)
    confirmed = False
    if price_source == PriceSource.STORED:
        current = stored.filter(ts=price_ts).first()
        confirmed = current is not None and current.confirmed_at is not None
        stored = stored.filter(ts__lt=price_ts)
    previous = stored.order_by("-ts").first()
    if previous is None or confirmed:
        return JumpFacts(previous, confirmed)
    day = clock.trading_day(price_ts) if price_ts is not None else clock.trading_day()
    splits = tuple(Split.objects.filter(
        position=position, effective_date__gt=clock.trading_day(previous.ts),
        effective_date__lte=day).values_list("effective_date", "ratio"))
    return JumpFacts(previous, confirmed, splits)


def jump_facts_many(*, positions: list[Position], latest: dict[str, Price]) -> dict[str, JumpFacts]:
    """The guard's facts of many positions, each evaluated at its ticker's stored price in
    ``latest``, with one query per ticker for the previous price and one for the splits."""
    out: dict[str, JumpFacts] = {}
    previous: dict[str, Price | None] = {}
    for ticker, current in latest.items():
        if current.confirmed_at is None:
            previous[ticker] = (Price.objects.filter(ticker=ticker, ts__lt=current.ts)
                                .order_by("-ts").first())
    windows = {t: (clock.trading_day(p.ts), clock.trading_day(latest[t].ts))
               for t, p in previous.items() if p is not None}
    splits: dict[str, list] = {}
    if windows:
        low = min(w[0] for w in windows.values())
        high = max(w[1] for w in windows.values())
        for pid, day, ratio in (Split.objects.filter(
                position_id__in=[p.id for p in positions if p.ticker in windows],
                effective_date__gt=low, effective_date__lte=high)
                .order_by("effective_date", "id")
                .values_list("position_id", "effective_date", "ratio")):
            splits.setdefault(pid, []).append((day, ratio))
    for position in positions:
        current = latest.get(position.ticker)
        if current is None:
            continue
        if current.confirmed_at is not None:
            out[position.id] = JumpFacts(None, True)
            continue
        prev = previous[position.ticker]
        window = windows.get(position.ticker)
        mine = () if window is None else tuple(
            (d, k) for d, k in splits.get(position.id, ()) if window[0] < d <= window[1])
        out[position.id] = JumpFacts(prev, False, mine)
    return out


def price_jump_of(*, position: Position, price: Decimal, price_ts: dt.datetime | None,
                  price_source: str, facts: JumpFacts | None = None) -> Jump | None:
    """The unconfirmed jump of ``price`` for ``position``, or None: the ticker's previous
    stored price P0 (the last before ``price_ts``; for a price given in the request the latest
    stored), adjusted for the position's splits effective after P0's day up to the price's, is
    more than ``max_price_jump`` away and no operator confirmed the price. A fill's price (a
    trade) is never held back. ``facts`` are what :func:`jump_facts` would read (a batch reads
    them for all its positions at once)."""
    if price_source == PriceSource.FILL:
        return None
    if facts is None:
        facts = jump_facts(position=position, price_ts=price_ts, price_source=price_source)
    if facts.confirmed or facts.previous is None:
        return None
    ratio = Decimal(1)
    for _day, k in facts.splits:
        ratio *= k
    move = rules.price_jump(previous=facts.previous.price, price=price,
                            max_jump=position.max_price_jump, ratio=ratio)
    return None if move is None else Jump(facts.previous, move, ratio)


def guard_decision(*, position: Position, decision: rules.Decision, price_ts,
                   price_source: str, facts: JumpFacts | None = None) -> rules.Decision:
    """The decision with its proposal blocked (``price_jump_unconfirmed``) when the price is
    an unconfirmed jump, and the alert recorded; otherwise the decision unchanged."""
    jump = price_jump_of(position=position, price=decision.price, price_ts=price_ts,
                         price_source=price_source, facts=facts)
    if jump is None:
        return decision
    why = (f"the price {fmt(decision.price)} moved {fmt(round(jump.move * 100, 2))} % from the "
           f"previous stored price {fmt(jump.previous.price)} ({jump.previous.ts.isoformat()})"
           + (f" adjusted for splits of {fmt(jump.ratio)}" if jump.ratio != 1 else "")
           + f", more than max_price_jump {fmt(position.max_price_jump)}, and no split explains "
           "it: an operator must confirm the price or record the split")
    event_record(
        position_id=position.id, type=EventType.PRICE_JUMP_UNCONFIRMED,
        message=f"Alert: {why}.",
        inputs={"price": decision.price, "price_ts": price_ts, "price_source": price_source,
                "previous_price": jump.previous.price, "previous_ts": jump.previous.ts,
                "split_ratio": jump.ratio, "max_price_jump": position.max_price_jump},
        outputs={"move": jump.move, "blocked": decision.proposal is not None},
    )
    if decision.proposal is None:
        return decision
    return replace(decision, proposal=None, blocked=decision.proposal, blocked_by=PRICE_JUMP,
                   reason=PRICE_JUMP, message=f"{decision.message}; blocked: {why}")


def price_confirm(*, ticker: str, ts: dt.datetime) -> Price:
    """An operator confirms the stored price of ``ticker`` at ``ts``: the guard no longer
    holds it back (``price_confirmed`` on every position in the ticker). 404
    ``price_not_found`` when no such price is stored."""
    from positions.services import ticker_normalize

    ticker = ticker_normalize(ticker)
    actor = current_actor()
    with transaction.atomic():
        price = Price.objects.select_for_update().filter(ticker=ticker, ts=ts).first()
        if price is None:
            raise DomainError("price_not_found", f"No price of {ticker} is stored at "
                              f"{ts.isoformat()}.", status=404)
        if price.confirmed_at is None:
            price.confirmed_at, price.confirmed_by = clock.now(), actor.name
            price.save(update_fields=["confirmed_at", "confirmed_by"])
            for pid in Position.objects.filter(ticker=ticker).values_list("id", flat=True):
                event_record(
                    position_id=pid, type=EventType.PRICE_CONFIRMED,
                    message=f"{actor.name} confirmed the price {fmt(price.price)} of {ticker} "
                    f"at {ts.isoformat()}: the price-jump guard lets it through.",
                    inputs={"ticker": ticker, "ts": ts}, outputs={"price": price.price})
    return price
