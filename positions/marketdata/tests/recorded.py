"""Recorded exchanges with Alpaca's market-data API (``exchanges/*.json``) served by a real
HTTP server on 127.0.0.1 (pytest-httpserver's ``httpserver``), which checks every request the
SDK sends: method, path, the whole query, and the two auth headers. Nothing reaches Alpaca.
The recordings' format and the checks are positions/marketdata/replay.py's, which
``manage.py alpaca_data_replay`` serves too."""

from __future__ import annotations

from pathlib import Path

from positions.marketdata import replay
from positions.marketdata.replay import KEY_ID, SECRET, check

EXCHANGES = Path(__file__).parent / "exchanges"
__all__ = ["EXCHANGES", "KEY_ID", "SECRET", "check", "expect"]


def expect(httpserver, name: str, directory: Path = EXCHANGES, **kw) -> replay.ReplayDates:
    """Make ``httpserver`` answer the recording ``name`` (in ``directory``), request by
    request, in order (``kw``: :func:`positions.marketdata.replay.expect`'s)."""
    return replay.expect(httpserver, Path(directory) / f"{name}.json", **kw)
