"""The one way anything writes to the audit log."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator

from django.db import connection, transaction

from events.actor import current_actor
from events.models import Event
from volbal.rows import insert_one

log = logging.getLogger("volbal.events")

# Refusals (a fill the rules refuse, …) are recorded even though the refused work rolls back:
# they are collected here and written by the outermost scope after its transaction has ended.
_refusals: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar(
    "volbal_refusals", default=None
)


def event_record(
    *,
    position_id: str,
    type: str,
    message: str,
    inputs: dict | None = None,
    outputs: dict | None = None,
    order_id: str | None = None,
    portfolio_id: str | None = None,
    inserted_first: tuple = (),
) -> Event:
    """Append one event. Events are never updated or deleted (the database refuses both).

    The event names the actor of the work being done (:mod:`events.actor`: the request's user,
    the command or the worker).

    Every write path appends events, so the row is inserted by :func:`volbal.rows.insert_one`
    rather than a compiled queryset. ``inserted_first``: new rows the event refers to (the
    order it records the submission of), inserted before it in its own statement (``insert_one``'s
    ``after``): one round trip for both."""
    actor = current_actor()
    stream = stream_of(position_id, portfolio_id)
    event = insert_one(Event(
        actor_source=actor.source,
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        position_id=position_id,
        order_id=order_id,
        portfolio_id=portfolio_id,
        type=type,
        message=message,
        inputs=inputs or {},
        outputs=outputs or {},
    ), gate=_position_log_lock(stream), after=inserted_first)
    if stream:
        _after_commit(stream)
    return event


def stream_of(position_id: str | None, portfolio_id: str | None) -> str:
    """The stream an event is in: its position's, else its portfolio's (a portfolio's own
    event names no position). Within a stream ids commit in order (the log lock below); the
    webhooks keep a cursor per stream (events.webhooks.delivery)."""
    return position_id or portfolio_id or ""


# A 32-bit number of our own: the first key of the two-key advisory locks of position logs.
_POSITION_LOG_LOCK = 0x766F6C62  # "volb"


def _position_log_lock(position_id: str) -> tuple[str, tuple] | None:
    """The condition that makes the event's INSERT first take, until its transaction ends, a
    lock on the position's log, before the row draws its id: a position's events commit in the
    order of their ids, so the webhooks' cursor per position (events.webhooks.delivery) never
    passes one committed late. In the INSERT itself: no extra round trip. SQLite has one writer
    at a time already."""
    if connection.vendor != "postgresql":
        return None
    return ("pg_advisory_xact_lock(%s::int, hashtext(%s)) IS NOT NULL",
            (_POSITION_LOG_LOCK, position_id))


# What runs after the commit of a transaction that wrote events, given the ids of their
# streams: positions, and portfolios for their own events (the webhooks' wake-up,
# events.webhooks.tasks): registered by the app that needs
# it (events.apps), so the log knows nothing of who listens.
_committed_hooks: list[Callable[[set[str]], object]] = []


def events_committed_subscribe(hook: Callable[[set[str]], object]) -> None:
    """Call ``hook(stream_ids)`` once after each commit that wrote events (at once for an
    event written outside a transaction): the ids of the positions the events are of, and of
    the portfolios for a portfolio's own events. Its failure is logged, never raised: the work has
    committed."""
    if hook not in _committed_hooks:
        _committed_hooks.append(hook)


class _Committed:
    """The on-commit callback of a transaction that wrote events: one per transaction, however
    many events it writes, with the streams they are of (positions; portfolios for their own)."""

    def __init__(self, stream_id: str):
        self.stream_ids: set[str] = {stream_id}

    def __call__(self):
        for hook in _committed_hooks:
            try:
                hook(self.stream_ids)
            except Exception:  # the events are written; a pass of deliver_webhooks sends them
                log.exception("after-commit hook %r failed for %s", hook, self.stream_ids)


# Positions whose events nobody listens to, as the caller knows it in this scope
# (:func:`events_unheard`): writing their events registers no after-commit callback.
_unheard: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "volbal_unheard", default=frozenset())


@contextlib.contextmanager
def events_unheard(position_id: str) -> Iterator[None]:
    """Within this scope, events of ``position_id`` wake nothing after their commit: the
    caller has read, in its transaction, that no hook has anyone to wake for it (its owner has
    no active webhook endpoint: orders.selectors.submission_annotations), and so spares every
    commit the hooks' query. An endpoint created meanwhile gets these events from its next
    delivery pass (``deliver_webhooks``, the next wake-up), as after a failed hook."""
    token = _unheard.set(_unheard.get() | {position_id})
    try:
        yield
    finally:
        _unheard.reset(token)


def _after_commit(stream_id: str) -> None:
    if not _committed_hooks or stream_id in _unheard.get():
        return
    if not connection.in_atomic_block:  # committed already
        _Committed(stream_id)()
        return
    # Join the callback this transaction registered already (dropped with a rolled-back
    # savepoint, like its events), else register one.
    for _sids, func, _robust in connection.run_on_commit:
        if isinstance(func, _Committed):
            func.stream_ids.add(stream_id)
            return
    # robust: the work has committed; a failing hook must not turn its answer into an error.
    transaction.on_commit(_Committed(stream_id), robust=True)


def event_record_refusal(**fields) -> None:
    """Record an event that must survive the rollback of the work it refuses.

    Inside a :func:`refusal_scope` the event is written once that scope's transaction has
    rolled back; outside one it is written at once."""
    pending = _refusals.get()
    if pending is None:
        event_record(**fields)
    else:
        pending.append(fields)


@contextlib.contextmanager
def refusal_scope() -> Iterator[None]:
    """Wrap a use case (or a whole request) whose refusals must be recorded.

    Nested scopes hand their refusals to the outermost one."""
    if _refusals.get() is not None:
        yield
        return
    pending: list[dict] = []
    token = _refusals.set(pending)
    try:
        yield
    finally:
        _refusals.reset(token)
        if pending:
            with transaction.atomic():
                for fields in pending:
                    event_record(**fields)
