"""The candidate search of the fast loop: the bars compared one by one first (a list) find the
same bar as the numpy windows alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from positions.strategy.backtest import engine


@pytest.mark.parametrize("seed", range(5))
def test_the_one_by_one_start_finds_the_same_bar(seed):
    rng = np.random.default_rng(seed)
    p = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000))), 2)
    plist = p.tolist()
    for i in range(0, 3000, 37):
        for hi, lo in ((p[i] * 1.02, p[i] * 0.98), (p[i] * 1.3, -math.inf),
                       (math.inf, p[i] * 0.7), (p[i], p[i]), (math.inf, -math.inf)):
            for limit in (i, i + 5, i + 24, i + 25, 3000):
                limit = min(limit, 3000)
                want = engine._scan(p, i, limit, hi, lo)
                assert engine._scan(p, i, limit, hi, lo, plist) == want
                if want < limit:
                    assert p[want] >= hi or p[want] <= lo
                    assert not ((p[i:want] >= hi) | (p[i:want] <= lo)).any()
