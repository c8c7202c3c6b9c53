"""The attack of docs/operations.md#production, as a separate process (so its threads do not share
the measuring process's interpreter): ``SLOW`` connections trickling a request's headers one line
every few seconds (reconnecting when the server drops them), and ``FLOODERS`` clients each looping
the largest allowed backtest (100,000 bars) as fast as the server answers.

``python -m volbal.tests.attack HOST:PORT SECONDS TOKEN[,TOKEN...]`` prints one JSON line: the
flooders' statuses, how many 429s carried Retry-After, and how often the slow connections were
dropped by the server."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import sys
import threading
import time
from collections import Counter

SLOW = 64
LINE_EVERY = 2.0  # seconds between two header lines of a slow connection
BARS = 100_000


def largest_backtest() -> bytes:
    t0 = dt.datetime(2020, 1, 1, 9, 30)
    return json.dumps({"prices": [
        {"ts": (t0 + dt.timedelta(minutes=i)).isoformat(), "price": 100 + i % 7}
        for i in range(BARS)]}).encode()


def slow_client(host: str, port: int, stop: float, dropped: Counter) -> None:
    while time.monotonic() < stop:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                n = 0
                while time.monotonic() < stop:
                    time.sleep(LINE_EVERY)
                    sock.sendall(b"X-Slow-%d: a\r\n" % n)
                    n += 1
        except OSError:
            dropped["dropped"] += 1
            time.sleep(0.2)


def flooder(host: str, port: int, token: str, body: bytes, stop: float, seen: Counter) -> None:
    while time.monotonic() < stop:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.request("POST", "/v1/backtests", body=body, headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            seen[str(response.status)] += 1
            if response.status == 429:
                if response.getheader("Retry-After", "").isdigit():
                    seen["429_with_retry_after"] += 1
                time.sleep(0.05)  # a flood, not a spin of this process's CPU
        except (OSError, http.client.HTTPException) as exc:
            seen[type(exc).__name__] += 1
            time.sleep(0.05)
        finally:
            conn.close()


def main(target: str, seconds: float, tokens: list[str]) -> dict:
    host, port = target.split(":")
    stop = time.monotonic() + seconds
    body = largest_backtest()
    seen, dropped = Counter(), Counter()
    threads = [threading.Thread(target=slow_client, args=(host, int(port), stop, dropped))
               for _ in range(SLOW)]
    threads += [threading.Thread(target=flooder, args=(host, int(port), t, body, stop, seen))
                for t in tokens]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop - time.monotonic()) + 65)
    return {"flood": dict(seen), "slow_dropped": dropped["dropped"]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]), sys.argv[3].split(","))), flush=True)
