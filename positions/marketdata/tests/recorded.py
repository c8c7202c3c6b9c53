"""Recorded exchanges with Alpaca's market-data API (``exchanges/*.json``) served by a real
HTTP server on 127.0.0.1 (pytest-httpserver's ``httpserver``), which checks every request the
SDK sends: method, path, the whole query, and the two auth headers. Nothing reaches Alpaca.

A recording is ``{"description", "source", "exchanges": [{"request", "response"}]}``, in the
order the requests must come: a request is ``{"method", "path", "query"}`` (every parameter,
nothing more); a response ``{"status", "headers"?, "body"}`` (JSON, written as recorded: Python
prints a JSON number read from the file with the same digits) or ``{"status", "text"}`` (a raw
body, e.g. a proxy's page).
"""

from __future__ import annotations

import json
from pathlib import Path

EXCHANGES = Path(__file__).parent / "exchanges"
KEY_ID, SECRET = "PKTEST0000MARKETDATA", "replay-secret-never-shown"


def expect(httpserver, name: str, directory: Path = EXCHANGES) -> None:
    """Make ``httpserver`` answer the recording ``name`` (in ``directory``), request by
    request, in order."""
    recording = json.loads((Path(directory) / f"{name}.json").read_text())
    for exchange in recording["exchanges"]:
        want, answer = exchange["request"], exchange["response"]
        handler = httpserver.expect_ordered_request(
            want["path"], method=want["method"], query_string=want.get("query", {}),
            headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET})
        if "body" in answer:
            handler.respond_with_data(json.dumps(answer["body"]), answer["status"],
                                      answer.get("headers"), content_type="application/json")
        else:
            handler.respond_with_data(answer.get("text", ""), answer["status"],
                                      answer.get("headers"), content_type="text/html")


def check(httpserver) -> None:
    """Every request came as recorded, and every recorded exchange was asked for."""
    httpserver.check_assertions()
    assert not httpserver.ordered_handlers, (
        f"{len(httpserver.ordered_handlers)} recorded exchanges never asked for")
