"""Who acted: the actor every event (and every stored price) records next to its source.

The actor is context, set once where work enters the service and read by the one function that
writes events (:func:`events.services.event_record`) and by the prices service:

- a request (``ActorMiddleware``): the authenticated user, source ``admin`` under ``/admin/``,
  ``api`` elsewhere (read when the event is written, so DRF's token user is the one recorded);
- a management command (``ActorCommand`` as its base class): ``command:<name>``, source ``cron``;
- a worker or a cycle: one line around its work, e.g.
  ``with acting(Actor.worker("trade_cycle")):`` (source ``worker``) or
  ``with acting(Actor.command("trade_cycle")):`` (source ``cron``).

Code run outside all of these (a shell, a script, a test calling a service) is recorded as
source ``system`` with the process that ran it, never as nobody."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.core.management.base import BaseCommand
from django.db import models
from django.urls import reverse


class ActorSource(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    CRON = "cron"
    WORKER = "worker"
    SYSTEM = "system"  # no request, command or worker: a shell, a script, a test
    LEGACY = "legacy"  # recorded before events named their actor (backfill only)


USER_SOURCES = (ActorSource.API, ActorSource.ADMIN)


@dataclass(frozen=True)
class Actor:
    """``source`` and who: a user (``user_id`` with ``name`` its username) or, with no user,
    the command or worker that acted (``name`` like ``command:evaluate_positions``)."""

    source: str
    name: str
    user_id: int | None = None

    @classmethod
    def user(cls, user, source: str = ActorSource.API) -> Actor:
        return cls(source=str(source), name=user.get_username(), user_id=user.pk)

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(source=ActorSource.CRON.value, name=f"command:{name}")

    @classmethod
    def worker(cls, name: str) -> Actor:
        return cls(source=ActorSource.WORKER.value, name=f"worker:{name}")

    def __str__(self) -> str:
        who = f"{self.name} (user {self.user_id})" if self.user_id is not None else self.name
        return f"{self.source} {who}"


def _process_actor() -> Actor:
    """The actor of code run outside any request, command or worker."""
    argv = sys.argv or ["python"]
    program = os.path.basename(argv[0]) or "python"
    if program == "manage.py" and len(argv) > 1:
        program = f"manage.py {argv[1]}"
    return Actor(source=ActorSource.SYSTEM.value, name=f"process:{program}"[:150])


# Holds a function giving the actor: a request's user is known only once DRF authenticated it.
_current: contextvars.ContextVar[Callable[[], Actor] | None] = contextvars.ContextVar(
    "volbal_actor", default=None)


def current_actor() -> Actor:
    """The actor of the work being done now (see the module's docstring)."""
    found = _current.get()
    return _process_actor() if found is None else found()


@contextlib.contextmanager
def acting(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    """Everything recorded inside is recorded as done by ``actor`` (or by what the callable
    ``actor`` answers at the time)."""
    token = _current.set(actor if callable(actor) else (lambda: actor))
    try:
        yield
    finally:
        _current.reset(token)


@functools.cache
def admin_prefix() -> str:
    return reverse("admin:index")


def request_actor(request) -> Actor:
    """The actor of a request: its user (as authenticated when asked), ``admin`` under the
    admin's URLs, ``api`` elsewhere. An anonymous request (which writes nothing: the API and the
    admin refuse it) is recorded as its source with no user."""
    source = ActorSource.ADMIN if request.path.startswith(admin_prefix()) else ActorSource.API
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Actor(source=source.value, name="anonymous")
    return Actor.user(user, source.value)


class ActorMiddleware:
    """Every event a request records names the request's user and whether it came through the
    API or the admin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting(lambda: request_actor(request)):
            return self.get_response(request)


class ActorCommand(BaseCommand):
    """A management command whose events name it: ``command:<name>``, source ``cron``."""

    def execute(self, *args, **options):
        with acting(Actor.command(type(self).__module__.rsplit(".", 1)[-1])):
            return super().execute(*args, **options)


# Model defaults (the actor of an event or price built without naming one).

def current_source() -> str:
    return current_actor().source


def current_name() -> str:
    return current_actor().name


def current_user_id() -> int | None:
    return current_actor().user_id
