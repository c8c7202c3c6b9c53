#!/usr/bin/env python3
"""Speed of the trade cycle (docs/brokers.md#speed), against the SQL floor measured in the same run.

    .venv/bin/python bench/trade_cycle.py [--positions 20000] [--batch 500] [--processes 4]
                                          [--no-single] [--no-workers] [--cold-bytecode]
                                          [--floor-seconds 10]
                                          [--database NAME]

Self-contained and bounded: a scratch PostgreSQL database (dropped at the end; ``--keep-db``
keeps it), migrated, with ``--positions`` positions in one ticker (50 shares, 5,000 cash, anchor
100). Each run of a phase starts ``--processes`` ``manage.py trade --quiet`` processes at once
on the database, with no exchange calendar (the hour of the run does not matter); they split
the positions between them (each claims batches with a lease and ``SKIP LOCKED``: what one
claimed, the others pass over). A run's rate is the positions they evaluated (the sum of their
summaries) over the wall time from the first start to the last exit: Python's and Django's
start-up count, as in production. Beside it, the processes' CPU time (user + system, this
script's children) per position: a figure the other load of a shared machine barely moves.

1. evaluate only: a new price 96 (a buy trigger for every position, auto_submit off: the
   proposals are recorded, nothing submitted);
2. with submission: auto_submit and the paper broker on, a new price 95.9: every position
   submits a buy and routes it;
3. the same as 1 after 10x the events already in the table were added (the rate should stay
   within 20 % of 1's); ``VACUUM ANALYZE`` after each bulk load, so no autovacuum races a phase;
4. the SQL floor: pgbench, one client, prepared statements, on the same database, running the
   bare writes one evaluation needs: lock the position, read the ticker's latest price, mark
   the price evaluated, insert the evaluation event; and the same writes for a whole batch.

Everything the processes import is compiled to bytecode once first, in a scratch directory,
as a deployed service has it (``--cold-bytecode``: not; see :func:`warm_bytecode`).

Unless ``--no-workers`` (or ``--processes 1``), each of phases 1-3 runs again as ONE
``manage.py trade --quiet --workers N`` (N: ``--processes``), at the prices 96.05, 95.85 (phase
2's orders closed first) and 95.75: its N workers are forked once Django is set up, so the
start-up is paid once, not N times; its rate and CPU (workers included) are printed beside the
separate processes', with each worker's claims.

Unless ``--no-single`` (or ``--processes 1``), phases 1 and 2 first run with ONE process too
(at the prices 96.1 and 95.95; the orders of 2's single run are then closed, unfilled, so the
positions stand as before), for the scale-out ratio.

Prints positions per second for 1-3, the floor's transactions per second and the ratios
(targets, ``--processes 4`` on 2 cores: >= 3,000/s evaluate-only, >= 2,500/s with submission).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders_load import PYTHON, ROOT, pgbench_path, scratch_database

SETUP = """
from decimal import Decimal as D
from django.contrib.auth import get_user_model
from positions.models import Position
user = get_user_model().objects.create_user(username="bench", password=None)
Position.objects.bulk_create([Position(owner=user, ticker="BNCH", qty=D(50), cash=D(5000),
    anchor_price=D(100), opening_qty=D(50), opening_cash=D(5000)) for _ in range({n})],
    batch_size=5000)
from django.db import connection
with connection.cursor() as c:
    c.execute("CREATE TABLE bench_position (n integer PRIMARY KEY, id varchar(32))")
    c.execute("INSERT INTO bench_position SELECT row_number() OVER (ORDER BY id), id "
              "FROM positions_position")
"""

PRICE = """
import datetime as dt
from decimal import Decimal as D
from django.utils import timezone
from positions.models import Position, Price
Price.objects.create(ticker="BNCH", price=D("{price}"), ts=timezone.now())
{extra}
"""

MORE_EVENTS = """
from django.db import connection
with connection.cursor() as c:
    c.execute("INSERT INTO events_event (position_id, order_id, type, inputs, outputs, message, "
              "created_at, actor_source, actor_user_id, actor_name) SELECT position_id, "
              "order_id, type, inputs, outputs, message, created_at, actor_source, "
              "actor_user_id, actor_name FROM events_event, generate_series(1, 10)")
