"""Alerts (docs/alerts.md): events an owner or operator must look at
(``events.models.ALERT_TYPES``).

They are ordinary events, recorded through ``event_record`` on the position they concern, so
the audit trail, the API (``GET /v1/alerts``, ``?alert=true`` on a position's events), the admin
and webhooks all carry them. Three are raised here:

- ``price_stale``: during an exchange session, a ticker of active positions has had no new
  price for ``VOLBAL_PRICE_STALE_AFTER`` minutes (counted from the later of its latest price
  and the session's open). One alert per position per *episode*: the episode is the ticker's
  latest price (its time), so the next check finds it recorded and a new price ends it.
- ``cycle_missed``: during a session, no trade cycle (``TradeCycle`` row) has finished for
  ``VOLBAL_CYCLE_MISSED_AFTER`` minutes (counted from the later of the last cycle and the
  session's open). Recorded on the active positions that depend on the cycle (``auto_submit``
  on, or a broker other than ``manual``: their proposals are submitted and their orders routed
  and polled only by it), once per outage: the episode is the last cycle's id.
- ``ledger_difference``: ``verify_ledger --record-alerts`` records one per position whose books
  differ from the replay, with the differences in its outputs; again only when the position's
  differences change (the episode is a fingerprint of them, compared with the position's
  latest ``ledger_difference``).

A fourth, ``price_jump_unconfirmed``, is recorded by the evaluation (the price-jump guard,
``positions/workflows/guard.py``) on the position it holds back, once per episode too: the
episode is the position's reference price, read with :func:`alerted` under the position's lock.

A position opened less than the threshold ago is not alerted yet (it has not waited that long).
An *active* position holds shares or cash (one holding neither has nothing to trade).

Each alert is recorded at most once per position and episode, also when checks run at once:
the positions are locked (``SELECT … FOR UPDATE``, in id order) and the episode re-read before
the event is written. ``manage.py check_alerts`` runs the periodic checks; the trade cycle runs
the price check at its start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from events.models import Event, EventType
from events.services import event_record
from positions.models import Broker, Portfolio, Position, Price, TradeCycle
from volbal import clock, market
from volbal.renderers import decimal_text as fmt

CHUNK = 500  # positions locked (and alerted) per transaction
READ_CHUNK = 5000  # positions whose alerts one query reads


def active_positions():
    """Positions with something to trade: shares or cash."""
    return Position.objects.filter(Q(qty__gt=0) | Q(cash__gt=0))


def counted(n: int, noun: str) -> str:
    """``n`` and the noun, singular for one: "1 minute", "16 minutes", "0 differences" (the
    sentences of the alerts and of the commands that record them)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _minutes(delta: dt.timedelta) -> str:
    """A wait in whole minutes (rounded down), in a sentence: "1 minute", "16 minutes"."""
    return counted(int(delta.total_seconds() // 60), "minute")


def alerted(*, type: str, episodes: dict[str, str], portfolios: bool = False) -> set[str]:
    """The positions of ``episodes`` (position id → episode key) that already have alert
    ``type`` for their episode (stored as ``inputs["episode"]``): one query. ``portfolios``:
    the ids are portfolios', and their own alerts count (:func:`_alerts_of`)."""
    if not episodes:
        return set()
    field, alerts = _alerts_of(portfolios, list(episodes), type)
    return {pid for pid, key in alerts.filter(
        inputs__episode__in=sorted(set(episodes.values()))).values_list(
            field, "inputs__episode") if key == episodes[pid]}


def _alerts_of(portfolios: bool, ids: list[str], type: str):
    """The column naming the subject of an alert, and the alerts ``type`` of ``ids``: of these
    positions, or with ``portfolios`` these portfolios' own (of no position)."""
    if portfolios:
        return "portfolio_id", Event.objects.filter(portfolio_id__any=ids, position_id="",
                                                    type=type)
    return "position_id", Event.objects.filter(position_id__any=ids, type=type)


def alert_record_once(*, type: str, episodes: dict[str, str],
                      build: Callable[[Position], tuple[str, dict, dict]],
                      latest_only: bool = False, portfolios: bool = False) -> list[Event]:
    """Record alert ``type`` on each position of ``episodes`` (position id → episode key) that
    does not have it for that episode yet: any earlier alert of the type with that key, or with
    ``latest_only`` the position's latest alert of the type. ``build(position)`` gives the
    message, inputs and outputs; the key is stored as ``inputs["episode"]``. ``portfolios``:
    the ids are portfolios', each alerted as a portfolio's own event (``build`` gets the
    portfolio)."""

    def recorded(ids: list[str]) -> set[str]:
        if latest_only:
            latest: dict[str, tuple[int, str]] = {}
            field, alerts = _alerts_of(portfolios, ids, type)
            for pid, pk, key in alerts.values_list(field, "id", "inputs__episode"):
                if pid not in latest or pk > latest[pid][0]:
                    latest[pid] = (pk, key)
            return {pid for pid, (_pk, key) in latest.items() if key == episodes[pid]}
        return alerted(type=type, episodes={i: episodes[i] for i in ids}, portfolios=portfolios)

    out: list[Event] = []
    ids = sorted(episodes)
    pending: list[str] = []  # a read without locks first: most checks stop here
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start:start + READ_CHUNK]
        already = recorded(chunk)
        pending += [pid for pid in chunk if pid not in already]
    for start in range(0, len(pending), CHUNK):
        todo = pending[start:start + CHUNK]
        with transaction.atomic():
            locked = list((Portfolio if portfolios else Position).objects.select_for_update()
                          .filter(id__in=todo).order_by("id"))
            done = recorded(todo)  # re-read under the locks: another check may have been first
            for subject in locked:
                if subject.id in done:
                    continue
                message, inputs, outputs = build(subject)
                out.append(event_record(position_id="" if portfolios else subject.id,
                                        portfolio_id=subject.id if portfolios else None,
                                        type=type, message=message,
                                        inputs={**inputs, "episode": episodes[subject.id]},
                                        outputs=outputs))
    return out


def _waiting(now: dt.datetime, cutoff: dt.datetime, *marks: dt.datetime | None):
    """Since when something has been awaited (the latest of the known ``marks``: the last price
    or cycle, the session's open; None when none is known) and the words for how long, or
    None when that is after ``cutoff`` (not awaited long enough to alert)."""
    known = [t for t in marks if t is not None]
    since = max(known) if known else None
    if since is not None and since > cutoff:
        return None
    return since, (f"for {_minutes(now - since)}" if since else "yet")


def _not_alerted(positions, *, type: str, episode: str) -> list[str]:
    """The ids of ``positions`` without alert ``type`` for ``episode``: one query (an
    anti-join on the events' position and type index), so a long episode costs little."""
    alerted = Event.objects.filter(position_id=OuterRef("pk"), type=type, inputs__episode=episode)
    return list(positions.exclude(Exists(alerted)).values_list("id", flat=True))


def price_stale_check(*, now: dt.datetime | None = None) -> list[Event]:
    """``price_stale`` on the active positions of every ticker with no new price for
    ``VOLBAL_PRICE_STALE_AFTER`` minutes of the session in progress (see the module's docs);
    nothing outside a session. Returns the alerts recorded."""
    now = now or clock.now()
    limit = settings.VOLBAL_PRICE_STALE_AFTER
    if limit <= 0 or not market.is_open(now):
        return []
    cutoff = now - dt.timedelta(minutes=limit)
    opened = market.open_of(now)
    if opened is not None and opened > cutoff:
        return []  # the session has not been open that long
    recent = Price.objects.filter(ticker=OuterRef("ticker"), ts__gte=cutoff)
    stale = set(active_positions().filter(created_at__lte=cutoff).exclude(Exists(recent))
                .values_list("ticker", flat=True).distinct())  # an anti-join: no sort
    out: list[Event] = []
    for ticker in sorted(stale):
        last = Price.objects.filter(ticker=ticker).order_by("-ts").first()
        waiting = _waiting(now, cutoff, last.ts if last else None, opened)
        if waiting is None:
            continue
        since, waited = waiting
        if last is not None:
            what = (f"no new price for {ticker} {waited} during the session (the latest, "
                    f"{fmt(last.price)}, is from {last.ts.isoformat()})")
        else:
            what = f"no price for {ticker} has been recorded {waited} during the session"
        message = (f"Alert: {what}, more than VOLBAL_PRICE_STALE_AFTER "
                   f"({counted(limit, 'minute')}): "
                   "the position is not evaluated until a price arrives.")
        inputs = {"ticker": ticker, "stale_after_minutes": limit, "session_open": opened,
                  "last_price": last and last.price, "last_price_ts": last and last.ts}
        outputs = {"stale_since": since, "checked_at": now}
        episode = f"{ticker}@{last.ts.isoformat() if last else 'none'}"
        ids = _not_alerted(active_positions().filter(ticker=ticker, created_at__lte=cutoff),
                           type=EventType.PRICE_STALE, episode=episode)
        out += alert_record_once(
            type=EventType.PRICE_STALE, episodes=dict.fromkeys(ids, episode),
            build=lambda _pos, m=message, i=inputs, o=outputs: (m, i, o))
    return out


def cycle_dependent_positions():
    """The positions the trade cycle acts for: it submits their proposals (``auto_submit``)
    or routes and polls their orders (a broker other than ``manual``)."""
    return active_positions().filter(Q(auto_submit=True) | ~Q(broker=Broker.MANUAL))


def cycle_missed_check(*, now: dt.datetime | None = None) -> list[Event]:
    """``cycle_missed`` on the positions that depend on the trade cycle when none has run for
    ``VOLBAL_CYCLE_MISSED_AFTER`` minutes of the session in progress (see the module's docs);
    nothing outside a session. Returns the alerts recorded."""
    now = now or clock.now()
    limit = settings.VOLBAL_CYCLE_MISSED_AFTER
    if limit <= 0 or not market.is_open(now):
        return []
    cutoff = now - dt.timedelta(minutes=limit)
    opened = market.open_of(now)
    last = TradeCycle.objects.order_by("-started_at", "-id").first()
    seen = (last.finished_at or last.started_at) if last is not None else None
    waiting = _waiting(now, cutoff, seen, opened)
    if waiting is None:
        return []
    since, waited = waiting
    what = (f"the trade cycle has not run {waited} during the session (the last one finished "
            f"at {seen.isoformat()})" if seen else
            f"no trade cycle has run {waited} during the session (none is recorded)")
    message = (f"Alert: {what}, more than VOLBAL_CYCLE_MISSED_AFTER "
               f"({counted(limit, 'minute')}): this "
               "position's proposals are not submitted and its orders are not routed or "
               "polled until a cycle runs again.")
    inputs = {"missed_after_minutes": limit, "session_open": opened,
              "last_cycle_id": last and last.pk, "last_cycle_at": seen}
    outputs = {"missing_since": since, "checked_at": now}
    episode = f"cycle@{last.pk if last else 'none'}"
    ids = _not_alerted(cycle_dependent_positions().filter(created_at__lte=cutoff),
                       type=EventType.CYCLE_MISSED, episode=episode)
    return alert_record_once(type=EventType.CYCLE_MISSED, episodes=dict.fromkeys(ids, episode),
                             build=lambda _pos: (message, inputs, outputs))


def _shown(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else str(value)


def _fingerprint(differences) -> str:
    text = "\n".join(sorted(f"{d.field}: {d.stored!r} -> {d.expected!r}" for d in differences))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def ledger_differences_record(differences: Iterable) -> list[Event]:
    """``ledger_difference`` on each position with differences (``positions.ledger``), the
    differences in its outputs, and on each portfolio whose unallocated cash differs (its own
    event); one whose latest such alert names the same differences is not alerted again.
    Returns the alerts recorded."""
    by_subject: dict[str, list] = defaultdict(list)
    for d in differences:  # a portfolio's difference names the portfolio
        by_subject[d.position_id].append(d)
    funds = set(Portfolio.objects.filter(id__in=list(by_subject)).values_list("id", flat=True))
    shown = 3

    def build(subject) -> tuple[str, dict, dict]:
        diffs = by_subject[subject.id]
        listed = "; ".join(f"{d.field}: stored {_shown(d.stored)}, expected "
                           f"{_shown(d.expected)}" for d in diffs[:shown])
        more = f"; and {len(diffs) - shown} more" if len(diffs) > shown else ""
        books = ("this portfolio's unallocated cash and the replay of its cash movements"
                 if subject.id in funds else
                 "this position's books and the replay of its fills, dividends and splits")
        message = (f"Alert: the ledger check found {counted(len(diffs), 'difference')} "
                   f"between {books}: {listed}{more}.")
        return (message, {"checked_at": clock.now()},
                {"differences": [{"field": d.field, "stored": d.stored,
                                  "expected": d.expected} for d in diffs]})

    episodes = {sid: _fingerprint(ds) for sid, ds in by_subject.items()}
    return [alert for portfolios in (False, True) for alert in alert_record_once(
        type=EventType.LEDGER_DIFFERENCE, build=build, latest_only=True, portfolios=portfolios,
        episodes={sid: key for sid, key in episodes.items() if (sid in funds) is portfolios})]


def alerts_check(*, now: dt.datetime | None = None) -> list[Event]:
    """One pass of the periodic checks (``manage.py check_alerts``): stale prices, then a
    missed trade cycle."""
    now = now or clock.now()
    return price_stale_check(now=now) + cycle_missed_check(now=now)
