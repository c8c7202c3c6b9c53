"""``manage.py trade --workers N``: one command whose N forked processes split a cycle as N
separate ``manage.py trade`` processes would (test_trade_scale_out.py), on PostgreSQL: each
position evaluated exactly once, no order submitted twice, every worker's cycle stored, and the
one summary line the sum of theirs."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count
from django.utils import timezone

from events.models import Event
from orders.models import Order
from positions.models import Position, Price, TradeCycle

D = Decimal
N = 600


def trade(*args: str) -> subprocess.CompletedProcess:
    db = settings.DATABASES["default"]
    env = {**os.environ, "VOLBAL_CALENDAR": "",  # trade whatever the hour of the run
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                           f"{db['PORT'] or 5432}/{db['NAME']}"}
    return subprocess.run([sys.executable, "manage.py", "trade", *args], cwd=settings.BASE_DIR,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.system
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluate_each_position_once_and_sum_their_summaries(user):
    Position.objects.bulk_create(
        [Position(owner=user, ticker="ZIM", qty=D(50), cash=D(5000), anchor_price=D(100),
                  opening_qty=D(50), opening_cash=D(5000), broker="paper", auto_submit=True)
         for _ in range(N)])
    new = Price.objects.create(ticker="ZIM", price=D(96),
                               ts=timezone.now() - dt.timedelta(minutes=1))

    done = trade("--quiet", "--workers", "2", "--batch", "50")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, lines  # --quiet: the one summary line, no worker's own
    summary = lines[0]
    assert summary.startswith("Cycle (no calendar: always in session): "), summary
    cycles = list(TradeCycle.objects.all())
    assert len(cycles) == 2 and len({c.worker for c in cycles}) == 2  # each worker's own row
    claims = sorted(c.positions_claimed for c in cycles)
    assert sum(claims) == N and sum(c.evaluated for c in cycles) == N
    assert sum(c.submitted for c in cycles) == N and sum(c.errors for c in cycles) == 0
    for name in ("claimed", "evaluated", "proposals", "submitted", "routed"):
        assert f" {N} {name}" in summary, (name, summary)
    assert " 0 errors" in summary
    said = re.search(r" 2 workers, claims (\d+)\+(\d+)\.", summary)
    assert said and sorted(map(int, said.groups())) == claims, summary
    per_position = Event.objects.filter(type="evaluation").values("position_id").annotate(
        n=Count("id"))
    assert len(per_position) == N and {row["n"] for row in per_position} == {1}
    assert Position.objects.filter(evaluated_price_ts=new.ts,
                                   cycle_lease_until__isnull=True).count() == N
    orders = Order.objects.values("position_id").annotate(n=Count("id"))
    assert len(orders) == N and {row["n"] for row in orders} == {1}
    assert Order.objects.filter(routed_at__isnull=True).count() == 0

    # a second run finds nothing due: each worker's summary says so, and so does the sum
    again = trade("--workers", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert " 0 claimed, 0 evaluated," in again.stdout and "claims 0+0." in again.stdout
    assert TradeCycle.objects.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("args", [("--workers", "0"), ("--workers", "65"),
                                  ("--workers", "2", "--schedule", "60"),
                                  ("--workers", "2", "--unschedule")])
def test_workers_out_of_range_or_with_the_job_queue_are_refused(args):
    with pytest.raises(CommandError, match="--workers"):
        call_command("trade", *args)
    assert TradeCycle.objects.count() == 0


def test_a_worker_that_died_without_a_summary_counts_as_an_error():
    import json

    from positions.workflows.cycle import COUNTS, _workers_summed

    counts = dict.fromkeys(COUNTS, 0) | {"positions_claimed": 7, "evaluated": 7, "errors": 1}
    answer = json.dumps({"counts": counts, "market_open": True, "session": "2026-03-02",
                         "tail": " Not priced by the feed: ZIM.",
                         "errors": ["P1 evaluation_failed: failed: boom"]}).encode()
    summed = _workers_summed([(101, 0, answer), (102, 1, b""), (103, 0, answer)], started=0)
    assert (summed.row.positions_claimed, summed.row.evaluated, summed.row.errors) == (14, 14, 3)
    assert summed.claims == [7, 0, 7]
    assert summed.errors == ["P1 evaluation_failed: failed: boom",
                             "worker 102 exited 1 without a summary (its stderr says why)",
                             "P1 evaluation_failed: failed: boom"]
    assert summed.message.endswith(" 3 workers, claims 7+0+7. Not priced by the feed: ZIM.")
    assert " 3 errors in " in summed.message


# A worker whose cycle takes a minute (its cycle replaced by a sleep: what is tested is how the
# command's stop reaches it, not the cycle), the command's forking function run as the command
# runs it, in a process of its own.
HOLD = """
import os, sys, time
import django
django.setup()
from positions.workflows import cycle

