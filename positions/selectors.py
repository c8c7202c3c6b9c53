"""Reads of positions and prices."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, OuterRef, QuerySet, Subquery

from positions.models import MONEY, Position, Price, Split, SplitStatus
from positions.strategy import rules
from positions.strategy.ladder import Ladder, ladder
from volbal import clock
from volbal.errors import DomainError
from volbal.rows import fetch_one


def position_not_found(position_id: str) -> DomainError:
    return DomainError("position_not_found", f"No position {position_id!r}.", status=404)


def positions_of(*, owner) -> QuerySet[Position]:
    return Position.objects.filter(owner=owner)


def position_get(*, owner, position_id: str, for_update: bool = False) -> Position:
    """The caller's position, or 404 ``position_not_found`` (another owner's looks absent).

    On every request's path, so read with :func:`volbal.rows.fetch_one`, not a queryset."""
    equal = {"id": position_id} if owner is None else {"id": position_id, "owner_id": owner.pk}
    position = fetch_one(Position, for_update=for_update, **equal)
    if position is None:
        raise position_not_found(position_id)
    return position


def latest_price(*, ticker: str) -> Price | None:
    return Price.objects.filter(ticker=ticker).order_by("-ts").first()


def _has_splits() -> Exists:
    return Exists(Split.objects.filter(position_id=OuterRef("pk"), status=SplitStatus.APPLIED))


def with_latest_price(queryset: QuerySet[Position]) -> QuerySet[Position]:
    """Annotate ``latest_price`` and ``latest_price_ts`` (the newest stored price of each
    position's ticker, as stored: :func:`split_adjusted` gives the price the position uses):
    one query."""
    latest = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts")
    return queryset.annotate(latest_price=Subquery(latest.values("price")[:1]),
                             latest_price_ts=Subquery(latest.values("ts")[:1]),
                             known_has_splits=_has_splits())


class PriceSource:
    """Where a price came from (the ``price_source`` of a position and of an evaluation)."""

    REQUEST = "request"  # given in the evaluation's body
    STORED = "stored"  # the ticker's newest stored price (POST /v1/prices, import_prices)
    FILL = "fill"  # the position's last fill
    NONE = "none"  # no price known

    KNOWN = (STORED, FILL)
    ALL = (REQUEST, STORED, FILL, NONE)


# --- Prices across splits (strategy.md, "Splits") ---------------------------------------------
#
# A price observed before a split took effect is a price of the old shares. Wherever a position
# uses a known price (evaluation by the API, the commands and the trade cycle; its value and
# weight in the API and the admin; the price-jump guard's previous price P0; the cost check of
# a buy) it goes through :func:`split_adjusted`: divided by the ratios of the position's applied
# splits that took effect after it was observed. A split takes effect at the start of its
# effective day in the trading time zone, as it applies (before anything else that day).


# (instant it took effect, ratio, when it was recorded) of a position's applied splits
SplitsSeen = tuple[tuple[dt.datetime, Decimal, dt.datetime], ...]


def applied_splits(position_ids) -> dict[str, SplitsSeen]:
    """The applied splits of each position, as (instant, ratio, recorded): one query."""
    out: dict[str, list] = {}
    for pid, day, recorded, ratio in (Split.objects.filter(
            position_id__in=list(position_ids), status=SplitStatus.APPLIED)
            .order_by("effective_date", "id")
            .values_list("position_id", "effective_date", "created_at", "ratio")):
        out.setdefault(pid, []).append((clock.start_of_trading_day(day), ratio, recorded))
    return {pid: tuple(rows) for pid, rows in out.items()}


def split_ratio_since(ts: dt.datetime | None, splits: SplitsSeen) -> Decimal:
    """The product of the ratios of ``splits`` that took effect after ``ts`` (1: none; a price
    with no time, given in a request, is a current price)."""
    ratio = Decimal(1)
    if ts is not None:
        for instant, k, _recorded in splits:
            if instant > ts:
                ratio *= k
    return ratio


