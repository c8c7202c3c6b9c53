"""backtesting.py running a band strategy comparable to volbal's, for bench/backtest_speed.py.

Usage: python bench/backtest_bt_strategy.py FILE.csv BARS

Reads the first BARS rows of the CSV (Date, Close) with pandas, then runs backtesting.py: buy
half at the first bar; afterwards sell when the price is 3 % above the anchor (the last trade's
price) or the stock weight is above 75 %, buy when it is 3 % below or the weight is under 25 %,
sized |Pa/P - 1| * 1.6667 * equity / P or back to the band (whole shares: backtesting.py has no
fractional sizes), commission 0.0001, trades at the bar's close. Prints one JSON line with the
seconds spent reading, running and in total, and the number of trades.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
from backtesting import Backtest, Strategy  # noqa: E402


class Band(Strategy):
    trigger = 0.03
    ratio = 1.6667
    low = 0.25
    high = 0.75

    def init(self):
        self.anchor = None

    def next(self):
        price = self.data.Close[-1]
        if self.anchor is None:
            units = int(self.equity * 0.5 / price)
            if units >= 1:
                self.buy(size=units)
            self.anchor = price
            return
        equity = self.equity
        weight = self.position.size * price / equity
        move = price / self.anchor - 1
        if move >= self.trigger or weight > self.high:
            units = int(max(abs(move) * self.ratio * equity / price,
                            (weight - self.high) * equity / price))
            units = min(units, self.position.size)
            if units >= 1:
                self.sell(size=units)
                self.anchor = price
        elif move <= -self.trigger or weight < self.low:
            units = int(max(abs(move) * self.ratio * equity / price,
                            (self.low - weight) * equity / price))
            units = min(units, int(self._broker.margin_available / (price * 1.0001)))
            if units >= 1:
                self.buy(size=units)
                self.anchor = price


def main() -> None:
    path, bars = sys.argv[1], int(sys.argv[2])
    warnings.simplefilter("ignore")
    t = time.perf_counter()
    df = pd.read_csv(path, nrows=bars, parse_dates=["Date"], index_col="Date")
    df["Open"] = df["High"] = df["Low"] = df["Close"]
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    bt = Backtest(df, Band, cash=10_000, commission=0.0001, trade_on_close=True,
                  finalize_trades=True)
    stats = bt.run()
    t_run = time.perf_counter() - t
    print(json.dumps({"bars": len(df), "read_s": t_read, "run_s": t_run,
                      "total_s": time.perf_counter() - T0, "trades": int(stats["# Trades"])}))


if __name__ == "__main__":
    main()
