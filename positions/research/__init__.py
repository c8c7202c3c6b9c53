"""Research jobs (sweeps, walk-forwards, large backtests) run by workers, as a Django app."""
