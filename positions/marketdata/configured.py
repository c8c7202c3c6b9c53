"""The feed the project's settings name (docs/marketdata.md#settings): the port's
:func:`~positions.marketdata.feeds.feed_from_settings` over Django's settings, with the Alpaca
credentials read from the environment only (the broker's; never kept in the settings)."""

from __future__ import annotations

import os

from django.conf import settings

from positions.marketdata.feeds import feed_from_settings
from positions.marketdata.port import MarketData

SETTINGS = ("VOLBAL_PRICE_FEED", "ALPACA_DATA_FEED", "ALPACA_DATA_URL", "VOLBAL_PRICE_FEED_DIR")
CREDENTIALS = ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY")


def configured_feed() -> MarketData | None:
    """The feed ``VOLBAL_PRICE_FEED`` names, or None (prices are posted or imported only).
    Raises :class:`~positions.marketdata.port.FeedNotConfigured` when it names one that cannot
    be used (missing credentials or directory, an unknown name)."""
    env = {name: str(getattr(settings, name, "") or "") for name in SETTINGS}
    env.update({name: os.environ.get(name, "") for name in CREDENTIALS})
    return feed_from_settings(env)


def feed_named() -> str:
    """The feed's name as set (``alpaca``, ``file``), or "" when none is."""
    name = str(getattr(settings, "VOLBAL_PRICE_FEED", "") or "").strip().lower()
    return "" if name == "none" else name
