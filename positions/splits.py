"""Stock splits, as recorded (docs/strategy.md#splits), and an operator's confirmation of a
price the price-jump guard holds back.

A split is recorded per position (:func:`split_record`) and applied once on its effective date
by :func:`positions.workflows.corporate_actions.splits_apply_due` (which the trade cycle calls
before it evaluates; recording a split already due applies it at once there too)."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from django.db import transaction
from django.db.models import Q

from events.actor import current_actor
from events.models import EventType
from events.services import event_record
from positions.models import Position, Price, Split
from positions.services import ticker_normalize
from positions.strategy import rules
from volbal import clock
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt


def _invalid(name: str, message: str) -> DomainError:
    return DomainError("validation_error", f"Invalid input. {name}: {message}", status=400,
                       fields={name: message})


def check_ratio(ratio) -> Fraction:
    """``ratio`` as the exact k = new/old (:func:`rules.split_ratio`: ``"1:3"``, a Fraction or
    an exact number); 400 naming ``ratio`` otherwise."""
    try:
        return rules.split_ratio(ratio)
    except rules.RuleError as exc:
        raise _invalid("ratio", exc.message) from None


def split_record(position: Position, ratio: Fraction, effective_date: dt.date) -> Split:
    """One split on a locked position (``split_announced``); 409 ``split_exists`` when the
    position already has one on that date."""
    opened = clock.trading_day(position.created_at)
    if effective_date < opened:
        raise _invalid("effective_date", f"The effective date {effective_date} is before the "
                       f"position was opened ({opened}).")
    if Split.objects.filter(position=position, effective_date=effective_date).exists():
        raise DomainError("split_exists", f"Position {position.id} already has a split "
                          f"effective {effective_date}.", status=409)
    split = Split.objects.create(position=position, new_rate=ratio.numerator,
                                 old_rate=ratio.denominator, effective_date=effective_date)
    event_record(
        position_id=position.id, type=EventType.SPLIT_ANNOUNCED,
        message=f"Split {split.ratio_text} (new:old shares) recorded, effective "
        f"{effective_date}.",
        inputs={"ratio": split.ratio_text, "effective_date": effective_date},
        outputs={"split_id": split.id, "status": split.status},
    )
    return split


# --- The price-jump guard --------------------------------------------------------------------


def price_confirm(*, ticker: str, ts: dt.datetime) -> Price:
    """An operator confirms the stored price of ``ticker`` at ``ts`` (docs/strategy.md,
    "Price-jump guard"): it becomes the reference price of every position in the ticker that
    has not accepted a later one (``price_confirmed`` on each), so the guard no longer holds
    it back, nor prices near it. A confirmation binds the ticker, the time and the value
    (``confirmed_price``): the price re-posted at the same time with another value is measured
    from the confirmed value, and confirming it again moves the references to the new value.
    Confirming again what is already confirmed changes nothing. 404 ``price_not_found`` when
    no such price is stored."""
    ticker = ticker_normalize(ticker)
    actor = current_actor()
    with transaction.atomic():
        price = Price.objects.select_for_update().filter(ticker=ticker, ts=ts).first()
        if price is None:
            raise DomainError("price_not_found", f"No price of {ticker} is stored at "
                              f"{ts.isoformat()}.", status=404)
        if price.confirmed_at is None or price.confirmed_price != price.price:
            price.confirmed_at, price.confirmed_by = clock.now(), actor.name
            price.confirmed_price = price.price
            price.save(update_fields=["confirmed_at", "confirmed_by", "confirmed_price"])
        # the positions not yet at this price (or at another value of it), locked in id order
        behind = (Q(guard_ref_ts__isnull=True) | Q(guard_ref_ts__lt=ts)
                  | (Q(guard_ref_ts=ts) & ~Q(guard_ref_price=price.price)))
        for position in (Position.objects.select_for_update().filter(behind, ticker=ticker)
                         .order_by("id")):
            position.guard_ref_price, position.guard_ref_ts = price.price, price.ts
            position.save(update_fields=["guard_ref_price", "guard_ref_ts", "updated_at"])
            event_record(
                position_id=position.id, type=EventType.PRICE_CONFIRMED,
                message=f"{actor.name} confirmed the price {fmt(price.price)} of {ticker} "
                f"at {ts.isoformat()}: it is the price-jump guard's reference now.",
                inputs={"ticker": ticker, "ts": ts}, outputs={"price": price.price})
    return price
