"""The volatility-balancing rules of docs/strategy.md (#evaluation, #fills, #dividends, #splits,
#price-jump-guard): pure, deterministic, framework-free (the standard library only, so they run
in a test, a notebook or a backtest loop). One module per concern; this package re-exports their
public names (``rules.evaluate``, ``rules.Config``, ...):

- :mod:`.config`: ``Config``, the bounds table ``BOUNDS`` (the one definition of every field's
  bounds: the API fields and the database constraints are generated from it), ``config_errors``;
- :mod:`.numbers`: the places of quantities and money, rounding (``fround``);
- :mod:`.evaluate`: ``evaluate`` (docs/strategy.md#evaluation), the side choice ``side_at``, the
  guardrail arithmetic, trigger sizes and the rounding to the configured step;
- :mod:`.explain`: the sentences a person reads;
- :mod:`.book`: the book arithmetic of fills, dividends and splits;
- :mod:`.guard`: the price-jump rule;
- :mod:`.portfolio`: a portfolio's rebalance, when it is due and the cash it moves
  (docs/strategy.md#portfolios; imported as ``rules.portfolio``);
- :mod:`.returns`: time-weighted and money-weighted returns over a timeline of values and
  flows (docs/strategy.md#returns), used as ``rules.returns.returns_of``.
"""

from positions.strategy.rules.book import (
    SLIPPAGE_BPS_MAX,
    SPLIT_RATE_MAX,
    SPLIT_RATIO_MAX,
    SPLIT_RATIO_MIN,
    SplitResult,
    apply_cash_movement,
    apply_fill,
    apply_split,
    avg_fill_price,
    cash_after_buy,
    covered_qty,
    default_commission,
    dividend_amounts,
    shares_entitled,
    slipped_price,
    split_adjusted_price,
    split_qty,
    split_ratio,
    split_ratio_decimal,
    split_ratio_error,
    split_ratio_text,
)
from positions.strategy.rules.config import (
    BOUNDS,
    BUY,
    CONFIG_FIELDS,
    MAX_ORDERS_PER_DAY_LIMIT,
    MAX_PRICE_JUMP_LIMIT,
    REBALANCES,
    SELL,
    SIDES,
    SIZINGS,
    Bound,
    Config,
    RuleError,
    config_errors,
    constraint_lookups,
    constraint_names,
    field_kwargs,
)
from positions.strategy.rules.evaluate import (
    BLOCKS,
    KINDS,
    TRIM_CAPS,
    Decision,
    Proposal,
    State,
    buy_to,
    evaluate,
    new_decision,
    new_proposal,
    qty_step,
    round_qty,
    sell_to,
    side_at,
    trigger_size,
    weight_of,
)
from positions.strategy.rules.guard import price_jump
from positions.strategy.rules.numbers import MONEY_PLACES, QTY_PLACES, fast_constructor, fround

__all__ = [
    "BLOCKS",
    "BOUNDS",
    "BUY",
    "CONFIG_FIELDS",
    "KINDS",
    "MAX_ORDERS_PER_DAY_LIMIT",
    "MAX_PRICE_JUMP_LIMIT",
    "MONEY_PLACES",
    "QTY_PLACES",
    "REBALANCES",
    "SELL",
    "SIDES",
    "SIZINGS",
    "SLIPPAGE_BPS_MAX",
    "SPLIT_RATIO_MAX",
    "SPLIT_RATIO_MIN",
    "SPLIT_RATE_MAX",
    "TRIM_CAPS",
    "Bound",
    "Config",
    "Decision",
    "Proposal",
    "RuleError",
    "SplitResult",
    "State",
    "apply_cash_movement",
    "apply_fill",
    "apply_split",
    "avg_fill_price",
    "buy_to",
    "cash_after_buy",
    "config_errors",
    "constraint_lookups",
    "constraint_names",
    "covered_qty",
    "default_commission",
    "dividend_amounts",
    "evaluate",
    "fast_constructor",
    "field_kwargs",
    "fround",
    "new_decision",
    "new_proposal",
    "price_jump",
    "qty_step",
    "round_qty",
    "sell_to",
    "side_at",
    "slipped_price",
    "split_adjusted_price",
    "split_qty",
    "shares_entitled",
    "split_ratio",
    "split_ratio_decimal",
    "split_ratio_error",
    "split_ratio_text",
    "trigger_size",
    "weight_of",
]
