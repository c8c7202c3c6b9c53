"""rules.fround: round(x, 6) and round(x, 8) of a float, bit for bit (the float mode's money
and quantity rounding), on random values, on ties and the doubles next to them, near the
fast path's bounds, and on zeros, signs and non-finite values."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from positions.strategy.rules import fround


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def same(x: float, scale: float) -> None:
    want = round(x, 6 if scale == 1e6 else 8)
    got = fround(x, scale)
    assert bits(got) == bits(want) or (math.isnan(got) and math.isnan(want)), (x, scale)


SCALES = st.sampled_from([1e6, 1e8])


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), SCALES)
def test_any_float(x, scale):
    same(x, scale)


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=-1e9, max_value=1e9), SCALES)
def test_money_and_quantity_ranges(x, scale):
    same(x, scale)


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=-4 * 10**15, max_value=4 * 10**15), SCALES,
       st.integers(min_value=-3, max_value=3))
def test_ties_and_their_neighbours(n, scale, ulps):
    """x = (n + 1/2) / scale and the doubles a few ulps either side: the values whose
    rounding a product's error could flip."""
    x = (n + 0.5) / scale
    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    same(x, scale)


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=0, max_value=10**14), SCALES)
def test_products_of_a_step(k, scale):
    """What the quantity rounding feeds it: floor(q / step) * step."""
    same(k * 1e-8, scale)
    same(k * 0.01, scale)


@pytest.mark.parametrize("x", [0.0, -0.0, 4e-7, -4e-7, 5e-7, -5e-7, 6e-7, 0.5, 1.5, 2.5,
                               4e9, 4e9 + 0.5, 3.9999999e9, 4.0000001e7, 1e300, -1e300,
                               5e-324, math.inf, -math.inf, math.nan, 0.1 + 0.2, 1.0000005,
                               1.0000015, 2.675, 1234.5678905])
def test_hand_picked(x):
    same(x, 1e6)
    same(x, 1e8)