def held(**kwargs):
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    time.sleep(60)

cycle.trade_cycle = held
cycle.trade_cycle_workers(2)
"""


def _held_command(tmp_path, script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "VOLBAL_CALENDAR": "", "DJANGO_SETTINGS_MODULE": "volbal.settings"}
    return subprocess.Popen([sys.executable, "-c", script, str(tmp_path), *args],
                            cwd=settings.BASE_DIR, env=env)


def _wait_for_files(tmp_path, n: int, prefix: str = "") -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = [name for name in os.listdir(tmp_path) if name.startswith(prefix)]
        if len(names) >= n:
            return names
        time.sleep(0.05)
    raise AssertionError(f"only {os.listdir(tmp_path)} after 60 s")


def _kill_all(parent: subprocess.Popen, pids) -> None:
    parent.kill()
    parent.wait()
    for pid in pids:  # what a failure left running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.system
def test_stopping_the_command_stops_its_workers_and_then_itself(tmp_path):
    parent = _held_command(tmp_path, HOLD)
    workers: list[int] = []
    try:
        workers = [int(name) for name in _wait_for_files(tmp_path, 2)]
        assert len(workers) == 2
        parent.send_signal(signal.SIGTERM)
        # it stops at once, as a separate process would, and only after its workers
        assert parent.wait(timeout=20) == -signal.SIGTERM
        assert [pid for pid in workers if os.path.exists(f"/proc/{pid}")] == []
    finally:
        _kill_all(parent, workers)


# How the stop reaches the workers when it does not arrive at the quiet moment
# the test above picks. The same held cycle; what changes is when the signal lands.


# Each worker, once forked, takes a moment before its own code runs (here an after-fork hook
# that sleeps 2 s: a loaded machine, or any library's at-fork hook, does the same), and says
# when it is in that moment. The parent is already waiting on it: a supervisor's SIGTERM now is
# forwarded to a worker that still holds the parent's forwarding handler.
HOLD_SLOW_START = """
import os, sys, time
import django
django.setup()
from positions.workflows import cycle

def starting():
    open(os.path.join(sys.argv[1], "forked-" + str(os.getpid())), "w").close()
    time.sleep(2)

def held(**kwargs):
    open(os.path.join(sys.argv[1], "cycle-" + str(os.getpid())), "w").close()
    time.sleep(60)

os.register_at_fork(after_in_child=starting)
cycle.trade_cycle = held
cycle.trade_cycle_workers(2)
"""


@pytest.mark.system
def test_a_stop_that_reaches_a_worker_just_after_its_fork_still_stops_it(tmp_path):

    parent = _held_command(tmp_path, HOLD_SLOW_START)
    workers: list[int] = []
    try:
        workers = [int(n.split("-")[1]) for n in _wait_for_files(tmp_path, 2, "forked-")]
        parent.send_signal(signal.SIGTERM)  # both workers are between their fork and their code
        # as when the stop comes later: the command stops by SIGTERM once its workers are gone
        assert parent.wait(timeout=20) == -signal.SIGTERM
        assert [pid for pid in workers if os.path.exists(f"/proc/{pid}")] == []
    finally:
        _kill_all(parent, workers)


@pytest.mark.system
def test_interrupting_the_command_stops_its_workers_too(tmp_path):

    parent = _held_command(tmp_path, HOLD)
    workers: list[int] = []
    try:
        workers = [int(name) for name in _wait_for_files(tmp_path, 2)]
        parent.send_signal(signal.SIGINT)  # to the command alone, not its process group
        parent.wait(timeout=20)
        # what the command started does not outlive it
        assert [pid for pid in workers if os.path.exists(f"/proc/{pid}")] == []
    finally:
        _kill_all(parent, workers)


# A first worker whose cycle is over at once, a second held: the command has reaped the first
# (its pid is free for any new process of the machine) when the supervisor stops it. Every
# signal the command sends is written down (os.kill wrapped, then passed on).
HOLD_ONE_DONE = """
import os, sys, time
import django
django.setup()
from positions.workflows import cycle

