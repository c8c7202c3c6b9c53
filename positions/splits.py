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
from positions import books
from positions.models import Position, Price, Split, SplitStatus
from positions.selectors import (
    PriceSource,
    SplitsSeen,
    applied_splits,
    position_get,
    split_ratio_since,
)
from positions.strategy import rules
from volbal import clock
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
    # (position id, reason): a due split it refused (nothing recorded: 409 by the API) or a
    # split of the ticker recorded earlier that could not apply
    failed: list[tuple[str, str]] = field(default_factory=list)


def split_announce_ticker(*, ticker: str, ratio: Decimal, effective_date: dt.date,
                          progress=None) -> TickerSplitReport:
    """Record a split for every position in ``ticker`` (the command's and the admin's), each
    position in its own transaction, applying it there when it is due (as the API does: a
    position that refuses it, ``split_out_of_range``, keeps nothing of it and is ``failed``),
    then apply any other due split of the ticker (:func:`splits_apply_due`). Running it again
    records nothing twice: a position with the same split is ``existing``, one with another
    ratio on that date a ``conflict``."""
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
                split = _record(position, ratio, effective_date)
                if effective_date <= clock.trading_day():
                    applying = splits_apply_due(position_id=pid)  # older due ones first
                    refused = dict(applying.failed).get(split.id)
                    if refused is not None:  # nothing of it is kept, as by the API
                        transaction.set_rollback(True)
                        report.failed.append((pid, refused))
                    else:
                        report.recorded.append(split.id)
                        report.applied += applying.applied
                else:
                    report.recorded.append(split.id)
            elif found.ratio == ratio:
                report.existing.append(pid)
            else:
                report.conflicts.append(pid)
        if progress is not None:
            progress(n, len(ids))
    applying = splits_apply_due(ticker=ticker)
    report.applied += applying.applied
    owners = dict(Split.objects.filter(id__in=[sid for sid, _ in applying.failed])
                  .values_list("id", "position_id"))
    report.failed += [(owners.get(sid, sid), why) for sid, why in applying.failed]
    return report


def _price_before(ticker: str, day: dt.date) -> Price | None:
    """The ticker's last stored price before ``day`` (in the trading time zone)."""
    return (Price.objects.filter(ticker=ticker, ts__lt=clock.start_of_trading_day(day))
            .order_by("-ts").first())


def _apply(split: Split, position: Position) -> None:
    """Apply one due split to its locked position (strategy.md, "Splits"): shares × k with the
    fraction in cash, anchor ÷ k, open orders' remaining quantity × k; ``split_applied``."""
    k = split.ratio
    step = rules.qty_step(position.config())
    before = _price_before(position.ticker, split.effective_date)
    p0 = before.price if before is not None else position.anchor_price
    from orders.services import orders_resize_for_split

    orders = orders_resize_for_split(position_id=position.id, ratio=k, step=step)
    old_qty, old_anchor = position.qty, position.anchor_price
    result = books.split(position=position, split_id=split.id, ratio=k,
                         effective_date=split.effective_date, step=step, price_before=p0,
                         orders=orders)
    split.status = SplitStatus.APPLIED
    split.qty_before, split.qty_after, split.step = old_qty, result.qty, step
    split.price_before, split.cash_in_lieu = p0, result.cash_in_lieu
    split.anchor_before, split.anchor_after = old_anchor, result.anchor
    split.applied_at = clock.now()
    split.save()


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
    ratio: Decimal  # the product of the splits that took effect since the previous price


@dataclass(frozen=True)
class JumpFacts:
    """What the guard reads for one position and price: the ticker's previous stored price,
    whether an operator confirmed the price, and the position's applied splits that took
    effect after the previous price was observed (``splits``) or may have: effective on the
    previous price's own day and recorded after it (``same_day``; see :func:`price_jump_of`)."""

    previous: Price | None
    confirmed: bool = False
    splits: SplitsSeen = ()
    same_day: SplitsSeen = ()


def _facts(previous: Price | None, confirmed: bool, splits: SplitsSeen) -> JumpFacts:
    if previous is None or confirmed:
        return JumpFacts(previous, confirmed)
    day = clock.start_of_trading_day(clock.trading_day(previous.ts))
    return JumpFacts(previous, confirmed,
                     tuple(s for s in splits if s[0] > previous.ts),
                     tuple(s for s in splits if s[0] == day and s[2] > previous.ts))


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
    return _facts(previous, confirmed, applied_splits([position.id]).get(position.id, ()))


def jump_facts_many(*, positions: list[Position], latest: dict[str, Price],
                    splits: dict[str, SplitsSeen] | None = None) -> dict[str, JumpFacts]:
    """The guard's facts of many positions, each evaluated at its ticker's stored price in
    ``latest``, with one query per ticker for the previous price and one for the splits
    (none when ``splits``, :func:`positions.selectors.applied_splits` of the positions, are
    given)."""
    out: dict[str, JumpFacts] = {}
    previous: dict[str, Price | None] = {}
    for ticker, current in latest.items():
        if current.confirmed_at is None:
            previous[ticker] = (Price.objects.filter(ticker=ticker, ts__lt=current.ts)
                                .order_by("-ts").first())
    if splits is None:
        splits = applied_splits([p.id for p in positions
                                 if previous.get(p.ticker) is not None])
    for position in positions:
        current = latest.get(position.ticker)
        if current is None:
            continue
        if current.confirmed_at is not None:
            out[position.id] = JumpFacts(None, True)
            continue
        prev = previous[position.ticker]
        out[position.id] = _facts(prev, False, splits.get(position.id, ()))
    return out


def price_jump_of(*, position: Position, price: Decimal, price_ts: dt.datetime | None,
                  price_source: str, facts: JumpFacts | None = None) -> Jump | None:
    """The unconfirmed jump of ``price`` for ``position``, or None: the ticker's previous
    stored price P0 (the last before ``price_ts``; for a price given in the request the latest
    stored), split-adjusted as every price the position uses is (divided by the ratios of its
    splits that took effect after P0, :func:`positions.selectors.split_adjusted`), is more
    than ``max_price_jump`` away from ``price`` (itself split-adjusted by the caller) and no
    operator confirmed the price. A fill's price (a trade) is never held back. ``facts`` are
    what :func:`jump_facts` would read (a batch reads them for all its positions at once)."""
    if price_source == PriceSource.FILL:
        return None
    if facts is None:
        facts = jump_facts(position=position, price_ts=price_ts, price_source=price_source)
    if facts.confirmed or facts.previous is None:
        return None
    ratio = split_ratio_since(facts.previous.ts, facts.splits)
    move = rules.price_jump(previous=facts.previous.price, price=price,
                            max_jump=position.max_price_jump, ratio=ratio)
    if move is not None and facts.same_day:
        # A split effective on P0's own day and recorded after P0: P0 may be the last price
        # of the old shares (stored that morning before the split was known) or already one
        # of the new; either reading that explains the move releases it.
        for _instant, k, _recorded in facts.same_day:
            ratio *= k
        if rules.price_jump(previous=facts.previous.price, price=price,
                            max_jump=position.max_price_jump, ratio=ratio) is None:
            return None
    return None if move is None else Jump(facts.previous, move,
                                          split_ratio_since(facts.previous.ts, facts.splits))


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
