"""Choosing the market-data adapter from the environment (docs/marketdata.md): its own module,
above the port and the adapters that import the port."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from positions.marketdata.file import FileFeed
from positions.marketdata.port import FeedNotConfigured, MarketData

FEEDS = ("alpaca", "file")


def feed_from_settings(env: Mapping[str, str]) -> MarketData | None:
    """The feed ``VOLBAL_PRICE_FEED`` names in ``env`` (``os.environ`` or the like), or None
    when it names none (unset, empty or ``none``): prices are then posted or imported only.

    - ``alpaca``: ``ALPACA_API_KEY_ID`` and ``ALPACA_API_SECRET_KEY`` (the broker's), the feed
      ``ALPACA_DATA_FEED`` (default ``iex``), the endpoint ``ALPACA_DATA_URL`` (default Alpaca's).
    - ``file``: the directory ``VOLBAL_PRICE_FEED_DIR`` (docs/marketdata.md#the-file-adapter).
    """
    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    name = get("VOLBAL_PRICE_FEED").lower()
    if name in ("", "none"):
        return None
    if name == "alpaca":
        # alpaca-py (a heavy optional library) is loaded only when Alpaca is chosen
        from positions.marketdata.alpaca import AlpacaFeed

        key, secret = get("ALPACA_API_KEY_ID"), get("ALPACA_API_SECRET_KEY")
        if not key or not secret:
            raise FeedNotConfigured("VOLBAL_PRICE_FEED is alpaca but ALPACA_API_KEY_ID and "
                                    "ALPACA_API_SECRET_KEY are not both set",
                                    "alpaca_credentials_missing")
        url = get("ALPACA_DATA_URL") or None
        if url is not None and not _http_url(url):
            raise FeedNotConfigured(f"ALPACA_DATA_URL {url[:60]!r} is not an http(s) URL "
                                    "(e.g. http://127.0.0.1:8765); leave it unset for Alpaca's")
        return AlpacaFeed(key_id=key, secret_key=secret, feed=get("ALPACA_DATA_FEED") or "iex",
                          url=url)
    if name == "file":
        directory = get("VOLBAL_PRICE_FEED_DIR")
        if not directory:
            raise FeedNotConfigured("VOLBAL_PRICE_FEED is file but VOLBAL_PRICE_FEED_DIR (the "
                                    "directory of price files) is not set")
        return FileFeed(directory)
    raise FeedNotConfigured(f"VOLBAL_PRICE_FEED is {name!r}; it must be one of "
                            f"{', '.join(FEEDS)} or none")


def _http_url(url: str) -> bool:
    """An absolute http(s) URL with a host (and a valid port, when one is given)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when out of range or not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