"""

# Phase 2's paper orders closed (not filled): the positions stand as before it.
CLOSE_ORDERS = """
from orders.models import Order
Order.objects.update(status="cancelled")
"""

# Back to phase 1's work: phase 2's paper orders closed (not filled), submission off.
RESET = CLOSE_ORDERS + """
Position.objects.update(auto_submit=False, broker="manual")
"""

FLOOR_SQL = """\
\\set n random(1, {positions})
BEGIN;
SELECT id AS pid FROM bench_position WHERE n = :n \\gset
SELECT p.* FROM positions_position p WHERE p.id = :pid FOR UPDATE;
SELECT ts FROM positions_price WHERE ticker = 'BNCH' ORDER BY ts DESC LIMIT 1 \\gset
UPDATE positions_position SET evaluated_price_ts = :ts, cycle_lease_until = NULL, updated_at = now() WHERE id = :pid;
INSERT INTO events_event (position_id, order_id, type, inputs, outputs, message, created_at, actor_source, actor_name) VALUES (:pid, NULL, 'evaluation', '{{"price": 96, "price_source": "latest", "submit": false, "source": "cron"}}', '{{"reason": "buy_trigger", "proposals": []}}', 'Price 96.00 is 4.0 % below anchor 100.00 (trigger 3 %): buy 5.2 shares', now(), 'cron', 'command' || ':' || 'trade');
COMMIT;
"""


# The same writes for a whole batch, as the cycle does them: lock the batch's positions, mark
# them evaluated with one statement, insert their evaluation events with one statement.
FLOOR_BATCH_SQL = """\
\\set n random(1, {last})
\\set m :n + {batch} - 1
BEGIN;
SELECT p.* FROM positions_position p JOIN bench_position b ON b.id = p.id WHERE b.n BETWEEN :n AND :m ORDER BY p.id FOR UPDATE OF p;
SELECT ts FROM positions_price WHERE ticker = 'BNCH' ORDER BY ts DESC LIMIT 1 \\gset
UPDATE positions_position p SET evaluated_price_ts = :ts, cycle_lease_until = NULL, updated_at = now() FROM bench_position b WHERE b.id = p.id AND b.n BETWEEN :n AND :m;
INSERT INTO events_event (position_id, order_id, type, inputs, outputs, message, created_at, actor_source, actor_name) SELECT b.id, NULL, 'evaluation', '{{"price": 96, "price_source": "latest", "submit": false, "source": "cron"}}', '{{"reason": "buy_trigger", "proposals": []}}', 'Price 96.00 is 4.0 % below anchor 100.00 (trigger 3 %): buy 5.2 shares', now(), 'cron', 'command' || ':' || 'trade' FROM bench_position b WHERE b.n BETWEEN :n AND :m;
COMMIT;
"""


def shell(env: dict, code: str) -> str:
    return subprocess.run([PYTHON, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                          check=True, timeout=1800, capture_output=True, text=True).stdout


def vacuum(url: str) -> None:
    """VACUUM ANALYZE and a CHECKPOINT, as after any bulk load: the phases then measure the
    cycle, not an autovacuum of the rows just added, nor the checkpoint writing them out (the
    10x events are ~2 M rows: the checkpoint their WAL sets off ran through phase 3's first
    run), racing it for the two cores and the disk."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


@dataclass
class Run:
    evaluated: int  # the sum of the processes' summaries
    wall: float  # seconds, from the first start to the last exit
    cpu: float  # seconds of user + system time of the processes

    @property
    def rate(self) -> float:
        return self.evaluated / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / max(1, self.evaluated)


