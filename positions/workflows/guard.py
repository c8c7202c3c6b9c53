"""The price-jump guard (docs/strategy.md#price-jump-guard): an evaluation's proposal is held
back when its price moved more than the position's ``max_price_jump`` from the position's
**reference price**, unless a split recorded since the reference explains the move.

The reference is the last price the position accepted, stored on it (``guard_ref_price``,
``guard_ref_ts``): the last stored price or fill an evaluation used without finding a jump
(:func:`accept`), or one an operator confirmed (:func:`positions.splits.price_confirm`);
before any, the anchor. A jumped price never becomes the reference, so further prices near
the jumped level are jumps from the same reference. One alert per episode: the episode is the
position's reference (:func:`Reference.key`), whoever evaluates (the API, the commands, the
trade cycle); the evaluations of a position exclude each other by its row lock, under which
the episode is read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal

from events.models import EventType
from events.services import event_record
from positions.models import Position
from positions.selectors import PriceSource, SplitsSeen, applied_splits, split_ratio_since
from positions.strategy import rules
from positions.workflows.alerts import alerted
from volbal import clock
from volbal.renderers import decimal_text as fmt

PRICE_JUMP = "price_jump_unconfirmed"


@dataclass(frozen=True)
class Reference:
    """A position's reference price: as observed (``ts`` its market time; the position uses
    it ÷ the ratios of its splits since, as any price), or its anchor (``ts`` None: already in
    the position's current shares)."""

    price: Decimal
    ts: dt.datetime | None

    @property
    def key(self) -> str:
        """The alert episode this reference opens (stored as the alert's ``inputs.episode``)."""
        if self.ts is None:
            return f"anchor {fmt(self.price)}"
        return f"{fmt(self.price)} @ {self.ts.isoformat()}"

    def words(self) -> str:
        if self.ts is None:
            return f"the anchor {fmt(self.price)} (no price accepted yet)"
        return f"the last accepted price {fmt(self.price)} ({self.ts.isoformat()})"


def reference_of(position: Position) -> Reference | None:
    """The position's reference price, or None (no price accepted and no anchor: nothing to
    measure from; the first evaluation sets both)."""
    if position.guard_ref_price is not None:
        return Reference(position.guard_ref_price, position.guard_ref_ts)
    if position.anchor_price is not None:
        return Reference(position.anchor_price, None)
    return None


@dataclass(frozen=True)
class Jump:
    reference: Reference
    move: Decimal  # the relative move from the split-adjusted reference
    ratio: Decimal  # the product of the splits that took effect since the reference


@dataclass(frozen=True)
class JumpFacts:
    """What the guard reads for one position besides the position itself: its applied splits
    and whether the episode of its current reference already has its alert. A batch reads
    them for all its positions at once (:func:`jump_facts_many`); without them the guard
    reads its own."""

    splits: SplitsSeen = ()
    alerted: bool = False


def jump_facts_many(*, positions: list[Position],
                    splits: dict[str, SplitsSeen]) -> dict[str, JumpFacts]:
    """The guard's facts of many positions (``splits``:
    :func:`positions.selectors.applied_splits` of them): one query for the alerts."""
    keys = {}
    for position in positions:
        ref = reference_of(position)
        if ref is not None:
            keys[position.id] = ref.key
    done = alerted(type=EventType.PRICE_JUMP_UNCONFIRMED, episodes=keys)
    return {p.id: JumpFacts(splits.get(p.id, ()), p.id in done) for p in positions}


def price_jump_of(*, position: Position, price: Decimal, price_source: str,
                  splits: SplitsSeen | None = None) -> Jump | None:
    """The unconfirmed jump of ``price`` (as the position uses it: split-adjusted by the
    caller) for ``position``, or None: it is more than ``max_price_jump`` away from the
    position's reference (:func:`reference_of`) divided by the ratios of its splits that took
    effect after the reference was observed. A fill's price (a trade) is never held back.
    ``splits`` are the position's applied splits (read here when None).

    A split effective on the reference's own day and recorded after it may be either side of
    it (a price stored that morning before the split was known is one of the old shares or
    already one of the new): either reading that explains the move releases it."""
    if price_source == PriceSource.FILL:
        return None
    ref = reference_of(position)
    if ref is None:
        return None
    if ref.ts is not None and splits is None:
        splits = applied_splits([position.id]).get(position.id, ())
    ratio = split_ratio_since(ref.ts, splits or ())
    move = rules.price_jump(previous=ref.price, price=price,
                            max_jump=position.max_price_jump, ratio=ratio)
    if move is None:
        return None
    if ref.ts is not None:
        day = clock.start_of_trading_day(clock.trading_day(ref.ts))
        same_day = [k for instant, k, recorded in splits if instant == day and recorded > ref.ts]
        if same_day:
            either = ratio
            for k in same_day:
                either *= k
            if rules.price_jump(previous=ref.price, price=price,
                                max_jump=position.max_price_jump, ratio=either) is None:
                return None
    return Jump(ref, move, rules.split_ratio_decimal(ratio))


def accept(position: Position, *, observed: Decimal, ts: dt.datetime) -> bool:
    """The position accepts the price ``observed`` at ``ts`` (an evaluation used it and found
    no jump, or an operator confirmed it): it becomes the reference, unless the position
    already accepted a later one. In memory: the caller saves ``guard_ref_price`` and
    ``guard_ref_ts`` with the evaluation's marks. True when the reference changed."""
    if position.guard_ref_ts is not None and ts < position.guard_ref_ts:
        return False
    if (position.guard_ref_price, position.guard_ref_ts) == (observed, ts):
        return False
    position.guard_ref_price, position.guard_ref_ts = observed, ts
    return True


def guard_decision(*, position: Position, decision: rules.Decision, price_ts,
                   price_source: str,
                   facts: JumpFacts | None = None) -> tuple[rules.Decision, Jump | None]:
    """The decision with its proposal blocked (``price_jump_unconfirmed``) when the price is
    an unconfirmed jump, and the episode's alert recorded unless it already is; otherwise the
    decision unchanged. Returns the decision and the jump (None: the price may be accepted).
    ``position`` is locked by the caller (so two evaluations cannot both alert)."""
    jump = price_jump_of(position=position, price=decision.price, price_source=price_source,
                         splits=facts.splits if facts is not None else None)
    if jump is None:
        return decision, None
    ref = jump.reference
    why = (f"the price {fmt(decision.price)} moved {fmt(round(jump.move * 100, 2))} % from "
           f"{ref.words()}"
           + (f" adjusted for splits of {fmt(jump.ratio)}" if jump.ratio != 1 else "")
           + f", more than max_price_jump {fmt(position.max_price_jump)}, and no split explains "
           "it: an operator must confirm the price or record the split")
    if not (facts.alerted if facts is not None else alerted(
            type=EventType.PRICE_JUMP_UNCONFIRMED, episodes={position.id: ref.key})):
        event_record(
            position_id=position.id, type=EventType.PRICE_JUMP_UNCONFIRMED,
            message=f"Alert: {why}.",
            inputs={"price": decision.price, "price_ts": price_ts,
                    "price_source": price_source, "previous_price": ref.price,
                    "previous_ts": ref.ts, "reference": "anchor" if ref.ts is None
                    else "accepted", "split_ratio": jump.ratio,
                    "max_price_jump": position.max_price_jump, "episode": ref.key},
            outputs={"move": jump.move, "blocked": decision.proposal is not None},
        )
    if decision.proposal is None:
        return decision, jump
    return replace(decision, proposal=None, blocked=decision.proposal, blocked_by=PRICE_JUMP,
                   reason=PRICE_JUMP, message=f"{decision.message}; blocked: {why}"), jump
