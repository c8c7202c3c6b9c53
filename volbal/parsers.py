"""JSON in: numbers parsed exactly, NaN and Infinity refused."""

from __future__ import annotations

import json
from decimal import Decimal

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser

# The one media type a request body may have: JSON in UTF-8. The view's parser (through
# ExactContentNegotiation) and the Idempotency-Key middleware (orders.middleware) both ask
# body_media_type(), so a body one of them takes is a body the other records, and anything else
# is 415 unsupported_media_type for both. REST framework's own negotiation also took wildcards
# (``application/*``, ``*/*``), which the middleware did not record: a retried fill applied twice.
JSON = "application/json"


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


MAX_DEPTH = 64  # arrays and objects nested deeper than any request of this API needs


def _too_deep(value) -> bool:
    """Whether ``value`` nests arrays/objects more than MAX_DEPTH levels (iteratively: a check
    for deep nesting must not itself recurse)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_exact(text: str | bytes):
    """Parse JSON with every non-integer number as a Decimal; NaN/Infinity are errors, and so
    is nesting deeper than MAX_DEPTH (which would otherwise be a RecursionError: a 500)."""
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"arrays and objects may nest at most {MAX_DEPTH} levels") from None
    if _too_deep(value):
        raise ValueError(f"arrays and objects may nest at most {MAX_DEPTH} levels")
    return value


def body_media_type(content_type: str | None) -> str | None:
    """The media type a body sent with this Content-Type header is parsed as (:data:`JSON`), or
    None when it is not taken: media type names compare case-insensitively, and a ``charset``
    parameter, if any, must be utf-8 (the body is decoded as UTF-8)."""
    try:
        media_type, params = parse_header_parameters(content_type or "")
    except ValueError:  # a header past Django's length limit
        return None
    if media_type != JSON or params.get("charset", "utf-8").lower() != "utf-8":
        return None
    return JSON


def unsupported_media_type(content_type: str | None) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        content_type or "",
        detail=f"Unsupported media type {(content_type or '(none)')[:100]!r}: send the body as "
               f"{JSON} (UTF-8).")


class ExactContentNegotiation(DefaultContentNegotiation):
    """The parser whose media type is exactly the body's (:func:`body_media_type`), never one
    matched through a wildcard; none: 415."""

    def select_parser(self, request, parsers):
        media_type = body_media_type(request.content_type)
        for parser in parsers:
            if media_type is not None and parser.media_type == media_type:
                return parser
        raise unsupported_media_type(request.content_type)


class StrictJSONParser(JSONParser):
    media_type = JSON

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw:
            return {}
        try:
            text = raw.decode("utf-8")
            if "\x00" in text or "\\u0000" in text.lower():
                raise ValueError("NUL characters are not accepted")
            return loads_exact(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
