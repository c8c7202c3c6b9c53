"""The backtest: bars through the one rules.evaluate; its metrics, data and reports."""
