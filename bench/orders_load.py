#!/usr/bin/env python3
"""Load benchmark of the orders rows of issue 24, each beside its floors measured in the same run.

    .venv/bin/python bench/orders_load.py [--seconds 5] [--connections 16] [--positions 200] [--json]

Self-contained and bounded: creates a scratch PostgreSQL database, migrates it, creates one
user with a DRF token and ``--positions`` positions (a high ``max_orders_per_day``: the daily
cap is not what is measured), starts gunicorn exactly as production does (gunicorn.conf.py, so
its worker count; ``DJANGO_DEBUG=0`` with a secret key, token authentication, the JSON request
log; only ``DJANGO_SECURE_SSL_REDIRECT=0`` since there is no TLS proxy here) with the settings
bench/floor_settings.py: the project's settings unchanged but for a URLconf
(bench/floor_urls.py) that adds the DRF floor's route to the product's. Then, each phase over
the same ``--connections`` concurrent keep-alive connections for ``--seconds``:

1. warm-up: a few hundred submissions, reads and floor requests, not measured;
2. submissions: ``POST /v1/positions/{id}/orders`` with a fresh ``Idempotency-Key`` each;
3. replays: the same requests again (same keys, same bodies);
4. reads: ``GET /v1/positions/{id}`` with the token (the authenticated read of one position),
   of ``--positions`` other positions whose ticker has a stored price (so each body carries a
   price, value and weight);
5. the DRF floor: ``GET /v1/bench/floor``, a trivial APIView with the project's default
   authentication (the same token), permission, negotiation and renderer classes, behind the
   same middleware (checked: its answer carries the same middleware headers as a read's).
   Reads and the floor run in alternating ``--slice`` second slices (``--seconds`` each in
   all), so a load that changes during the run weighs on both alike;
6. the SQL floor: pgbench, one client per connection (the same 16), prepared statements, on
   the same database, running the bare transaction one submission needs: insert the
   idempotency record, lock the position reading its latest known price (the ticker's newest
   stored price beside the position's last fill: the buy's cost) and whether its owner has a
   webhook endpoint, then under the lock the key's order, its orders today and what its open
   orders still commit (the checks that refuse an order that could never fill) in one
   statement, insert the order and its event, store the response.

Every answer's status is checked (201, 200 replayed, 200, 200). Prints requests per second,
p50 and p99 latency of each HTTP phase, the SQL floor's transactions per second, the stack
ceiling ``1 / (1/SQL + 1/DRF)`` and the issue's ratios: submissions / ceiling (target >= 0.7),
submission p99 (<= 50 ms), reads / DRF floor (>= 0.8); and replays / submissions (>= 2).
Load-independent figures for a shared machine: the CPU time per request of the gunicorn workers
(utime + stime from /proc of each worker, before and after each phase), of the database's
backends serving them (pg_stat_activity's client backends of the scratch database, the same
way) and of this load client. ``--json`` prints every figure as JSON too. The database is
dropped at the end (``--keep-db`` keeps it). The load goes to 127.0.0.1 only and each phase
stops at ``--seconds`` or ``--max-requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# --- the scratch database ------------------------------------------------------------------

@contextlib.contextmanager
def scratch_database(server_url: str, keep: bool, name: str | None = None):
    import psycopg

    name = name or f"volbal_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SETUP = """
import json
from decimal import Decimal
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from positions.services import position_create, prices_record
from volbal import clock

user = get_user_model().objects.create_user(username="bench", password=None)
token = Token.objects.create(user=user).key
ids = [position_create(owner=user, ticker="BNCH", qty=Decimal(1000), cash=Decimal(10) ** 9,
                       max_orders_per_day=100000).id for _ in range({n})]
# the reads': another ticker, with a stored price (their bodies carry a price, value and weight)
read_ids = [position_create(owner=user, ticker="BNRD", qty=Decimal(1000),
                            cash=Decimal(100000)).id for _ in range({n})]
prices_record(rows=[{{"ticker": "BNRD", "price": Decimal("123.45"), "ts": clock.now()}}])
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE bench_position (n integer PRIMARY KEY, id varchar(32))")
    cursor.executemany("INSERT INTO bench_position VALUES (%s, %s)",
                       list(enumerate(ids, start=1)))
print("BENCH" + json.dumps({{"token": token, "user_id": user.pk, "positions": ids,
                            "read_positions": read_ids,
                            "trading_day": clock.session_day().isoformat()}}))
