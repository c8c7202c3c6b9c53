"""The backtest (strategy.md, Flow E): pure modules plus the API view in ``api``."""