def cycle(env: dict, batch: int, processes: int, workers: int = 0) -> Run:
    """``processes`` ``manage.py trade`` runs started at once, or (``workers``) one
    ``manage.py trade --workers N``: their positions evaluated, the wall time from the first
    start to the last exit, and their CPU time (a command's forked workers included)."""
    command = [PYTHON, "manage.py", "trade", "--quiet", "--batch", str(batch)]
    if workers:
        command += ["--workers", str(workers)]
        processes = 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    outputs = [p.communicate(timeout=3600) for p in procs]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    evaluated, claimed = 0, []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"manage.py trade exited {proc.returncode}:\n{out}\n{err}")
        line = out.strip().splitlines()[-1]
        print("   ", line)
        evaluated += int(re.search(r"(\d+) evaluated", line).group(1))
        each = re.search(r"workers, claims ([\d+]+)\.", line)  # --workers: each worker's
        claimed += ([int(c) for c in each.group(1).split("+")] if each else
                    [int(re.search(r"(\d+) claimed", line).group(1))])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = Run(evaluated, wall, cpu)
    # a position claimed by two processes would count twice: the claims must add up to the
    # positions evaluated (each evaluated once, by the one process that claimed it)
    how = f"1 process, --workers {workers}" if workers else f"{processes} process(es)"
    print(f"    {how}: {evaluated} evaluated in {wall:.2f} s wall "
          f"= {run.rate:.1f}/s; {run.cpu_ms:.3f} ms CPU per position; claims "
          f"{'+'.join(map(str, claimed))} = {sum(claimed)}"
          + ("" if sum(claimed) == evaluated else "  (CLAIMS != EVALUATED)"))
    return run


def warm_bytecode(env: dict) -> dict:
    """The environment with the bytecode of everything ``manage.py trade`` imports compiled
    once, in a scratch directory (``PYTHONPYCACHEPREFIX``; the tree is not written to), as a
    deployed service has it. Where ``PYTHONDONTWRITEBYTECODE`` is set (in some sandboxes and
    CI images), every process would otherwise compile the project's modules again at each
    start: about 0.4 s of CPU per process, which the cycle's processes would pay each run."""
    warm = {**env, "PYTHONPYCACHEPREFIX": tempfile.mkdtemp(prefix="volbal_bench_pyc_")}
    warm.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([PYTHON, "-c", "import os, django; "
                    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'volbal.settings'); "
                    "django.setup(); import positions.management.commands.trade"],
                   cwd=ROOT, env=warm, check=True, timeout=600)
    print(f"bytecode compiled once in {warm['PYTHONPYCACHEPREFIX']} (--cold-bytecode: not)")
    if "PYTHONDONTWRITEBYTECODE" in env:
        warm["PYTHONDONTWRITEBYTECODE"] = env["PYTHONDONTWRITEBYTECODE"]
    return warm


