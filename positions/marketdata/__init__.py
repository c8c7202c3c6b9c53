"""The market-data port (latest trades, raw daily bars, splits, cash dividends) and its adapters."""