"""


def prepare(database_url: str, positions: int) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "1"}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True,
                   timeout=600)
    out = subprocess.run([PYTHON, "manage.py", "shell", "-c", SETUP.format(n=positions)],
                         cwd=ROOT, env=env, check=True, timeout=600, capture_output=True,
                         text=True).stdout
    return json.loads(out[out.index("BENCH") + 5:])


# --- gunicorn as in production -------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_workers() -> int:
    return int(runpy.run_path(str(ROOT / "gunicorn.conf.py"))["workers"])


@contextlib.contextmanager
def gunicorn(database_url: str, log_path: Path, extra_env: dict):
    port = free_port()
    env = {
        **os.environ,
        # the project's settings with the DRF floor's route (bench/floor_settings.py)
        "DJANGO_SETTINGS_MODULE": "bench.floor_settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        **extra_env,
    }
    log = open(log_path, "w")
    proc = subprocess.Popen([PYTHON, "-m", "gunicorn", "volbal.wsgi:application"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-5000:])
            time.sleep(0.2)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- a small HTTP/1.1 client: asyncio, keep-alive, reconnects when the server closes -------

class Connection:
    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None
        self.connects = 0

    async def request(self, method: str, path: str, headers: dict, body: bytes):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.connects += 1
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
                f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:  # closed before answering: a keep-alive race; retry once
            await self.close()
            return await self.request(method, path, headers, body)
        status = int(status_line.split()[1])
        length, close, replayed = 0, False, False
        self.header_names = set()
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            self.header_names.add(name)
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.lower() == "close":
                close = True
            elif name == "idempotent-replayed":
                replayed = value == "true"
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, payload, replayed

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def drive(port: int, jobs, *, connections: int, seconds: float, max_requests: int,
                expect: int, expect_replayed: bool):
    """Run ``jobs`` (an iterator of (method, path, headers, body)) over ``connections`` concurrent
    connections until ``seconds`` pass or ``max_requests`` are sent; check every answer."""
    latencies: list[float] = []
    problems: dict[str, int] = {}
    done: list[tuple] = []
    pool = [Connection(port) for _ in range(connections)]
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection):
        while time.perf_counter() < deadline and len(latencies) < max_requests:
            try:
                job = next(jobs)
            except StopIteration:
                return
            started = time.perf_counter()
            status, payload, replayed = await conn.request(*job)
            latencies.append(time.perf_counter() - started)
            if status != expect or replayed != expect_replayed:
                key = f"{status} {payload[:120]!r}"
                problems[key] = problems.get(key, 0) + 1
            else:
                done.append(job)

    started = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in pool))
    elapsed = time.perf_counter() - started
    for conn in pool:
        await conn.close()
    return summary(latencies, elapsed, sum(conn.connects for conn in pool), problems, done)


def summary(latencies: list[float], elapsed: float, connects: int, problems: dict,
            done: list) -> dict:
    latencies = sorted(latencies)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "connects": connects,
        "problems": problems,
        "done": done,
        "latencies": latencies,
        "elapsed": elapsed,
    }


def submissions(info: dict, tag: str):
    headers = {"Content-Type": "application/json", "Authorization": f"Token {info['token']}"}
    positions = info["positions"]
    body = b'{"side":"BUY","qty":1}'
    i = 0
    while True:
        path = f"/v1/positions/{positions[i % len(positions)]}/orders"
        yield "POST", path, {**headers, "Idempotency-Key": f"bench-{tag}-{i}"}, body
        i += 1


def reads(info: dict):
    headers = {"Authorization": f"Token {info['token']}"}
    return cycle([("GET", f"/v1/positions/{pid}", headers, b"")
                  for pid in info["read_positions"]])


FLOOR_PATH = "/v1/bench/floor"  # bench/floor_urls.py


def drf_floor(info: dict):
    return cycle([("GET", FLOOR_PATH, {"Authorization": f"Token {info['token']}"}, b"")])


async def one(port: int, job) -> tuple[int, bytes, set]:
    conn = Connection(port)
    try:
        status, payload, _ = await conn.request(*job)
        return status, payload, conn.header_names
    finally:
        await conn.close()


def same_stack(port: int, info: dict) -> list[str]:
    """Problems, if the floor's answer did not pass the middleware a read's passes: the headers
    the middleware add (request id, security headers, Vary ...) must be the same set."""
    problems = []
    read_status, read_body, read_headers = asyncio.run(one(port, next(reads(info))))
    floor_status, floor_body, floor_headers = asyncio.run(one(port, next(drf_floor(info))))
    anonymous, _, _ = asyncio.run(one(port, ("GET", FLOOR_PATH, {}, b"")))
    if (read_status, floor_status, floor_body) != (200, 200, b'{"ok":true}') or \
            b'"price_source":"stored"' not in read_body:
        problems.append(f"read {read_status} {read_body[:80]!r}, floor {floor_status} "
                        f"{floor_body[:80]!r}")
    if anonymous != 401:
        problems.append(f"the floor without the token answered {anonymous}, not 401")
    if read_headers != floor_headers or "x-request-id" not in floor_headers:
        problems.append(f"headers differ: read {sorted(read_headers)}, floor "
                        f"{sorted(floor_headers)}")
    return problems


# --- CPU time of the server's processes (load-independent, unlike the rates) -----------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds the gunicorn workers, the database's client backends of the scratch database
    and this process spend in a phase. A process that appears during the phase counts from its
    start; one that ends during it loses what it spent (none do in a healthy run: the workers
    live, the database connections are persistent)."""

    def __init__(self, master_pid: int, database_url: str):
        import psycopg

        self.master_pid = master_pid
        self.conn = psycopg.connect(database_url, autocommit=True)

    def backends(self) -> list[int]:
        return [row[0] for row in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()")]

    def snapshot(self) -> dict:
        return {"workers": {p: cpu_seconds(p) for p in children(self.master_pid)},
                "db": {p: cpu_seconds(p) for p in self.backends()},
                "client": time.process_time()}

    @staticmethod
    def spent(before: dict, after: dict) -> float:
        return sum(v - (before.get(p) or 0.0) for p, v in after.items() if v is not None)

    def measure(self, phase):
        before = self.snapshot()
        result = phase()
        after = self.snapshot()
        result["cpu_s"] = {
            "workers": self.spent(before["workers"], after["workers"]),
            "db": self.spent(before["db"], after["db"]),
            "client": after["client"] - before["client"],
        }
        result["worker_pids"] = sorted(after["workers"])
        return per_request(result)

    def interleaved(self, phases: dict, seconds: float, slice_seconds: float) -> dict:
        """Run ``phases`` (name -> a function running that phase for the seconds it is given)
        in turn, ``slice_seconds`` each, until each has run ``seconds``; each phase's figures
        over all its slices. A load that changes during the run (a shared machine) weighs on
        every phase alike, so their ratio holds better than that of phases run one after the
        other."""
        slices: dict[str, list[dict]] = {name: [] for name in phases}
        left = seconds
        while left > 1e-9:
            length = min(slice_seconds, left)
            for name, phase in phases.items():
                slices[name].append(self.measure(lambda phase=phase, length=length: phase(length)))
            left -= length
        merged = {}
        for name, parts in slices.items():
            result = summary([x for p in parts for x in p["latencies"]],
                             sum(p["elapsed"] for p in parts), sum(p["connects"] for p in parts),
                             {}, [])
            for p in parts:
                for problem, count in p["problems"].items():
                    result["problems"][problem] = result["problems"].get(problem, 0) + count
            result["cpu_s"] = {k: sum(p["cpu_s"][k] for p in parts) for k in parts[0]["cpu_s"]}
            result["worker_pids"] = sorted({pid for p in parts for pid in p["worker_pids"]})
            result["slices"] = len(parts)
            merged[name] = per_request(result)
        return merged

    def close(self):
        self.conn.close()


def per_request(result: dict) -> dict:
    n = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {k: v * 1000 / n for k, v in result["cpu_s"].items()}
    return result


def cycle(items: list):
    while True:
        yield from items


# --- the SQL floor ---------------------------------------------------------------------------

# The event's INSERT takes the position's log lock first, as events.services.event_record does
# (the webhooks' cursor relies on it): the floor pays for it too.
POSITION_LOG_LOCK = 0x766F6C62

# pgbench reads ":name" as a variable even inside a string literal: the JSON below keeps a space
# after every colon, and its time is in ISO 8601's basic format (no colons).
FLOOR_SQL = """\
\\set n random(1, {positions})
BEGIN;
INSERT INTO orders_idempotencyrecord (identity, method, path, key, fingerprint, status_code, response_body, location, created_at, expires_at) VALUES ('user:{user_id}', 'POST', (SELECT '/v1/positions/' || id || '/orders' FROM bench_position WHERE n = :n), gen_random_uuid()::text, md5(random()::text) || md5(random()::text), NULL, NULL, '', now(), now() + interval '24 hours') RETURNING id AS record_id \\gset
SELECT p.*, (SELECT price FROM positions_price WHERE ticker = p.ticker ORDER BY ts DESC LIMIT 1) AS stored_price, (SELECT ts FROM positions_price WHERE ticker = p.ticker ORDER BY ts DESC LIMIT 1) AS stored_ts, EXISTS (SELECT 1 FROM events_webhookendpoint w WHERE w.owner_id = p.owner_id AND w.active) AS listens FROM positions_position p WHERE p.id = (SELECT id FROM bench_position WHERE n = :n) FOR UPDATE \\gset
SELECT (SELECT id FROM orders_order WHERE position_id = :id AND idempotency_key = 'bench-floor') AS existing, (SELECT COUNT(*) FROM orders_order WHERE position_id = :id AND trading_day = '{trading_day}') AS today, SUM(qty - filled_qty) FILTER (WHERE side = 'BUY') AS open_buy, SUM(qty - filled_qty) FILTER (WHERE side = 'SELL') AS open_sell FROM orders_order WHERE position_id = :id AND status IN ('submitted', 'partially_filled') \\gset
INSERT INTO orders_order (id, position_id, side, qty, filled_qty, avg_fill_price, commission_paid, status, idempotency_key, source, trading_day, broker, time_in_force, order_type, created_at, updated_at) VALUES ('ord_' || left(replace(gen_random_uuid()::text, '-', ''), 26), :id, 'BUY', 1, 0, NULL, 0, 'submitted', gen_random_uuid()::text, 'api', '{trading_day}', 'manual', 'gtc', 'market', now(), now()) RETURNING id AS order_id \\gset
INSERT INTO events_event (position_id, order_id, type, inputs, outputs, message, created_at, actor_source, actor_user_id, actor_name) SELECT :id, :order_id, 'order_submitted', '{{"side": "BUY", "qty": 1, "source": "api", "idempotency_key": "bench-floor-0000000"}}', '{{"order_id": "ord_01m86wgjhvqjf53mpdgye8vc8e", "status": "submitted", "trading_day": "{trading_day}", "orders_today": 1}}', 'Order ord_01m86wgjhvqjf53mpdgye8vc8e submitted: BUY 1 BNCH.', now(), 'api', {user_id}, 'bench' WHERE pg_advisory_xact_lock({log_lock}, hashtext(:id)) IS NOT NULL;
UPDATE orders_idempotencyrecord SET status_code = 201, response_body = convert_to('{{"order_id": "ord_01m86wgjhvqjf53mpdgye8vc8e", "accepted": true, "position_id": "pos_01m86wghzzs5wk5v5dmrwr922j", "side": "BUY", "qty": 1, "status": "submitted", "created_at": "20261124T133919.785552Z"}}', 'UTF8') WHERE id = :record_id;
COMMIT;
"""


def pgbench_path() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    if not candidates:
        raise SystemExit("pgbench not found (it comes with PostgreSQL)")
    return str(candidates[-1])


def floor(database_url: str, info: dict, *, clients: int, seconds: int) -> dict:
    script = Path(tempfile.mkdtemp()) / "submission.sql"
    script.write_text(FLOOR_SQL.format(positions=len(info["positions"]), user_id=info["user_id"],
                                       log_lock=POSITION_LOG_LOCK,
                                       trading_day=info["trading_day"]))
    result = subprocess.run(
        [pgbench_path(), "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
         "-T", str(seconds), "-f", str(script), database_url],
        capture_output=True, text=True, timeout=seconds + 120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    tps = float(re.search(r"tps = ([0-9.]+)", result.stdout).group(1))
    latency = float(re.search(r"latency average = ([0-9.]+) ms", result.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    return {"tps": tps, "latency_ms": latency, "failed": int(failed.group(1)) if failed else 0}


# --- the run ---------------------------------------------------------------------------------

def report_line(name: str, r: dict) -> str:
    return (f"{name:<12} {r['requests']:>7} req  {r['rps']:>8.1f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  connects {r['connects']}")


def cpu_line(name: str, r: dict) -> str:
    cpu = r["cpu_ms_per_request"]
    return (f"{name:<12} CPU per request: gunicorn workers {cpu['workers']:.3f} ms, database "
            f"backends {cpu['db']:.3f} ms, load client {cpu['client']:.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--max-requests", type=int, default=50000, help="cap per phase")
    parser.add_argument("--slice", type=float, default=1.0,
                        help="reads and the DRF floor alternate in slices of this many seconds")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (the scratch database is created there)")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for gunicorn (e.g. GUNICORN_WORKERS=3)")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    workers = int(extra_env.get("GUNICORN_WORKERS", production_workers()))
    print(f"gunicorn: {workers} workers (gunicorn.conf.py), DJANGO_DEBUG=0, token auth; "
          f"{args.connections} connections, {args.positions} positions, "
          f"{args.seconds} s per phase")
    with scratch_database(args.server, args.keep_db) as database_url:
        info = prepare(database_url, args.positions)
        log_path = Path(tempfile.mkdtemp()) / "gunicorn.log"
        with gunicorn(database_url, log_path, extra_env) as (port, proc):
            def run(jobs, seconds, **kw):
                return asyncio.run(drive(port, jobs, connections=args.connections,
                                         seconds=seconds, max_requests=args.max_requests,
                                         **kw))

            stack_problems = same_stack(port, info)
            run(submissions(info, "warm"), 2, expect=201, expect_replayed=False)
            run(reads(info), 1, expect=200, expect_replayed=False)
            run(drf_floor(info), 1, expect=200, expect_replayed=False)
            meter = CpuMeter(proc.pid, database_url)
            try:
                submit = meter.measure(lambda: run(submissions(info, "run"), args.seconds,
                                                   expect=201, expect_replayed=False))
                replay = meter.measure(lambda: run(cycle(submit["done"]), args.seconds,
                                                   expect=200, expect_replayed=True))
                # reads and the DRF floor in alternating slices: their ratio is the figure
                read_jobs, floor_jobs = reads(info), drf_floor(info)
                both = meter.interleaved({
                    "reads": lambda s: run(read_jobs, s, expect=200, expect_replayed=False),
                    "floor": lambda s: run(floor_jobs, s, expect=200, expect_replayed=False),
                }, args.seconds, args.slice)
                read, drf = both["reads"], both["floor"]
            finally:
                meter.close()
        pg = floor(database_url, info, clients=args.connections, seconds=args.seconds)

    phases = (("submissions", submit), ("replays", replay), ("reads", read), ("DRF floor", drf))
    for name, r in phases:
        print(report_line(name, r))
    print(f"{'SQL floor':<12} pgbench {args.connections} clients, prepared: {pg['tps']:.1f} tps,"
          f" latency {pg['latency_ms']:.2f} ms, failed {pg['failed']}")
    ceiling = 1 / (1 / pg["tps"] + 1 / drf["rps"])
    ratios = {
        "submissions_over_ceiling": submit["rps"] / ceiling,
        "submission_p99_ms": submit["p99_ms"],
        "reads_over_drf_floor": read["rps"] / drf["rps"],
        "replays_over_submissions": replay["rps"] / submit["rps"],
        "submissions_over_sql_floor": submit["rps"] / pg["tps"],
    }
    print(f"stack ceiling = 1/(1/SQL + 1/DRF) = {ceiling:.1f} req/s")
    print(f"submissions / ceiling  = {ratios['submissions_over_ceiling']:.2f}  (target >= 0.7)")
    print(f"submission p99         = {submit['p99_ms']:.1f} ms  (target <= 50)")
    print(f"reads / DRF floor      = {ratios['reads_over_drf_floor']:.2f}  (target >= 0.8)")
    print(f"replays / submissions  = {ratios['replays_over_submissions']:.2f}  (target >= 2)")
    print(f"submissions / SQL floor = {ratios['submissions_over_sql_floor']:.2f}")
    for name, r in phases:
        print(cpu_line(name, r))
    workers_seen = {tuple(r["worker_pids"]) for _, r in phases}
    if len(workers_seen) != 1:
        print(f"NOTE: the gunicorn workers changed between phases: {sorted(workers_seen)}")
    for problem in stack_problems:
        print(f"UNEXPECTED DRF floor: {problem}")
    for name, r in phases:
        for problem, count in r["problems"].items():
            print(f"UNEXPECTED in {name}: {count} x {problem}")
    if args.json:
        print(json.dumps({
            "workers": workers, "connections": args.connections, "seconds": args.seconds,
            **{key: {k: v for k, v in r.items()
                     if k not in ("done", "worker_pids", "latencies")}
               for key, r in (("submissions", submit), ("replays", replay), ("reads", read),
                              ("drf_floor", drf))},
            "floor": pg, "sql_floor": pg, "ceiling_rps": ceiling, **ratios,
            "drf_floor_problems": stack_problems,
        }))
    return 1 if stack_problems or any(r["problems"] for _, r in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
