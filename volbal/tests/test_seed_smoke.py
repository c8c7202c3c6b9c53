"""The seed's curl smoke, step by step, against a real gunicorn in local mode."""

from __future__ import annotations

import pytest

from volbal.tests.live_server import call, live_server

pytestmark = pytest.mark.system


@pytest.mark.django_db
def test_seed_curl_smoke_against_a_real_server(tmp_path):
    with live_server(tmp_path) as base:
        assert call(base + "/healthz")[:2] == (200, {"status": "ok"})
        assert call(base + "/v1/healthz")[:2] == (200, {"status": "ok", "version": "v1"})

        # Create a position
        status, pos, _ = call(base + "/v1/positions", method="POST",
                              body={"ticker": "ZIM", "qty": 0, "cash": 10000})
        assert status == 201
        assert pos["ticker"] == "ZIM" and pos["qty"] == 0 and pos["cash"] == 10000
        pid = pos["id"]
        assert pid.startswith("pos_")

        # First submit -> 201 Created
        orders = f"{base}/v1/positions/{pid}/orders"
        status, first, _ = call(orders, method="POST", body={"side": "BUY", "qty": 1.5},
                                headers={"Idempotency-Key": "k1"})
        assert status == 201
        assert first["accepted"] is True and first["position_id"] == pid
        assert first["order_id"].startswith("ord_")

        # Replay same key+body -> 200 OK, same order_id
        status, again, headers = call(orders, method="POST", body={"side": "BUY", "qty": 1.5},
                                      headers={"Idempotency-Key": "k1"})
        assert status == 200
        assert again["order_id"] == first["order_id"]
        assert headers.get("Idempotent-Replayed") == "true"

        # Mismatch (same key, different body) -> 409 Conflict
        status, body, _ = call(orders, method="POST", body={"side": "SELL", "qty": 2.0},
                               headers={"Idempotency-Key": "k1"})
        assert status == 409
        assert body["detail"] == "idempotency_signature_mismatch"

        # See audit events
        status, events, _ = call(f"{base}/v1/positions/{pid}/events")
        assert status == 200 and events["position_id"] == pid
        assert [e["type"] for e in events["events"]] == ["position_created", "order_submitted"]
        assert events["events"][1]["order_id"] == first["order_id"]

        # The seed's fill flow on the same server
        status, filled, _ = call(f"{base}/v1/orders/{first['order_id']}/fill", method="POST",
                                 body={"price": 100, "filled_qty": 1.5, "commission": 1})
        assert status == 200
        assert filled["status"] == "filled"
        assert filled["position_qty"] == 1.5 and filled["position_cash"] == 10000 - 150 - 1
        status, body, _ = call(f"{base}/v1/positions/missing")
        assert status == 404 and body["detail"] == "position_not_found"
