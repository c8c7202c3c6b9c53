"""The pure strategy core: rules, backtest and research. No Django, none of the apps."""
