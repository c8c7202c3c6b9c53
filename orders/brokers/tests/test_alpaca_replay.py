"""The Alpaca replay server checks what the SDK sends: a request that differs from the recording
in its method, path, query, body or credentials fails the test, as does a recording never asked
for; ``~regex`` values match what they describe."""

from __future__ import annotations

import pytest
import requests

from orders.brokers.tests.alpaca_replay import KEY_ID, SECRET, Replay

AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}
RECORDING = [
    {"request": {"method": "POST", "path": "/v2/orders",
                 "body": {"symbol": "ZIM", "qty": "10", "at": "~\\d{4}-\\d\\d-\\d\\d"}},
     "response": {"status": 200, "body": {"id": "a1"}}},
    {"request": {"method": "GET", "path": "/v2/orders/a1", "query": {"nested": "false"}},
     "response": {"status": 200, "body": {"id": "a1", "status": "new"}}},
]


@pytest.fixture
def replay():
    server = Replay()
    server.expect(RECORDING)
    yield server
    server.close()


def post(replay, body, headers=AUTH):
    return requests.post(f"{replay.url}/v2/orders", json=body, headers=headers, timeout=5)


def get(replay, query="nested=false", headers=AUTH):
    return requests.get(f"{replay.url}/v2/orders/a1?{query}", headers=headers, timeout=5)


def test_the_recorded_requests_get_the_recorded_answers(replay):
    first = post(replay, {"symbol": "ZIM", "qty": "10", "at": "2024-03-01"})
    assert (first.status_code, first.json()) == (200, {"id": "a1"})
    assert get(replay).json()["status"] == "new"
    replay.check()
    assert [(r["method"], r["path"]) for r in replay.requests] == [
        ("POST", "/v2/orders"), ("GET", "/v2/orders/a1")]


@pytest.mark.parametrize("wrong", ["body", "pattern", "credentials", "query", "unrecorded"])
def test_a_request_unlike_the_recording_fails(replay, wrong):
    good = {"symbol": "ZIM", "qty": "10", "at": "2024-03-01"}
    if wrong == "body":
        post(replay, {**good, "qty": "11"})
    elif wrong == "pattern":
        post(replay, {**good, "at": "yesterday"})
    elif wrong == "credentials":
        post(replay, good, headers={**AUTH, "APCA-API-SECRET-KEY": "other"})
    else:
        post(replay, good)
        if wrong == "query":
            get(replay, query="nested=true")
        else:
            get(replay)
            requests.delete(f"{replay.url}/v2/orders/a1", headers=AUTH, timeout=5)
    with pytest.raises(AssertionError):
        replay.check()


def test_a_recording_never_asked_for_fails(replay):
    post(replay, {"symbol": "ZIM", "qty": "10", "at": "2024-03-01"})
    with pytest.raises(AssertionError, match="1 recorded exchanges never asked for"):
        replay.check()


def test_a_dropped_connection_reaches_the_client_unanswered():
    server = Replay()
    try:
        server.expect([{"request": {"method": "GET", "path": "/v2/clock"},
                        "response": {"drop": True}}])
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/v2/clock", headers=AUTH, timeout=5)
        server.check()
    finally:
        server.close()
