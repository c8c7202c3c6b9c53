"""Idempotency keys: validation, the caller's scope and the canonical body fingerprint."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 255


def key_problem(key: str) -> str | None:
    """Why a key is unacceptable, or None: 1 to 255 printable ASCII characters."""
    if not key:
        return "Idempotency-Key must not be empty."
    if len(key) > MAX_KEY_LENGTH:
        return f"Idempotency-Key is {len(key)} characters; at most {MAX_KEY_LENGTH} are accepted."
    if not all(" " <= ch <= "~" for ch in key):
        return "Idempotency-Key must be printable ASCII characters."
    return None


def _number(value: int | Decimal) -> str:
    """One text per number: 1.5, 1.50 and 15e-1 are all ``15e-1``; 0 and -0 are ``0``.

    Built from the digits, never by formatting, so 1e999999999 costs nine bytes, not a
    billion."""
    sign, digits, exponent = Decimal(value).as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0")
    if not stripped:
        return "0"
    return f"{'-' if sign else ''}{stripped}e{exponent + len(text) - len(stripped)}"


def _canonical(value):
    """A tagged form of a parsed JSON value: equal JSON values (key order, whitespace, 1.5 vs
    1.50) map to one form, and different values never share one (an object never looks like a
    number, a string never like a number)."""
    if isinstance(value, dict):
        return ["o", sorted([str(k), _canonical(v)] for k, v in value.items())]
    if isinstance(value, list):
        return ["a", [_canonical(v) for v in value]]
    if isinstance(value, bool):
        return ["b", value]
    if value is None:
        return ["z"]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, (int, Decimal)):
        return ["n", _number(value)]
    raise TypeError(f"not a parsed JSON value: {type(value).__name__}")


def fingerprint(method: str, path: str, body: object) -> str:
    canonical = json.dumps(
        [method, path, _canonical(body)], separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
