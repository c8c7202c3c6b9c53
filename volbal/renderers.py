"""JSON out: Decimals as exact JSON numbers (never lossy floats, never strings).

No DRF renderer here (that is :mod:`volbal.api_renderers`): the models, the services and the
commands import these helpers, and a command such as ``manage.py sweep`` should not pay for
loading the API layer."""

from __future__ import annotations

import json
import re
from decimal import Decimal

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
    text = json.dumps(data, cls=_MarkingEncoder, ensure_ascii=True, separators=(",", ":"))
    return _MARKED.sub(_marked_number, text.encode("ascii"))


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
