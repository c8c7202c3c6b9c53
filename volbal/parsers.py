"""JSON in: numbers parsed exactly, NaN and Infinity refused."""

from __future__ import annotations

import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def loads_exact(text: str | bytes):
    """Parse JSON with every non-integer number as a Decimal; NaN/Infinity are errors."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


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
