"""The workflows above positions core and orders: evaluation, the trade cycle, corporate actions, alerts, the ledger check, the trade schedule."""  # noqa: E501
