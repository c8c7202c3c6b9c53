"""JSON out: Decimals as exact JSON numbers (never lossy floats, never strings).

No DRF renderer here (that is :mod:`volbal.api_renderers`): the models, the services and the
commands import these helpers, and a command such as ``manage.py sweep`` should not pay for
loading the API layer."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _quote  # json's own, in C

from rest_framework.utils.encoders import JSONEncoder

_MARK = "\x00D:"
_MARKED = re.compile(rb'"\\u0000D:(-?[0-9]+(?:\.[0-9]+)?)"')


def decimal_text(value: Decimal) -> str:
    """Plain notation without trailing zeros: Decimal('10000.000000') -> '10000'."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


class _MarkingEncoder(JSONEncoder):
    def default(self, obj):
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError("non-finite decimal")
            return _MARK + decimal_text(obj)
        return super().default(obj)


def dumps_exact(data) -> bytes:
    if isinstance(data, dict):
        flat = _flat_object(data)
        if flat is not None:
            return flat
    return _dumps_marked(data)


def _dumps_marked(data) -> bytes:
    """Any value: JSON's encoder writes each Decimal as a marked text, then the marks become
    the numbers."""
    text = json.dumps(data, cls=_MarkingEncoder, ensure_ascii=True, separators=(",", ":"))
    return _MARKED.sub(_marked_number, text.encode("ascii"))


def _flat_object(data: dict) -> bytes | None:
    """``data`` as :func:`dumps_exact` writes it when it is one object of text keys and plain
    values (a position's body: 33 of them, 17 decimals), else ``None``: each value written
    as the JSON encoder writes it (the same C quoting of text, ``int``'s repr), each decimal
    straight as its number, without the marker and the search for it afterwards (half the
    time of a body). Only those exact types: a subclass (e.g. a choice's enum), a float, a nested
    value or a non-finite decimal goes the general way, which answers as it always did."""
    parts = []
    for key, value in data.items():
        kind = type(value)
        if kind is str:
            text = _quote(value)
        elif kind is Decimal and value.is_finite():
            text = decimal_text(value)
        elif value is None:
            text = "null"
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = int.__repr__(value)
        else:
            return None
        if type(key) is not str:
            return None
        parts.append(f"{_quote(key)}:{text}")
    return ("{" + ",".join(parts) + "}").encode("ascii")


class AuditJSONEncoder(json.JSONEncoder):
    """For events' JSON payloads: a Decimal is stored as the exact JSON number the API renders
    (``decimal_text``), whatever its size, never a float nor a string; dates as ISO text."""

    def default(self, obj):
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError("non-finite decimal")
            return _MARK + decimal_text(obj)
        if hasattr(obj, "isoformat"):
            return obj.isoformat()
        return super().default(obj)

    def encode(self, o) -> str:
        return _MARKED_TEXT.sub(_marked_number, super().encode(o))


_MARKED_TEXT = re.compile(r'"\\u0000D:(-?[0-9]+(?:\.[0-9]+)?)"')


def _marked_number(match: re.Match) -> str:
    """The number a marked Decimal stands for, text or bytes (the same as the template ``\\1``;
    on Python 3.11 a template is expanded by Python code per match, this call costs less: every
    event written encodes a dozen decimals, every position rendered (:func:`dumps_exact`) 16)."""
    return match.group(1)


class AuditJSONDecoder(json.JSONDecoder):
    """Reads events' payloads back with every non-integer number as an exact Decimal, which
    the API renders as it renders every other decimal."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parse_float", Decimal)
        super().__init__(*args, **kwargs)
