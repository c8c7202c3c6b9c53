"""Portfolios: positions grouped with unallocated cash, their cash movements (deposits,
withdrawals, transfers) and sleeve rebalancing toward target weights (docs/portfolios.md)."""
