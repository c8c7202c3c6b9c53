"""Every file the strategy core writes: tables (:mod:`.tables`: CSV and xlsx) and charts
(:mod:`.charts`: PNG) of a backtest, a sweep, a walk-forward and a live position, each text cell
escaped by :mod:`.cells`. The top layer of the core: it reads the backtest's report and the
research outputs; nothing in the core imports it."""
