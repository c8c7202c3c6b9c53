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


def _canonical(value):
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        # 1.5, 1.50 and 15e-1 are the same number
        number = Decimal(value).normalize()
        return {"$n": format(number, "f") if number != 0 else "0"}
    return value


def fingerprint(method: str, path: str, body: object) -> str:
    canonical = json.dumps(
        [method, path, _canonical(body)], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
