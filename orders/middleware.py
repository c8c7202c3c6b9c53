"""The Idempotency-Key middleware (docs/architecture.md#idempotency).

The record is inserted first, inside the same transaction as the work, so a concurrent request
with the same key waits on the unique index and then replays the committed record. An error
response rolls the whole transaction back, record included, so the client may retry."""

from __future__ import annotations

import datetime as dt
import functools

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.urls import Resolver404, URLResolver, get_resolver, get_urlconf, resolve
from rest_framework.exceptions import AuthenticationFailed

from events.services import refusal_scope
from orders.idempotency import HEADER, fingerprint, key_problem
from orders.models import IdempotencyRecord
from volbal import clock
from volbal.api import error_body, json_response
from volbal.auth import TokenAuthentication, local_user
from volbal.parsers import body_media_type, loads_exact, unsupported_media_type
from volbal.renderers import dumps_exact
from volbal.rows import fetch_one, insert_one, update_one

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REPLAY_HEADER = "Idempotent-Replayed"


def caller_identity(request) -> str:
    """Who is asking, before DRF has authenticated, decided exactly as DRF will decide it: the
    token's user (DRF's own token parsing, so ``token`` and ``Token`` alike; the lookup is
    remembered for the view's authentication), else the session's user, else the local user in
    local mode. Credentials DRF will refuse get a scope of their own (the request will be a 401
    and store nothing)."""
    try:
        found = TokenAuthentication().authenticate_once(request)
    except AuthenticationFailed:
        return "invalid-credentials"
    if found is not None:
        return f"user:{found[0].pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    if settings.LOCAL_MODE:
        return f"user:{local_user().pk}"
    return "anonymous"


def _replay(record: IdempotencyRecord) -> HttpResponse:
    status = 200 if record.status_code == 201 else record.status_code
    response = HttpResponse(
        bytes(record.response_body), status=status, content_type="application/json"
    )
    response[REPLAY_HEADER] = "true"
    if record.location:
        response["Location"] = record.location
    return response


def _class_of(view):
    return getattr(view, "view_class", None) or getattr(view, "cls", None)


def _view_class(request):
    """The view the request goes to: resolved here before the view runs (the handler resolves
    it again), read from the handler's ``resolver_match`` after it ran (no third resolve)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
    return _class_of(match.func)


@functools.cache
def _some_view_writes_nothing(resolver) -> bool:
    """Whether any view of the URLconf (of ``resolver``, built once per URLconf) declares
    ``writes_nothing``: when none does, no request's path needs resolving to know that its
    view does not (resolving a path was a thirtieth of a submission's CPU)."""
    def views(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from views(pattern.url_patterns)
            else:
                yield _class_of(pattern.callback)

    return any(getattr(view, "writes_nothing", False) for view in views(resolver.url_patterns))


def _writes_nothing(request) -> bool:
    """A view that declares ``writes_nothing = True`` (a backtest: a pure computation) has
    nothing a key could protect; its POST is simply answered again."""
    if not _some_view_writes_nothing(get_resolver(get_urlconf())):
        return False
    return bool(getattr(_view_class(request), "writes_nothing", False))


def _stored_body(request, content: bytes) -> bytes:
    """The body a replay answers: the response's, less the top-level fields the view names in
    ``replay_omits`` (a webhook's secret is shown once, and never stored to be shown again)."""
    omit = getattr(_view_class(request), "replay_omits", ())
    if not omit:
        return content
    body = loads_exact(content.decode("utf-8"))
    if not isinstance(body, dict):
        return content
    return dumps_exact({k: v for k, v in body.items() if k not in omit})


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.META.get(HEADER)
        if (
            key is None
            or request.method not in WRITE_METHODS
            or not request.path.startswith("/v1/")
            or _writes_nothing(request)
        ):
            return self.get_response(request)
        problem = key_problem(key)
        if problem:
            return json_response(error_body("invalid_idempotency_key", problem), 400)
        if request.body and body_media_type(request.META.get("CONTENT_TYPE")) is None:
            # the parser takes no other body (volbal.parsers): refused here too, so a view
            # that does not read its body cannot act on a request this key did not record
            problem = unsupported_media_type(request.META.get("CONTENT_TYPE"))
            return json_response(error_body("unsupported_media_type", str(problem.detail)),
                                 415)
        try:
            body = loads_exact(request.body.decode("utf-8")) if request.body else {}
        except (ValueError, UnicodeDecodeError):
            return self.get_response(request)  # the view answers 400; nothing to remember
        now = clock.now()
        scope = {"identity": caller_identity(request), "method": request.method,
                 "path": request.path[:255], "key": key}
        signature = fingerprint(request.method, request.path, body)

        # A replay or a mismatch is answered from a plain read: no transaction, no lock.
        answered = _answer_existing(fetch_one(IdempotencyRecord, **scope), signature, now)
        if answered is not None:
            return answered
        with refusal_scope(), transaction.atomic():
            record_id = _claim(scope, signature, now)
            if not isinstance(record_id, int):
                return record_id  # a replay or a mismatch after all
            response = self.get_response(request)
            if 200 <= response.status_code < 300 and not getattr(response, "streaming", False):
                update_one(IdempotencyRecord, record_id, status_code=response.status_code,
                           response_body=_stored_body(request, response.content),
                           location=response.get("Location", "")[:2048])
            else:
                transaction.set_rollback(True)
        return response


def _answer_existing(existing: IdempotencyRecord | None, signature: str, now):
    """The answer a committed, unexpired record gives: its replay, or the mismatch."""
    if existing is None or existing.expires_at <= now:
        return None
    if existing.fingerprint != signature:
        return json_response(
            error_body(
                "idempotency_signature_mismatch",
                "This Idempotency-Key was already used with another request body; use a new "
                "key for a new request.",
            ),
            409,
        )
    return _replay(existing)


def _claim(scope: dict, signature: str, now) -> int | HttpResponse:
    """Insert the record (one statement, no savepoint): its id, or the answer of the record
    already there. A twin still in flight holds the unique index, so the insert waits for it
    to commit (then this request replays it) or roll back (then this one inserts)."""
    expires = now + dt.timedelta(hours=settings.VOLBAL_IDEMPOTENCY_TTL_HOURS)
    for _ in range(3):
        record = insert_one(
            IdempotencyRecord(**scope, fingerprint=signature, expires_at=expires),
            unless_conflict=tuple(scope))
        if record is not None:
            return record.pk
        existing = fetch_one(IdempotencyRecord, **scope)
        if existing is None:
            continue  # purged between our insert and our read
        if existing.expires_at <= now:
            IdempotencyRecord.objects.filter(pk=existing.pk).delete()
            continue
        return _answer_existing(existing, signature, now)
    return json_response(
        error_body("idempotency_conflict", "This Idempotency-Key is in use; retry."), 409
    )
