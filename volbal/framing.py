"""Exact request framing (docs/api.md#limits): a body is read whole or refused, never silently
dropped.

- ``Transfer-Encoding: chunked`` without ``Content-Length`` answers 411 ``length_required``:
  Django reads a body by its ``Content-Length`` only, so such a body would otherwise be read as
  empty (a PATCH answered 200 and changed nothing). nginx (deploy/nginx.conf) buffers a chunked
  body and forwards it with its length, so behind it such a request simply works.
- A ``Content-Length`` over the endpoint's limit answers 413 ``request_too_large`` before the
  body is read, on every endpoint: ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (nginx's
  ``client_max_body_size``), or a larger limit a view declares as ``max_body_bytes`` (the
  backtest's series). Django alone would answer 400 ``bad_request`` once the body was read.
  A body within such a larger limit that carries an ``Idempotency-Key`` is read here whole, so
  that the key's middleware can read it too."""

from __future__ import annotations

import io

from django.conf import settings
from django.urls import Resolver404, resolve

from volbal.api import error_body, json_response


def body_limit(path_info: str) -> int:
    """The largest body the endpoint at ``path_info`` takes, in bytes."""
    try:
        match = resolve(path_info)
    except Resolver404:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    view = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    return getattr(view, "max_body_bytes", None) or settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def too_large(limit: int) -> dict:
    return error_body("request_too_large",
                      f"The body is larger than this endpoint takes ({limit:,} bytes).")


def _length(raw: str) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


class RequestFramingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        length = meta.get("CONTENT_LENGTH") or ""
        if not length and meta.get("HTTP_TRANSFER_ENCODING"):
            return json_response(error_body(
                "length_required",
                "Send the body with a Content-Length header; a chunked body without one is "
                "not read."), 411)
        size = _length(length) if length else 0
        if size and size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            limit = body_limit(request.path_info)
            if size > limit:
                return json_response(too_large(limit), 413)
            if "HTTP_IDEMPOTENCY_KEY" in meta:
                # Within the view's own larger limit: read it whole now, as request.body
                # would, so that the Idempotency-Key middleware's request.body (to fingerprint
                # it) is not refused at DATA_UPLOAD_MAX_MEMORY_SIZE.
                request._body = request.read()
                request._stream = io.BytesIO(request._body)
        response = self.get_response(request)
        if size:
            _drain(request)
        return response


def _drain(request) -> None:
    """Read what is left of a body (within its limit) that the answer did not need, e.g. a
    401 or a 429 decided before parsing. gunicorn closes the connection after the answer, and
    closing a socket with unread data resets it: nginx, still sending the body, then saw the
    reset instead of the answer and answered 502 (volbal/tests/test_deploy.py caught it)."""
    try:
        while request.read(1 << 16):
            pass
    except OSError:  # the client went away mid-body: nothing left to protect
        pass
