"""Recorded exchanges with Alpaca's market-data API (``exchanges/*.json``) served by a real
HTTP server on 127.0.0.1 (pytest-httpserver's ``httpserver``), which checks every request the
SDK sends: method, path, the whole query, and the two auth headers. Nothing reaches Alpaca.
The recordings' format and the checks are positions/marketdata/replay.py's, which
``manage.py alpaca_data_replay`` serves too."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from positions.marketdata import replay
from positions.marketdata.replay import KEY_ID, SECRET, check

EXCHANGES = Path(__file__).parent / "exchanges"
__all__ = ["EXCHANGES", "KEY_ID", "SECRET", "check", "expect", "replay_command"]


def expect(httpserver, name: str, directory: Path = EXCHANGES, **kw) -> replay.ReplayDates:
    """Make ``httpserver`` answer the recording ``name`` (in ``directory``), request by
    request, in order (``kw``: :func:`positions.marketdata.replay.expect`'s)."""
    return replay.expect(httpserver, Path(directory) / f"{name}.json", **kw)


def replay_command(log, raised: list | None = None) -> tuple[threading.Thread, int]:
    """``manage.py alpaca_data_replay --exit-when-done`` on a free port of 127.0.0.1 in a thread
    (its output in ``log``, a CommandError it raises appended to ``raised``), once it listens:
    the thread and the port."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def serve():
        try:
            call_command("alpaca_data_replay", "--port", str(port), "--exit-when-done",
                         stdout=log, stderr=log)
        except CommandError as exc:
            if raised is None:
                raise
            raised.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return thread, port
