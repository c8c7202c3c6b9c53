"""Idempotency keys and body fingerprints, where bench/mutation.py found changes no test
noticed: the key's bounds and sentences, the number text, and the fingerprint's exact form.

The fingerprint is stored with each idempotency record and compared on every replay, so its
form is a stored format: a release that changed it (a tag, a separator, the number text)
would answer a client's honest retry, made across the deploy, with 409. These tests pin it
by hashing the canonical form written out here by hand."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from orders.idempotency import MAX_KEY_LENGTH, _number, fingerprint, key_problem

D = Decimal


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", " ", "~", "x" * 255, "order-1 ~!{}"])
def test_one_to_255_printable_ascii_characters_are_a_key(key):
    assert key_problem(key) is None


@pytest.mark.parametrize(("key", "sentence"), [
    ("", "Idempotency-Key must not be empty."),
    ("x" * 256, "Idempotency-Key is 256 characters; at most 255 are accepted."),
    ("a\x1fb", "Idempotency-Key must be printable ASCII characters."),
    ("a\x7fb", "Idempotency-Key must be printable ASCII characters."),
    ("caf\u00e9", "Idempotency-Key must be printable ASCII characters."),
])
def test_a_bad_key_is_refused_with_a_sentence(key, sentence):
    assert MAX_KEY_LENGTH == 255
    assert key_problem(key) == sentence


# Numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (D("1.5"), "15e-1"), (D("1.50"), "15e-1"), (D("15e-1"), "15e-1"),
    (D("-1.50"), "-15e-1"), (D(0), "0"), (D("-0"), "0"), (D("0.000"), "0"),
    (100, "1e2"), (D("1E+3"), "1e3"), (D("0.001"), "1e-3"), (-7, "-7e0"),
    (D("120.0450"), "120045e-3"),
])
def test_each_number_has_one_text(value, text):
    assert _number(value) == text


# Fingerprints -----------------------------------------------------------------------------


def test_the_fingerprint_is_the_sha256_of_the_documented_canonical_form():
    body = {"side": "BUY", "qty": D("10.50"), "limit": None, "tags": ["a", True, -2],
            "extra": {"z": D("0"), "note": "caf\u00e9"}}
    # keys sorted; objects "o", arrays "a", booleans "b", null "z", strings "s", numbers "n"
    # with their one text; compact separators; non-ASCII escaped
    canonical = (
        '["POST","/v1/positions/pos_1/orders",["o",['
        '["extra",["o",[["note",["s","caf\\u00e9"]],["z",["n","0"]]]]],'
        '["limit",["z"]],'
        '["qty",["n","105e-1"]],'
        '["side",["s","BUY"]],'
        '["tags",["a",[["s","a"],["b",true],["n","-2e0"]]]]'
        ']]]'
    )
    assert fingerprint("POST", "/v1/positions/pos_1/orders", body) == sha256(canonical)


def test_equal_bodies_share_a_fingerprint_and_different_ones_do_not():
    a = fingerprint("POST", "/p", {"qty": D("1.5"), "side": "BUY"})
    assert a == fingerprint("POST", "/p", {"side": "BUY", "qty": D("1.50")})
    assert a != fingerprint("POST", "/p", {"qty": D("-1.5"), "side": "BUY"})
    assert a != fingerprint("POST", "/p", {"qty": "1.5", "side": "BUY"})
    assert a != fingerprint("POST", "/p", {"quantity": D("1.5"), "side": "BUY"})
    assert a != fingerprint("PUT", "/p", {"qty": D("1.5"), "side": "BUY"})
    assert a != fingerprint("POST", "/q", {"qty": D("1.5"), "side": "BUY"})
    assert fingerprint("POST", "/p", [True]) != fingerprint("POST", "/p", [1])
    assert fingerprint("POST", "/p", None) != fingerprint("POST", "/p", {})
    assert fingerprint("POST", "/p", []) != fingerprint("POST", "/p", {})


def test_a_value_that_is_not_parsed_json_is_refused():
    with pytest.raises(TypeError, match="not a parsed JSON value: float"):
        fingerprint("POST", "/p", {"qty": 1.5})