def split_adjusted(*, position: Position, price: Decimal, ts: dt.datetime | None,
                   splits: SplitsSeen | None = None) -> Decimal:
    """THE price ``position`` uses for ``price`` observed at ``ts``: ``price`` ÷ the ratios of
    its applied splits that took effect after ``ts`` (the same price when none did). ``splits``
    are what :func:`applied_splits` reads for it (a batch reads them at once); None reads
    them here (one query, none when ``ts`` is None)."""
    if ts is None:
        return price
    if splits is None:
        splits = applied_splits([position.id]).get(position.id, ())
    ratio = split_ratio_since(ts, splits)
    return price if ratio == 1 else rules.split_adjusted_price(price, ratio)


@dataclass(frozen=True)
class KnownPrice:
    """The latest known price of a position: the newer of its ticker's newest stored price and
    its own last fill, with when (the stored price's ``ts``, the fill's time) and which."""

    price: Decimal
    ts: dt.datetime
    source: str  # PriceSource.STORED or PriceSource.FILL


def with_known_price(queryset: QuerySet[Position]) -> QuerySet[Position]:
    """Annotate what :func:`known_price` needs (the ticker's newest stored price and the
    position's last fill, each with its time) in the same query: a list costs no more."""
    from orders.models import Fill

    stored = Price.objects.filter(ticker=OuterRef("ticker")).order_by("-ts")
    fills = Fill.objects.filter(order__position_id=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(
        known_stored_price=Subquery(stored.values("price")[:1]),
        known_stored_ts=Subquery(stored.values("ts")[:1]),
        known_fill_price=Subquery(fills.values("price")[:1]),
        known_fill_ts=Subquery(fills.values("created_at")[:1]),
        known_has_splits=_has_splits(),
    )


def known_price(position: Position) -> KnownPrice | None:
    """The position's latest known price, or None when there is neither a stored price nor a
    fill. Reads the annotations of :func:`with_known_price` when the position has them (the
    API's and the admin's lists), else one query. On a tie the fill wins (a trade is firmer
    than a quote). The price is split-adjusted (:func:`split_adjusted`): one more query only
    for a position with an applied split."""
    known = position
    if not hasattr(known, "known_stored_ts"):
        known = with_known_price(Position.objects.filter(pk=position.pk)).get()
    stored = (known.known_stored_price, known.known_stored_ts)
    fill = (known.known_fill_price, known.known_fill_ts)
    if fill[1] is not None and (stored[1] is None or fill[1] >= stored[1]):
        price, ts, source = fill[0], fill[1], PriceSource.FILL
    elif stored[1] is not None:
        price, ts, source = stored[0], stored[1], PriceSource.STORED
    else:
        return None
    if known.known_has_splits:
        price = split_adjusted(position=position, price=price, ts=ts)
    return KnownPrice(price=price, ts=ts, source=source)


def position_view(*, owner, position_id: str) -> Position:
    """The caller's position with its known price annotated (:func:`known_price`), or 404
    ``position_not_found``."""
    position = with_known_price(positions_of(owner=owner).filter(pk=position_id)).first()
    if position is None:
        raise position_not_found(position_id)
    return position


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
    """The ladder (strategy.md, "Live loop") of the caller's position: where the next buy and
    the next sell fire and what each would be. Read-only. ``blocked_by`` says whether the daily
    cap, an open order or the price-jump guard would block an order at any price now: the
    guard holds the ticker's latest stored price (the one the trade cycle evaluates at) when
    :func:`positions.splits.price_jump_of`, the evaluation's own check, finds it an unconfirmed
    jump."""
    from orders.services import has_open_order, orders_created_today

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
    from positions.splits import price_jump_of

    stored = latest_price(ticker=position.ticker)
    if stored is None:
        return None
    jump = price_jump_of(position=position, price=stored.price, price_ts=stored.ts,
                         price_source=PriceSource.STORED)
    return None if jump is None else stored
