"""volbal.renderers.dumps_exact: a flat object of plain values (a position's body) is written
directly, byte for byte what the general way (JSON's encoder and the decimal marks) writes."""

from __future__ import annotations

import enum
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from volbal.renderers import _dumps_marked, _flat_object, dumps_exact

BOUND = 10 ** 15  # amounts' magnitudes; an unbounded exponent would write a million digits
PLAIN = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=30),
    st.decimals(min_value=-BOUND, max_value=BOUND, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-BOUND, max_value=BOUND, places=6),
)


@given(st.dictionaries(st.text(max_size=20), PLAIN, max_size=40))
def test_a_flat_object_is_written_as_the_general_way_writes_it(data):
    assert _flat_object(data) is not None  # written directly
    assert dumps_exact(data) == _dumps_marked(data)
    assert json.loads(dumps_exact(data), parse_float=Decimal) == {
        k: (Decimal(v.normalize()) if isinstance(v, Decimal) else v) for k, v in data.items()}


class Choice(enum.StrEnum):
    A = "a"


@pytest.mark.parametrize("value", [1.5, Choice.A, [1], {"a": Decimal("1.50")}, (), b"x"])
def test_anything_else_goes_the_general_way(value):
    data = {"qty": Decimal("2.500"), "other": value}
    assert _flat_object(data) is None
    assert dumps_exact(data) == _dumps_marked(data)


def test_a_non_finite_decimal_is_refused_as_before():
    for value in (Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")):
        with pytest.raises(ValueError, match="non-finite decimal"):
            dumps_exact({"price": value})


def test_a_body_with_a_non_text_key_goes_the_general_way():
    assert _flat_object({1: "x"}) is None
    assert dumps_exact({1: "x", "q": Decimal("0.10")}) == b'{"1":"x","q":0.1}'


def test_negative_zero_and_exponents_are_plain_numbers():
    assert dumps_exact({"a": Decimal("-0.000"), "b": Decimal("1E+3"), "c": Decimal("-1.50E-7")}) \
        == b'{"a":0,"b":1000,"c":-0.00000015}'
