"""Proof against a peer (issue 22 item 6): the fixed-mix portfolio benchmark equals bt's
(``RunMonthly`` -> ``WeighSpecified`` -> ``Rebalance``, fractional shares, no commission) on the
bundled samples, to 1e-6 relative, at every bar."""

from __future__ import annotations

from decimal import Decimal

import bt  # the peer (requirements.txt pins it: a test peer only)
import numpy as np
import pandas as pd
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.strategy.backtest import portfolio as pf


@pytest.mark.parametrize("spec", [
    [("IBM", "0.4"), ("MSFT", "0.4"), ("AAPL", "0.2")],  # fully invested
    [("IBM", "0.3"), ("MSFT", "0.25")],  # 45 % stays cash
])
def test_fixed_mix_equals_bt(spec):
    hs = pf.align([pf.Holding(n, data.load_sample(n)[0], Decimal(w)) for n, w in spec])
    cash = 1_000_000
    ours = pf.fixed_mix(hs, rules.Config(commission_rate=Decimal(0)),
                        engine.Setup(cash=Decimal(cash)), "never", dividends=False)
    times = pd.DatetimeIndex(hs[0].series.times)
    prices = pd.DataFrame({h.name: h.series.prices for h in hs}, index=times)
    weights = {h.name: float(h.weight) for h in hs}
    strategy = bt.Strategy("fixed_mix", [bt.algos.RunMonthly(), bt.algos.WeighSpecified(
        **weights), bt.algos.Rebalance()])
    test = bt.Backtest(strategy, prices, initial_capital=cash, integer_positions=False,
                       progress_bar=False)
    res = bt.run(test)
    theirs = res.backtests["fixed_mix"].strategy.values.reindex(times).to_numpy()
    assert len(theirs) == len(ours) == len(times)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)
