"""Research over the backtest: parameter sweeps and walk-forward validation
(docs/strategy.md#research). Pure: no Django."""
