"""The one way anything writes to the audit log."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.db import transaction

from events.actor import current_actor
from events.models import Event
from volbal.rows import insert_one

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
) -> Event:
    """Append one event. Events are never updated or deleted (the database refuses both).

    The event names the actor of the work being done (:mod:`events.actor`: the request's user,
    the command or the worker).

    Every write path appends events, so the row is inserted by :func:`volbal.rows.insert_one`
    rather than a compiled queryset."""
    actor = current_actor()
    return insert_one(Event(
        actor_source=actor.source,
        actor_user_id=actor.user_id,
        actor_name=actor.name,
        position_id=position_id,
        order_id=order_id,
        type=type,
        message=message,
        inputs=inputs or {},
        outputs=outputs or {},
    ))


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
