"""Research over the backtest: parameter sweeps and walk-forward validation (strategy.md,
"Research: sweeps and walk-forward"). Pure: no Django."""
