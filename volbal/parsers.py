"""JSON in: numbers parsed exactly, NaN and Infinity refused."""

from __future__ import annotations

import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


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


class StrictJSONParser(JSONParser):
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
