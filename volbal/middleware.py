"""Request plumbing: one JSON log line per request, with a request id (also returned as
X-Request-ID), and JSON for every error under /v1/."""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from django.urls import Resolver404, resolve

from volbal.api import django_error_response, error_body, json_response

log = logging.getLogger("volbal.request")

# Anything may add fields to the current request's log line (e.g. the position of an order).
log_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar("volbal_log",
                                                                          default=None)

_IDS = re.compile(r"/v1/(positions|orders)/([A-Za-z0-9_]{1,40})")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def log_extra(**fields) -> None:
    context = log_context.get()
    if context is not None:
        context.update(fields)


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        context = {"request_id": request_id}
        match = _IDS.match(request.path)
        if match:
            context["position_id" if match.group(1) == "positions" else "order_id"] = \
                match.group(2)
        key = request.META.get("HTTP_IDEMPOTENCY_KEY")
        if key is not None:
            context["idempotency_key"] = key[:255]
        token = log_context.set(context)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            log_context.reset(token)
        response["X-Request-ID"] = request_id
        if log.isEnabledFor(logging.INFO):
            user = getattr(request, "user", None)
            log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={**context, "method": request.method, "path": request.path,
                       "status": response.status_code,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                       "user": user.get_username() if user is not None
                       and user.is_authenticated else None},
            )
        return response


class JsonErrorsMiddleware:
    """Every error under /v1/ is JSON (docs/architecture.md#errors), in local mode too: Django's
    own HTML pages (DEBUG's 404 and 500, a SuspiciousOperation's 400) become the API's error body
    with the same status. A path with a NUL character names nothing (404, before any database sees
    it: PostgreSQL refuses NUL in text). A path with a stray trailing slash, anywhere but the
    admin, answers a 404 that names the address without it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/v1/"):
            response = self.get_response(request)
            if response.status_code == 404 and not request.path.startswith("/admin/"):
                return _not_found(request) or response
            return response
        if "\x00" in request.path:
            return django_error_response(404)
        response = self.get_response(request)
        if response.status_code == 404:
            response = _not_found(request) or response
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith(
                "application/json"):
            replaced = django_error_response(response.status_code)
            for header in ("Allow", "WWW-Authenticate"):
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response


def _not_found(request):
    """The 404 of a path with a stray trailing slash, naming the address without it (the API's
    paths have none); None for any other path."""
    path = request.path_info
    if not path.endswith("/") or path == "/":
        return None
    try:
        resolve(path)
        return None  # the path exists; its own view said 404
    except Resolver404:
        pass
    try:
        resolve(path.rstrip("/"))
    except Resolver404:
        return None
    return json_response(error_body(
        "not_found", f"There is nothing at {request.path}; the address is "
        f"{request.path.rstrip('/')}, without the trailing slash."), 404)
