"""Crash safety: orders and fills under load while gunicorn workers die by SIGKILL mid-flight.

A real gunicorn (several workers) on a scratch PostgreSQL database. Client threads submit orders
(each with its own Idempotency-Key) and fill them in one or two parts (each fill with its own
key); a killer thread SIGKILLs a busy worker several times. A client whose request dies with its
worker retries the same request with the same key until it gets an answer, as a real client
would. A killed worker's transaction is rolled back by PostgreSQL, so afterwards:

- the orders are exactly the ones the clients were told of, one per key, none twice;
- every order has its stored idempotency record (with the response that named it) and its
  ``order_submitted`` event; every fill its fill event and its record; no record was left
  without its response;
- each position's shares and cash are what the clients' acknowledged fills add up to, computed
  here from the answers alone, and ``manage.py verify_ledger`` agrees.

Quantities (8 places), prices and commissions (6 places) are fractional, so fills round cash:
the ledger check must replay that rounding exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import ROUND_DOWN, Decimal
from http.client import HTTPException
from pathlib import Path

import pytest

from volbal.tests.live_server import ROOT, call, live_server

pytestmark = pytest.mark.system

WORKERS = 3
CLIENTS = 8
KILLS = 6
POSITIONS = 4
OPENING_QTY = Decimal("1000")
OPENING_CASH = Decimal("1000000")
QTY_PLACES = Decimal("0.00000001")
LOAD_SECONDS = float(os.environ.get("VOLBAL_CRASH_SECONDS", "12"))


def workers_of(master: int) -> list[int]:
    """The live children of the gunicorn master (its workers), from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master and fields[0] != "Z":  # fields: state, ppid, ...
            children.append(int(entry.name))
    return children


class Client:
    """One client thread's view: what the server acknowledged, and how often a request died."""

    def __init__(self, base: str, deadline: float):
        self.base = base
        self.deadline = deadline
        self.interrupted = 0
        self.orders: dict[str, dict] = {}  # order_id -> {"key", "position", "side", "fills"}

    def until_answered(self, path: str, body: dict, key: str, ok: tuple[int, ...]):
        """POST with the key until the server answers; a dead worker or a key still held by a
        rolled-back twin is retried with the same key, exactly like a careful client."""
        give_up = time.monotonic() + 60
        while True:
            try:
                status, payload, _ = call(self.base + path, method="POST", body=body,
                                          headers={"Idempotency-Key": key})
            except (OSError, HTTPException):
                status, payload = None, None
                self.interrupted += 1
            if status in ok:
                return status, payload
            if status is not None and payload and payload.get("detail") != "idempotency_conflict":
                raise AssertionError(f"POST {path} {body} answered {status} {payload}")
            assert time.monotonic() < give_up, f"POST {path} never answered"
            time.sleep(0.05)

    def run(self, positions: list[str], rng: random.Random, tag: str) -> None:
        i = 0
        while time.monotonic() < self.deadline:
            position = rng.choice(positions)
            side = rng.choice(("BUY", "SELL"))
            qty = Decimal(rng.randint(2, 3 * 10**8)).scaleb(-8)  # fractional, 8 places
            key = f"{tag}-{i}"
            status, payload = self.until_answered(
                f"/v1/positions/{position}/orders", {"side": side, "qty": float(qty)}, key,
                ok=(200, 201))
            order_id = payload["order_id"]
            assert order_id not in self.orders, "two keys answered one order"
            record = {"key": key, "position": position, "side": side, "qty": qty, "fills": []}
            self.orders[order_id] = record
            half = (qty / 2).quantize(QTY_PLACES, ROUND_DOWN)
            parts = [qty] if rng.random() < 0.5 else [half, qty - half]
            for n, part in enumerate(parts):
                price = Decimal(rng.randint(90 * 10**6, 110 * 10**6)).scaleb(-6)  # 6 places
                commission = Decimal(rng.randint(0, 20_000)).scaleb(-6)
                # A float's repr is the shortest text that reads back as it: these exact
                # decimals (at most 10 significant digits) reach the server unchanged.
                _, fill = self.until_answered(
                    f"/v1/orders/{order_id}/fill",
                    {"price": float(price), "filled_qty": float(part),
                     "commission": float(commission)},
                    f"{key}-fill-{n}", ok=(200,))
                assert fill["order_id"] == order_id
                record["fills"].append((part, price, commission))
            i += 1


def shell_json(env: dict, code: str):
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


