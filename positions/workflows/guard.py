"""The price-jump guard (docs/strategy.md, "Price-jump guard"): an evaluation's proposal is
held back when its price moved more than the position's ``max_price_jump`` from the ticker's
previous stored price, unless a recorded split explains the move or an operator confirmed the
price (:func:`positions.splits.price_confirm`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

from events.models import EventType
from events.services import event_record
from positions.models import Position, Price
from positions.selectors import PriceSource, SplitsSeen, applied_splits, split_ratio_since
from positions.strategy import rules
from volbal import clock
from volbal.renderers import decimal_text as fmt

PRICE_JUMP = "price_jump_unconfirmed"


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
    return None if move is None else Jump(facts.previous, move, rules.split_ratio_decimal(
        split_ratio_since(facts.previous.ts, facts.splits)))


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