def floor(database_url: str, positions: int, seconds: int, batch: int = 0) -> float:
    """pgbench's transactions per second: one evaluation's writes, or (``batch``) a batch's."""
    script = Path(tempfile.mkdtemp()) / "evaluation.sql"
    script.write_text(FLOOR_BATCH_SQL.format(last=max(1, positions - batch + 1), batch=batch)
                      if batch else FLOOR_SQL.format(positions=positions))
    result = subprocess.run([pgbench_path(), "-n", "-M", "prepared", "-c", "1", "-T",
                             str(seconds), "-f", str(script), database_url],
                            capture_output=True, text=True, timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return float(re.search(r"tps = ([0-9.]+)", result.stdout).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--processes", type=int, default=4,
                        help="manage.py trade processes started at once per run (default 4).")
    parser.add_argument("--no-single", action="store_true",
                        help="Skip the one-process runs of phases 1 and 2.")
    parser.add_argument("--no-workers", action="store_true",
                        help="Skip the runs of one manage.py trade --workers N (N: --processes).")
    parser.add_argument("--cold-bytecode", action="store_true",
                        help="Do not compile the bytecode once first (see warm_bytecode).")
    parser.add_argument("--floor-seconds", type=int, default=10)
    parser.add_argument("--server", default=os.environ.get(
        "BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--database", default=None,
                        help="Name of the scratch database (created, then dropped; default: a "
                             "random volbal_bench_ name).")
    args = parser.parse_args()
    if (not 1 <= args.positions <= 1_000_000 or not 1 <= args.floor_seconds <= 600
            or not 1 <= args.processes <= 64):
        raise SystemExit("--positions 1..1000000, --floor-seconds 1..600, --processes 1..64")
    n = args.processes
    single = n > 1 and not args.no_single
    workers = n > 1 and not args.no_workers
    with scratch_database(args.server, args.keep_db, args.database) as url:
        # as in production: DEBUG off (DEBUG keeps every statement's text in memory)
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "0", "VOLBAL_CALENDAR": "",
               "DJANGO_SECRET_KEY": "bench-trade-cycle-not-a-secret-0123456789abcdef"}
        if not args.cold_bytecode:
            env = warm_bytecode(env)
        subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True,
                       timeout=600)
        shell(env, SETUP.format(n=args.positions))
        vacuum(url)
        runs: dict[str, Run] = {}
        print(f"{args.positions} positions, batches of {args.batch}, {n} process(es) at once")
        print("1. evaluate only")
        if single:
            shell(env, PRICE.format(price="96.1", extra=""))
            runs["evaluate_1"] = cycle(env, args.batch, 1)
        shell(env, PRICE.format(price="96", extra=""))
        runs["evaluate"] = cycle(env, args.batch, n)
        if workers:
            shell(env, PRICE.format(price="96.05", extra=""))
            runs["evaluate_w"] = cycle(env, args.batch, n, workers=n)
        print("2. with submission (auto_submit, paper broker)")
        submission = "Position.objects.update(auto_submit=True, broker='paper')"
        if single:
            shell(env, PRICE.format(price="95.95", extra=submission))
            runs["submit_1"] = cycle(env, args.batch, 1)
            submission = CLOSE_ORDERS
        shell(env, PRICE.format(price="95.9", extra=submission))
        runs["submit"] = cycle(env, args.batch, n)
        if workers:
            shell(env, PRICE.format(price="95.85", extra=CLOSE_ORDERS))
            runs["submit_w"] = cycle(env, args.batch, n, workers=n)
        print("3. evaluate only, after 10x the events")
        shell(env, MORE_EVENTS + PRICE.format(price="95.8", extra=RESET))
        vacuum(url)
        runs["evaluate_10x"] = cycle(env, args.batch, n)
        if workers:
            shell(env, PRICE.format(price="95.75", extra=""))
            runs["evaluate_10x_w"] = cycle(env, args.batch, n, workers=n)
        tps = floor(url, args.positions, args.floor_seconds)
        batch_tps = floor(url, args.positions, args.floor_seconds, batch=args.batch)
        load = os.getloadavg()
    if "PYTHONPYCACHEPREFIX" in env and "PYTHONPYCACHEPREFIX" not in os.environ:
        shutil.rmtree(env["PYTHONPYCACHEPREFIX"], ignore_errors=True)

    def row(title: str, key: str, target: str) -> None:
        r = runs[key]
        print(f"{title:<21}{r.rate:9.1f} positions/s  {r.cpu_ms:6.3f} ms CPU/position  {target}")

    def phases(heading: str, suffix: str) -> None:
        """The three phases' rates of one way of running them (``suffix`` of their runs)."""
        print(heading)
        row("evaluate only", f"evaluate{suffix}", "(target >= 3000)")
        row("with submission", f"submit{suffix}", "(target >= 2500)")
        flat = runs[f"evaluate_10x{suffix}"].rate / runs[f"evaluate{suffix}"].rate
        row("after 10x events", f"evaluate_10x{suffix}",
            f"({flat:.2f} x the first; target within 20 %)")

    phases(f"{n} process(es) at once, wall from the first start to the last exit:", "")
    if workers:
        phases(f"1 process, manage.py trade --workers {n} (start-up paid once, then forked):",
               "_w")
    if single:
        print("1 process:")
        row("evaluate only", "evaluate_1",
            f"({runs['evaluate'].rate / runs['evaluate_1'].rate:.2f} x with {n})")
        row("with submission", "submit_1",
            f"({runs['submit'].rate / runs['submit_1'].rate:.2f} x with {n})")
    print(f"SQL floor (pgbench)  {tps:9.1f} tps, 1 client, the bare writes of one evaluation")
    print(f"SQL floor, batched   {batch_tps * args.batch:9.1f} positions/s ({batch_tps:.2f} tps of "
          f"{args.batch}: the same writes as one statement per batch, as the cycle does them)")
    rate = runs["evaluate"].rate
    print(f"evaluate only / floor: {rate / tps:.2f} of the per-position floor, "
          f"{rate / (batch_tps * args.batch):.2f} of the batched floor")
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