sent = os.path.join(sys.argv[1], "sent")
real_kill = os.kill
def kill(pid, sig):
    with open(sent, "a") as f:
        f.write(f"{pid} {int(sig)}\\n")
    real_kill(pid, sig)
os.kill = kill

forks, nth = [], []  # the worker forked first is the one whose cycle ends at once
os.register_at_fork(before=lambda: forks.append(1), after_in_child=lambda: nth.append(len(forks)))
def held(**kwargs):
    first = nth == [1]
    open(os.path.join(sys.argv[1], "order", str(os.getpid())), "w").close()
    if first:
        raise SystemExit(3)  # this worker's cycle is over
    open(os.path.join(sys.argv[1], "cycle-" + str(os.getpid())), "w").close()
    time.sleep(60)

real_waitpid = os.waitpid
def waitpid(pid, options):
    out = real_waitpid(pid, options)
    open(os.path.join(sys.argv[1], "reaped-" + str(pid)), "w").close()
    return out
os.waitpid = waitpid
cycle.trade_cycle = held
cycle.trade_cycle_workers(2)
"""


@pytest.mark.system
def test_a_stop_is_not_sent_to_a_worker_already_reaped(tmp_path):

    (tmp_path / "order").mkdir()
    parent = _held_command(tmp_path, HOLD_ONE_DONE)
    workers: list[int] = []
    try:
        _wait_for_files(tmp_path / "order", 2)
        workers = [int(n) for n in os.listdir(tmp_path / "order")]
        [reaped] = [int(n.split("-")[1]) for n in _wait_for_files(tmp_path, 1, "reaped-")]
        _wait_for_files(tmp_path, 1, "cycle-")
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=20) == -signal.SIGTERM
        sent = [tuple(map(int, line.split())) for line in (tmp_path / "sent").read_text()
                .splitlines()]
        assert sent and all(sig == signal.SIGTERM for _pid, sig in sent)
        assert reaped not in {pid for pid, _sig in sent}  # it may be anyone's by now
    finally:
        _kill_all(parent, workers)


# The stop lands while the command forks: at its second fork (the parent's before-fork hook
# sends it). The branch "stopped between its fork and this line" kills the new worker at once,
# before it has run (Linux runs the parent first after a fork); the worker's short start is
# made sure here by a 1 s after-fork hook. Without that hook the command still waited for the
# whole held cycle in 10 runs out of 10 on the review machine.
HOLD_STOPPED_WHILE_FORKING = """
import os, signal, sys, time
import django
django.setup()
from positions.workflows import cycle

forks = []
def before():
    forks.append(1)
    if len(forks) == 2:
        os.kill(os.getpid(), signal.SIGTERM)

def held(**kwargs):
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    time.sleep(60)

os.register_at_fork(before=before, after_in_child=lambda: time.sleep(1))
cycle.trade_cycle = held
cycle.trade_cycle_workers(3)
"""


@pytest.mark.system
def test_a_stop_while_the_command_forks_stops_it_and_its_workers_at_once(tmp_path):

    parent = _held_command(tmp_path, HOLD_STOPPED_WHILE_FORKING)
    try:
        # no third worker is forked; the command stops by SIGTERM without waiting for a cycle
        assert parent.wait(timeout=20) == -signal.SIGTERM
        time.sleep(0.5)
        assert [n for n in os.listdir(tmp_path) if os.path.exists(f"/proc/{n}")] == []
    finally:
        _kill_all(parent, [int(n) for n in os.listdir(tmp_path)])