AUDIT = """
import json
from django.db.models import Count
from events.models import Event
from orders.models import Fill, IdempotencyRecord, Order
from positions.models import Position

records = {(r.path, r.key): r for r in IdempotencyRecord.objects.all()}
out = {
    "positions": {p.id: [str(p.qty), str(p.cash)] for p in Position.objects.all()},
    "orders": {},
    "records_without_response": IdempotencyRecord.objects.filter(status_code=None).count(),
    "fills": Fill.objects.count(),
}
events = {}
for order_id, kind, n in Event.objects.exclude(order_id=None).values_list(
        "order_id", "type").annotate(n=Count("id")):
    events.setdefault(order_id, {})[kind] = n
for o in Order.objects.all():
    record = records.get((f"/v1/positions/{o.position_id}/orders", o.idempotency_key))
    fills = list(o.fills.order_by("created_at"))
    fill_records = [k for (path, k) in records if path == f"/v1/orders/{o.id}/fill"]
    out["orders"][o.id] = {
        "key": o.idempotency_key,
        "position": o.position_id,
        "record_names_it": bool(record and record.status_code == 201
                                and json.loads(bytes(record.response_body))["order_id"] == o.id),
        "events": events.get(o.id, {}),
        "fills": len(fills),
        "fill_records": len(fill_records),
        "filled_qty": str(o.filled_qty),
    }
print(json.dumps(out))
"""


@pytest.mark.postgres
@pytest.mark.django_db
def test_sigkilled_workers_leave_nothing_half_written(tmp_path):
    server_env: dict = {}
    pidfile = tmp_path / "gunicorn.pid"
    with live_server(tmp_path, workers=WORKERS, pidfile=pidfile,
                     before_start=server_env.update) as base:
        positions = []
        for _ in range(POSITIONS):
            status, body, _ = call(base + "/v1/positions", method="POST", body={
                "ticker": "CRSH", "qty": float(OPENING_QTY), "cash": float(OPENING_CASH),
                "max_orders_per_day": 100000})
            assert status == 201, body
            positions.append(body["id"])
        master = int(pidfile.read_text())

        deadline = time.monotonic() + LOAD_SECONDS
        clients = [Client(base, deadline) for _ in range(CLIENTS)]
        failures: list[BaseException] = []

        def drive(n: int) -> None:
            try:
                clients[n].run(positions, random.Random(n), f"crash-{n}")
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=drive, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        killed = []
        rng = random.Random(7)
        start = time.monotonic()
        for k in range(KILLS):
            # Spread the kills over the load, leaving the last stretch for recovery.
            time.sleep(max(0.0, start + (k + 1) * LOAD_SECONDS * 0.8 / (KILLS + 1)
                           - time.monotonic()))
            alive = workers_of(master)
            if alive:
                victim = rng.choice(alive)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        for thread in threads:
            thread.join(timeout=LOAD_SECONDS + 180)
        assert not failures, failures
        assert len(killed) == KILLS
        interrupted = sum(c.interrupted for c in clients)
        assert interrupted >= 1, "no request was in flight when a worker died"
        assert len(workers_of(master)) == WORKERS  # gunicorn replaced every killed worker

        audit = shell_json(server_env, AUDIT)
        ledger = subprocess.run([sys.executable, "manage.py", "verify_ledger"], cwd=ROOT,
                                env=server_env, capture_output=True, text=True, timeout=120)

    told = {order_id: o for c in clients for order_id, o in c.orders.items()}
    print(f"crash test: {len(told)} orders, {sum(len(o['fills']) for o in told.values())} fills, "
          f"{len(killed)} workers killed, {interrupted} requests cut off and retried")
    assert len(told) >= 50, "too little load to prove anything"

    # Exactly the orders the clients were told of, each under its own key.
    assert set(audit["orders"]) == set(told)
    for order_id, stored in audit["orders"].items():
        mine = told[order_id]
        assert (stored["key"], stored["position"]) == (mine["key"], mine["position"])
        assert stored["record_names_it"], order_id
        assert stored["events"].get("order_submitted") == 1, (order_id, stored["events"])
        fill_events = (stored["events"].get("order_filled", 0)
                       + stored["events"].get("order_partially_filled", 0))
        assert stored["fills"] == fill_events == stored["fill_records"] == len(mine["fills"])
        assert Decimal(stored["filled_qty"]) == mine["qty"]
    assert audit["fills"] == sum(len(o["fills"]) for o in told.values())
    assert audit["records_without_response"] == 0

    # Balances: what the acknowledged fills add up to, computed from the answers alone. Shares
    # add up exactly; cash is stored to 6 places after each fill, so it may differ from the
    # exact sum by half a millionth per fill (verify_ledger checks the rounding exactly).
    expected = {p: [OPENING_QTY, OPENING_CASH, 0] for p in positions}
    for o in told.values():
        sign = 1 if o["side"] == "BUY" else -1
        for qty, price, commission in o["fills"]:
            expected[o["position"]][0] += sign * qty
            expected[o["position"]][1] -= sign * qty * price + commission
            expected[o["position"]][2] += 1
    assert set(audit["positions"]) == set(expected)
    for p, (q, c) in audit["positions"].items():
        want_qty, want_cash, n_fills = expected[p]
        assert Decimal(q) == want_qty
        assert abs(Decimal(c) - want_cash) <= n_fills * Decimal("0.0000005"), (p, c, want_cash)
    assert any(Decimal(c) != expected[p][1] for p, (_, c) in audit["positions"].items()), \
        "no fill needed rounding: the ledger check was not put to the test"

    assert ledger.returncode == 0, ledger.stdout + ledger.stderr
    assert "ledger ok" in ledger.stdout
