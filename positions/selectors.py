"""Reads of positions and prices."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from fractions import Fraction

from django.db import connection, transaction
from django.db.models import Q, QuerySet

from events.models import ALERT_TYPES, Event
from positions.models import Portfolio, Position, Price, Split, SplitStatus
from positions.strategy import rules
from volbal import clock
from volbal.errors import DomainError
from volbal.rows import Annotation, fetch_one


def position_not_found(position_id: str) -> DomainError:
    return DomainError("position_not_found", f"No position {position_id!r}.", status=404)


def positions_of(*, owner) -> QuerySet[Position]:
    return Position.objects.filter(owner=owner)


def alerts_of_owner(*, owner) -> QuerySet[Event]:
    """The alerts (``ALERT_TYPES``) on the owner's positions and portfolios (a portfolio's own
    alerts: of no position), oldest first. The log keeps plain ids, not keys
    (events.models.Event): the owner's positions are a subquery. With portfolios, both sets
    of ids are read first and given as arrays: PostgreSQL combines the two index scans then
    (an OR of two subqueries would have it walk the whole log by id instead)."""
    funds = list(Portfolio.objects.filter(owner=owner).values_list("pk", flat=True))
    if not funds:
        mine = Q(position_id__in=positions_of(owner=owner).values("pk"))
    else:
        mine = (Q(position_id__any=list(positions_of(owner=owner).values_list("pk", flat=True)))
                | Q(position_id="", portfolio_id__any=funds))
    return Event.objects.filter(mine, type__in=ALERT_TYPES).order_by("id")


def position_get(*, owner, position_id: str, for_update: bool = False,
                 annotate: tuple[Annotation, ...] = ()) -> Position:
    """The caller's position, or 404 ``position_not_found`` (another owner's looks absent),
    with ``annotate`` read in the same statement (e.g. :func:`stored_price_annotations`).

    On every request's path, so read with :func:`volbal.rows.fetch_one`, not a queryset.

    A plain read looks the row up by its key alone and checks the owner here: given the key
    and the owner, PostgreSQL may choose the owner's index and filter out each of the owner's
    other positions (what it did on a table never analyzed: a read then cost as much as the
    owner had positions). A locking read keeps the owner in its statement, so that it never
    locks another owner's row."""
    checked = owner is not None and not for_update
    equal = {"id": position_id} if owner is None or checked else {
        "id": position_id, "owner_id": owner.pk}
    position = fetch_one(Position, for_update=for_update, annotate=annotate, **equal)
    if position is None or (checked and position.owner_id != owner.pk):
        raise position_not_found(position_id)
    return position


@functools.cache
def stored_price_annotations() -> tuple[Annotation, ...]:
    """``known_stored_price`` and ``known_stored_ts``: the newest stored price of the
    position's ticker, as stored, and its time (:func:`latest_price`), as
    :func:`volbal.rows.fetch_one` annotations: one probe each of the (ticker, -ts) index."""
    quote = connection.ops.quote_name
    prices, positions = quote(Price._meta.db_table), quote(Position._meta.db_table)

    def newest(column: str) -> str:
        return (f"(SELECT pr.{quote(column)} FROM {prices} pr WHERE pr.{quote('ticker')} = "
                f"{positions}.{quote('ticker')} ORDER BY pr.{quote('ts')} DESC LIMIT 1)")

    return (("known_stored_price", newest("price"), Price._meta.get_field("price")),
            ("known_stored_ts", newest("ts"), Price._meta.get_field("ts")))


def latest_price(*, ticker: str) -> Price | None:
    return Price.objects.filter(ticker=ticker).order_by("-ts").first()


class PriceSource:
    """Where a price came from (the ``price_source`` of a position and of an evaluation)."""

    REQUEST = "request"  # given in the evaluation's body
    STORED = "stored"  # the ticker's newest stored price (POST /v1/prices, import_prices)
    FILL = "fill"  # the position's last fill
    NONE = "none"  # no price known

    KNOWN = (STORED, FILL)
    ALL = (REQUEST, STORED, FILL, NONE)


# --- Prices across splits (docs/splits-and-guard.md#prices-across-a-split) --------------------
#
# A price observed before a split took effect is a price of the old shares. Wherever a position
# uses a known price (evaluation by the API, the commands and the trade cycle; its value and
# weight in the API and the admin; the price-jump guard's previous price P0; the cost check of
# a buy) it goes through :func:`split_adjusted`: divided by the ratios of the position's applied
# splits that took effect after it was observed. A split takes effect at the start of its
# effective day in the trading time zone, as it applies (before anything else that day).


# (instant it took effect, ratio, when it was recorded) of a position's applied splits
SplitsSeen = tuple[tuple[dt.datetime, Fraction, dt.datetime], ...]


def applied_splits(position_ids) -> dict[str, SplitsSeen]:
    """The applied splits of each position, as (instant, ratio, recorded): one query."""
    out: dict[str, list] = {}
    for pid, day, recorded, new, old in (Split.objects.filter(
            position_id__in=list(position_ids), status=SplitStatus.APPLIED)
            .order_by("effective_date", "id")
            .values_list("position_id", "effective_date", "created_at", "new_rate", "old_rate")):
        out.setdefault(pid, []).append((clock.start_of_trading_day(day), Fraction(new, old),
                                        recorded))
    return {pid: tuple(rows) for pid, rows in out.items()}


def split_ratio_since(ts: dt.datetime | None, splits: SplitsSeen) -> Fraction:
    """The product of the ratios of ``splits`` that took effect after ``ts``, exactly (1: none;
    a price with no time, given in a request, is a current price)."""
    ratio = Fraction(1)
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
    them here: one query, and none when ``ts`` is None or not before the start of the
    position's latest applied split (``last_split_date``, kept by positions.books.split)."""
    if ts is None:
        return price
    if splits is None:
        latest = position.last_split_date
        if latest is None or ts >= clock.start_of_trading_day(latest):
            return price  # no split took effect after ts
        splits = applied_splits([position.id]).get(position.id, ())
    ratio = split_ratio_since(ts, splits)
    return price if ratio == 1 else rules.split_adjusted_price(price, ratio)


def latest_prices(*, tickers: set[str]) -> dict[str, Price]:
    """The newest stored price of each ticker (one query on PostgreSQL)."""
    if not tickers:
        return {}
    if transaction.get_connection().vendor == "postgresql":
        return {p.ticker: p for p in Price.objects.filter(ticker__in=tickers)
                .order_by("ticker", "-ts").distinct("ticker")}
    found = {t: latest_price(ticker=t) for t in tickers}
    return {t: p for t, p in found.items() if p is not None}

