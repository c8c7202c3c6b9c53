"""Writing tables (CSV, xlsx) and charts of the backtest report and the research outputs."""
