"""backtesting.py's ``Backtest.optimize`` over the band strategy of backtest_bt_strategy.py, for
bench/sweep_speed.py.

Usage: python bench/sweep_bt_optimize.py FILE.csv TRIGGERS LOWS

TRIGGERS and LOWS are comma-separated values of the strategy's ``trigger`` and ``low``; every
combination is one cell (``optimize`` runs them on every core by default). Prints one JSON line:
seconds reading, optimizing and in total, the number of cells, the best cell.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
from backtest_bt_strategy import Band  # noqa: E402
from backtesting import Backtest  # noqa: E402


def main() -> None:
    path = sys.argv[1]
    triggers = [float(x) for x in sys.argv[2].split(",")]
    lows = [float(x) for x in sys.argv[3].split(",")]
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    df = pd.read_csv(path, parse_dates=["Date"], index_col="Date")
    df["Open"] = df["High"] = df["Low"] = df["Close"]
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    bt = Backtest(df, Band, cash=10_000, commission=0.0001, trade_on_close=True,
                  finalize_trades=True)
    stats, heatmap = bt.optimize(trigger=triggers, low=lows, maximize="Sharpe Ratio",
                                 return_heatmap=True)
    t_opt = time.perf_counter() - t
    best = stats._strategy
    print(json.dumps({"bars": len(df), "cells": int(heatmap.size), "read_s": t_read,
                      "optimize_s": t_opt, "total_s": time.perf_counter() - T0,
                      "best": {"trigger": best.trigger, "low": best.low,
                               "sharpe": float(stats["Sharpe Ratio"])}}))


if __name__ == "__main__":
    main()
