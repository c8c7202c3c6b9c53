"""The trade cycle (docs/strategy.md#live-loop; ``manage.py trade``).

One cycle, in this order:

1. due dividends (the same service ``process_dividends`` runs);
2. day orders whose session has closed expire (``order_expired``);
3. in a session only: portfolios due a rebalance (the first cycle of their period's first
   session, or a band drift: docs/portfolios.md#rebalancing) move cash toward their targets;
   then positions whose ticker has a price newer than the position's last
   evaluation are claimed in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a short
   transaction that sets a lease and commits), so several cycles at once split them; for each
   batch the brokers are polled for fills of the claimed positions' open orders (a paper broker
   fills them at that new price, as the backtest's ``fill: next_bar``), then each position is
   evaluated at its ticker's latest price by the one evaluation service, which records the
   decision, submits it when the position has ``auto_submit`` on, marks the price as done and
   ends the claim; then the new orders go to their brokers;
4. orders still waiting to be routed (submitted through the API) are routed and every broker
   whose fills do not just follow a new price (not paper: that was polled in step 3) is polled
   for its open orders.

No transaction is open while a broker is called (see orders/brokers/service.py). A claim whose
cycle died is claimable again once its lease has run out. Each cycle is kept as a
:class:`~positions.models.TradeCycle` row (counts and duration) shown in the admin.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection, connections, transaction
from django.db.models import Exists, OuterRef, Q

from events.actor import Actor, acting
from orders.brokers import service as brokers
from orders.services import orders_expire
from positions.models import Position, Price, TradeCycle
from positions.portfolios.services import QUIET_SKIPS, portfolios_rebalance_due
from positions.workflows import evaluation
from positions.workflows.alerts import price_stale_check
from positions.workflows.corporate_actions import (
    dividends_process,
    positions_with_splits_due,
    splits_apply_due,
)
from positions.workflows.feed import cycle_feed_step
from volbal import clock, market
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt

LEASE = dt.timedelta(minutes=5)
BATCH = 200


def actor_scope(source: str):
    """Who the events the cycle records name (events.actor): ``worker:trade_cycle`` for a
    cycle run by a worker (``--loop``, the job queue); a single run keeps the actor its
    command set (``command:trade``, source cron)."""
    if source == "worker":
        return acting(Actor.worker("trade_cycle"))
    return contextlib.nullcontext()


@dataclass
class EvaluationLine:
    position_id: str
    ticker: str
    text: str
    submitted: bool = False
    proposal: bool = False
    failed: bool = False


def evaluate_one(position_id: str, *, submit: bool, source: str,
                 mark_latest: bool = False) -> EvaluationLine | None:
    """Evaluate one position at its ticker's latest price through the evaluation service (the
    step both the cycle and ``evaluate_positions`` run); None when it was already evaluated at
    that price. The line says what happened, for a person."""
    try:
        result = evaluation.position_evaluate(
            owner=None, position_id=position_id, submit=submit, source=source,
            skip_if_evaluated_at_latest=True, mark_latest=mark_latest)
    except Exception as exc:  # one broken position must not stop the others
        result = exc
    return line_of(position_id, result)


def line_of(position_id: str, result) -> EvaluationLine | None:
    """What one evaluation (or its refusal or failure) says, for a person."""
    if isinstance(result, DomainError):
        return EvaluationLine(position_id, "", f"refused: {result.message}")
    if isinstance(result, Exception):
        return EvaluationLine(position_id, "", f"failed: {type(result).__name__}: {result}",
                              failed=True)
    if result is None:
        return None
    pos = result.position
    price = "no price" if result.decision is None else f"@ {fmt(result.decision.price)}"
    text = f"{price}: {result.reason}"
    shown = result.decision and (result.decision.proposal or result.decision.blocked)
    if shown:
        text += f" {shown.side} {fmt(shown.qty)}"
    if result.order is not None:
        text += f", submitted {result.order.id}"
    rungs = result.rungs
    if rungs is not None and (rungs.placed or rungs.cancelled):
        text += "; resting orders: " + ", ".join(
            [f"placed {o.rung} {fmt(o.qty)} at {fmt(o.limit_price)} ({o.id})"
             for o in rungs.placed] + [f"cancelled {o.id}" for o in rungs.cancelled])
    return EvaluationLine(pos.id, pos.ticker, f"{text} — {result.message}",
                          submitted=result.order is not None or bool(rungs and rungs.placed),
                          proposal=bool(result.decision and result.decision.proposal))


def evaluate_batch(ids: list[str], *, submit_ids: set[str], source: str,
                   evaluated: dict[str, Position] | None = None,
                   ) -> list[tuple[str, EvaluationLine | None]]:
    """The cycle's evaluation of a claimed batch: all at once through
    :func:`evaluation.positions_evaluate_claimed`; a position it leaves out (no stored price, a
    split due) and, should the batch's own writes fail, every position of the batch goes
    through the one-position path instead (each its own transaction). ``evaluated`` receives
    the positions the batch evaluated, as it committed them (their orders' routing reads them
    no more)."""
    try:
        results = evaluation.positions_evaluate_claimed(ids, submit_ids=submit_ids,
                                                      source=source)
    except Exception:  # the batch rolled back as a whole: one position at a time
        results = {}
    if evaluated is not None:
        evaluated.update((pid, r.position) for pid, r in results.items()
                         if isinstance(r, evaluation.Evaluation))
    return [(pid, line_of(pid, results[pid]) if pid in results else
             evaluate_one(pid, submit=pid in submit_ids, source=source, mark_latest=True))
            for pid in ids]


def _due(now: dt.datetime):
    """Positions with a price newer than their last evaluation and no live claim."""
    newer = Price.objects.filter(ticker=OuterRef("ticker")).filter(
        Q(ts__gt=OuterRef("evaluated_price_ts")))
    return (Position.objects
            .filter(Q(cycle_lease_until__isnull=True) | Q(cycle_lease_until__lt=now))
            .filter(Q(evaluated_price_ts__isnull=True, ticker__in=Price.objects.values("ticker"))
                    | Exists(newer)))


def claim_batch(*, now: dt.datetime, size: int = BATCH, after: str = "") -> list[str]:
    """Claim up to ``size`` due positions for this cycle (of ids after ``after``, in id order:
    a cycle walks the positions once, never rescanning those it has done, so it also evaluates
    each at most once, even one that is due again at once, like a price held back by the
    jump guard): one short transaction that skips the rows other cycles hold, sets the lease
    and commits."""
    with transaction.atomic():
        qs = _due(now).filter(id__gt=after).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        ids = list(qs.values_list("id", flat=True)[:size])
        if ids:
            _lease(ids, now + LEASE)
    return ids


def _lease(ids: list[str], until: dt.datetime) -> None:
    """Set the claim's lease on these positions: on PostgreSQL one statement with the ids as
    one array (its text does not grow with the batch: parsed once, not per batch)."""
    if connection.vendor != "postgresql":
        Position.objects.filter(id__in=ids).update(cycle_lease_until=until)
        return
    table = connection.ops.quote_name(Position._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET cycle_lease_until = %s WHERE id = ANY(%s::varchar[])",
                       [until, ids])


@dataclass
class CycleResult:
    row: TradeCycle
    lines: list[str] = field(default_factory=list)
    # One line per error the summary counts (what failed, where, and why).
    errors: list[str] = field(default_factory=list)
    # What the summary line says after the counts (the feed's misses), "" when nothing.
    tail: str = ""


def trade_cycle(*, now: dt.datetime | None = None, batch_size: int = BATCH,
                source: str = "cron", worker: str | None = None,
                progress: Callable[[int, str], None] | None = None) -> CycleResult:
    """Run one cycle (see the module's docs); returns its stored summary and its lines."""
    with actor_scope(source):
        return _cycle(now=now, batch_size=batch_size, source=source, worker=worker,
                      progress=progress)


def _cycle(*, now, batch_size, source, worker, progress) -> CycleResult:
    start = time.monotonic()
    now = now or clock.now()
    is_open = market.is_open(now)
    row = TradeCycle(started_at=now, worker=worker or f"{socket.gethostname()}:{os.getpid()}",
                     market_open=is_open, session=clock.session_day(now))
    out = CycleResult(row)

    def say(line: str) -> None:
        out.lines.append(line)
        if progress is not None:
            progress(row.positions_claimed, line)

    # First, prices and corporate actions from the feed (docs/marketdata.md#the-cycle).
    fed = cycle_feed_step(now=now, say=say)
    row.errors += len(fed.errors)
    out.errors.extend(fed.errors)
    today = clock.trading_day(now)
    run = brokers.BrokerRun()
    split_due = positions_with_splits_due(today=today)
    if split_due:  # what a broker executed before a split, booked before it (docs/brokers.md)
        brokers.brokers_poll(position_ids=split_due, run=run, skip_price_driven=True)
    report = dividends_process(today=today)  # applies due splits first
    row.dividends_effective, row.dividends_paid = len(report.effective), len(report.paid)
    splits = splits_apply_due(today=today)  # before anything is evaluated
    if splits.applied:
        say(f"{len(splits.applied)} split(s) applied")
    for split_id, reason in splits.failed:
        row.errors += 1
        say(f"split {split_id} failed: {reason}")
        out.errors.append(f"split {split_id} not applied: {reason}")
    for alert in price_stale_check(now=now):  # alerts: a ticker without prices (alerts.py)
        say(f"{alert.position_id} {alert.message}")
    row.orders_expired = len(orders_expire(now=now))
    if is_open:
        # portfolios due a rebalance move their cash before their positions are evaluated
        for done in portfolios_rebalance_due(session=row.session):
            if done.moves or (done.skipped and done.skipped not in QUIET_SKIPS):
                say(done.text())
        after = ""
        while True:
            ids = claim_batch(now=now, size=batch_size, after=after)
            if not ids:  # a row a request held at the time waits for the next cycle
                break
            after = ids[-1]
            row.positions_claimed += len(ids)
            # a rung must not fill at a price the jump guard holds back (docs/brokers.md)
            evaluation.rungs_cancel_held(ids)
            brokers.brokers_poll(position_ids=ids, run=run)
            submit_ids = fed.fresh(set(Position.objects.filter(id__any=ids, auto_submit=True)
                                       .values_list("id", flat=True)))
            evaluated: dict[str, Position] = {}
            for position_id, line in evaluate_batch(ids, submit_ids=submit_ids, source=source,
                                                    evaluated=evaluated):
                if line is None:
                    continue
                row.evaluated += 1
                row.proposals += line.proposal
                row.submitted += line.submitted
                row.errors += line.failed
                say(f"{position_id} {line.ticker} {line.text}")
                if line.failed:
                    out.errors.append(f"{position_id} evaluation_failed: {line.text}")
            brokers.orders_route(position_ids=ids, run=run, positions=evaluated)
    else:
        say(f"Market closed at {now.isoformat()}: nothing evaluated.")
    brokers.orders_route(run=run)
    brokers.brokers_poll(run=run, skip_price_driven=True)
    row.routed, row.fills, row.cancelled = run.routed, run.fills, run.cancelled
    row.errors += run.errors + run.fills_refused
    out.errors.extend(run.failures)
    row.duration_ms = int((time.monotonic() - start) * 1000)
    row.finished_at = clock.now()
    out.tail = fed.summary()
    row.message = summary_text(row, calendar=market.calendar() is not None) + out.tail
    row.save()
    return out


def summary_text(row: TradeCycle, *, calendar: bool = True) -> str:
    parts = [f"{row.positions_claimed} claimed", f"{row.evaluated} evaluated",
             f"{row.proposals} proposals", f"{row.submitted} submitted",
             f"{row.routed} routed", f"{row.fills} fills", f"{row.cancelled} cancelled",
             f"{row.orders_expired} expired",
             f"{row.dividends_effective + row.dividends_paid} dividend steps",
             f"{row.errors} errors"]
    # Without a calendar (VOLBAL_CALENDAR empty) every moment is "in session" and the session
    # day is the date: naming a session then would suggest an exchange's.
    where = ("no calendar: always in session" if not calendar
             else f"in session, session {row.session}" if row.market_open
             else f"market closed, session {row.session}")
    return (f"Cycle ({where}): " + ", ".join(parts)
            + f" in {row.duration_ms} ms.")


# What a worker's cycle hands the parent (TradeCycle's counts), summed into one summary.
COUNTS = ("positions_claimed", "evaluated", "proposals", "submitted", "routed", "fills",
          "cancelled", "orders_expired", "dividends_effective", "dividends_paid", "errors")


@dataclass
class WorkersResult:
    """``trade --workers N``: the workers' cycles summed (``row`` is not stored: each worker
    stored its own), each worker's claims, and what each worker said went wrong."""
    row: TradeCycle
    claims: list[int]
    errors: list[str]

    @property
    def message(self) -> str:
        return self.row.message


def trade_cycle_workers(workers: int, *, batch_size: int = BATCH, source: str = "cron",
                        progress: Callable[[int, str], None] | None = None) -> WorkersResult:
    """One cycle run by ``workers`` processes forked from this one once it has started (Django
    set up, the calendar loaded: what each separate ``manage.py trade`` process would pay
    again), each the whole :func:`trade_cycle` on its own connection, as separate processes
    run it: they split the claimed positions between them (the lease, ``SKIP LOCKED``), each
    stores its own :class:`TradeCycle` row. Their counts come back summed into one summary;
    a worker that died without one counts as an error. POSIX only (``os.fork``)."""
    started = time.monotonic()
    market.warm()  # the calendar and this session's days, loaded once, before the fork
    market.is_open(clock.now())
    connections.close_all()  # each worker opens its own connection
    sys.stdout.flush()
    sys.stderr.flush()
    children = []
    live: set[int] = set()  # the workers not reaped yet: the only pids a stop is sent to
    stopped = []  # the signal this process was stopped with while its workers ran
    with _forwarding(live, stopped):
        for _ in range(workers):
            if stopped:  # stopped while forking: no more workers
                break
            read, write = os.pipe()
            # A stop waits (blocked, pending) until the new worker is listed here, and in the
            # worker until it has dropped this process's handler for its own (below).
            mask = _block(STOPS)
            pid = os.fork()
            if pid == 0:  # the worker: stopped as a process of its own
                for signum in STOPS:
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending stop: now
                os.close(read)
                _worker(write, batch_size=batch_size, source=source, progress=progress)
            children.append((pid, read))
            live.add(pid)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending stop reaches it too
            os.close(write)
        answers = []
        for pid, read in children:
            with os.fdopen(read, "rb") as pipe:
                answer = pipe.read()
            mask = _block(STOPS)  # reaped and unlisted at once: its pid may be reused after
            try:
                _, status = os.waitpid(pid, 0)
                live.discard(pid)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            answers.append((pid, os.waitstatus_to_exitcode(status), answer))
    if stopped:  # the workers are gone: now stop as this process would have
        signal.raise_signal(stopped[0])
    return _workers_summed(answers, started=started)


# What stops the command (a supervisor's SIGTERM, an interrupt): passed on to its workers.
STOPS = (signal.SIGTERM, signal.SIGINT)


def _block(signums) -> set:
    """Block ``signums`` (held pending until unblocked); the mask before, to restore."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, signums)


@contextlib.contextmanager
def _forwarding(live: set[int], stopped: list):
    """While the workers run, a stop (:data:`STOPS`) sent to this process goes on to each
    worker not reaped yet (``live``), which stops as a separate ``manage.py trade`` process
    would (what a killed cycle leaves is claimable again once its lease runs out), and is
    noted in ``stopped``: the caller raises it again once they are reaped, with this process's
    own handling of it restored (SIGINT: KeyboardInterrupt). Without this the workers, forked
    and orphaned, would run on to the end of their cycle after the command was stopped. Only
    the main thread can set a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(sig, _frame):
        stopped.append(sig)
        for pid in list(live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    previous = {signum: signal.signal(signum, forward) for signum in STOPS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker(write: int, *, batch_size, source, progress) -> None:
    """A forked worker: one cycle, its counts to the parent through ``write``, then exit
    (``os._exit``: nothing of the parent's, such as its exit handlers, runs twice)."""
    code = 1
    try:
        # whole lines, not a buffer's chunks, so the workers' lines do not cut into each other
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(line_buffering=True)
        result = trade_cycle(batch_size=batch_size, source=source, progress=progress)
        answer = {"counts": {name: getattr(result.row, name) for name in COUNTS},
                  "market_open": result.row.market_open,
                  "session": result.row.session.isoformat() if result.row.session else None,
                  "tail": result.tail, "errors": result.errors}
        with os.fdopen(write, "wb") as pipe:
            pipe.write(json.dumps(answer).encode())
        code = 0
    except BaseException:  # said on stderr; the parent counts it
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            connections.close_all()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _workers_summed(answers: list[tuple[int, int, bytes]], *, started: float) -> WorkersResult:
    """The workers' answers ``(pid, exit code, what it wrote)`` as one summary."""
    row = TradeCycle(worker=f"{socket.gethostname()}:{os.getpid()}")
    claims, errors, tails = [], [], []
    for pid, code, raw in answers:
        if code != 0 or not raw:
            row.errors += 1
            claims.append(0)
            errors.append(f"worker {pid} exited {code} without a summary (its stderr says why)")
            continue
        answer = json.loads(raw)
        for name, value in answer["counts"].items():
            setattr(row, name, getattr(row, name) + value)
        claims.append(answer["counts"]["positions_claimed"])
        row.market_open = bool(row.market_open or answer["market_open"])
        if answer["session"] and row.session is None:
            row.session = dt.date.fromisoformat(answer["session"])
        errors.extend(answer["errors"])
        if answer["tail"] and answer["tail"] not in tails:
            tails.append(answer["tail"])
    row.market_open = bool(row.market_open)
    row.duration_ms = int((time.monotonic() - started) * 1000)
    row.message = (summary_text(row, calendar=market.calendar() is not None)
                   + f" {len(answers)} workers, claims {'+'.join(map(str, claims))}."
                   + "".join(tails))
    return WorkersResult(row, claims, errors)


def evaluate_positions(ids: Iterable[str], *, submit: bool, source: str = "cron"):
    """``manage.py evaluate_positions``: the cycle's evaluation step over these positions
    (yields ``(position_id, line or None)``)."""
    for position_id in ids:
        yield position_id, evaluate_one(position_id, submit=submit, source=source)
