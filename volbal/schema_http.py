"""What the HTTP layer answers before or around an operation, documented on every operation
(drf-spectacular postprocessing hook, beside volbal.schema.document_server_limits' 414):

- 431: a header line longer than gunicorn's ``limit_request_field_size`` (gunicorn.conf.py):
  gunicorn's short HTML page;
- 411 ``length_required`` and 413 ``request_too_large`` on every operation that takes a body
  (volbal.framing);
- 429 ``throttled`` with ``Retry-After`` on every operation of a throttled view
  (volbal/throttling.py), and what deploy/nginx.conf answers to a flood."""

from __future__ import annotations

from django.conf import settings

HEADER_FIELD_LIMIT = 8190  # gunicorn.conf.py limit_request_field_size

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json_error(description: str, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": _ERROR}}}
    if headers:
        out["headers"] = headers
    return out


def _throttled_views(generator) -> set[tuple[str, str]]:
    """(path, method) of every endpoint whose view has a throttle scope."""
    found = set()
    for path, _regex, method, callback in generator.endpoints or ():
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if getattr(view, "throttle_scope", None):
            found.add((path, method.lower()))
    return found


def document_http_limits(result, generator, request, public):
    header_too_large = {
        "description": f"A request header line is longer than {HEADER_FIELD_LIMIT} bytes; "
        "gunicorn answers with a short HTML page.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    length_required = _json_error(
        "`detail` is `length_required`: a body sent chunked without Content-Length.")
    too_large = _json_error(
        "`detail` is `request_too_large`: the body is larger than the endpoint takes "
        f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes unless the operation says more).")
    throttled = _json_error(
        "`detail` is `throttled`: too many requests of this kind from this caller (a per-user "
        "rate, or the proxy's rate for everyone); retry after `Retry-After` seconds.",
        {"Retry-After": {"schema": {"type": "integer", "minimum": 0},
                         "description": "Seconds to wait before retrying."}})
    throttled_ops = _throttled_views(generator)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.setdefault("431", header_too_large)
            if "requestBody" in operation:
                responses.setdefault("411", length_required)
                responses.setdefault("413", too_large)
            if (path, method) in throttled_ops:
                own = responses.setdefault("429", throttled)
                if own is not throttled:  # its own 429 codes (a quota): throttled as well
                    own.setdefault("headers", {}).update(throttled["headers"])
    return result
