"""Public ids that read well and sort by creation time: ``pos_01JD3Q…``, ``ord_…``, ``fil_…``."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 random chars (a ULID in lower case)."""
    return f"{prefix}_{_b32(int(time.time() * 1000), 10)}{_b32(int.from_bytes(os.urandom(10)), 16)}"


def position_id() -> str:
    return new_id("pos")


def order_id() -> str:
    return new_id("ord")


def fill_id() -> str:
    return new_id("fil")


def dividend_id() -> str:
    return new_id("div")


def split_id() -> str:
    return new_id("spl")


def portfolio_id() -> str:
    return new_id("pfl")
