"""README's first command ends in ``manage.py serve``: on a fresh SQLite database it starts the
web server and two job workers together, one per queue (a sweep posted to the API is run by the
research queue's worker; the default queue's, which runs the trade cycle, serves no research job),
and one Ctrl-C (SIGINT to the terminal's process group) stops all three."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from volbal.tests.live_server import ROOT, call, free_port

pytestmark = pytest.mark.system

SWEEP = {"kind": "sweep", "series": ["IBM"], "start": "2010-01-01", "end": "2010-06-30",
         "grid": {"trigger_pct": "0.03,0.05", "guard_low": "0.2,0.3"}}


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()
    except FileNotFoundError:
        return True


def test_serve_runs_the_web_server_and_a_worker_and_stops_both(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert "manage.py migrate && .venv/bin/python manage.py serve 127.0.0.1:8000" in readme
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
           "DJANGO_DEBUG": "1", "VOLBAL_SWEEP_JOBS": "1", "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}",
                                 "--noreload"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        status, body, _ = call(base + "/v1/sweeps", method="POST", body=SWEEP)
        assert status == 202, body
        deadline = time.monotonic() + 120
        while body["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
            status, body, _ = call(f"{base}/v1/sweeps/{body['id']}")
        assert body["status"] == "succeeded", (body, log_path.read_text())
        assert body["ranked"] and body["links"]["heatmap"]
        pids = dict(re.findall(r"Job worker of the (\w+) queue started \(pid (\d+)\)",
                               log_path.read_text()))
        assert set(pids) == {"default", "research", "webhooks"}, log_path.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while not all(_gone(int(pid)) for pid in pids.values()):
        assert time.monotonic() < deadline, "a worker outlived Ctrl-C"
        time.sleep(0.1)
