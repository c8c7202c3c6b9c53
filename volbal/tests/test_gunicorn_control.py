"""gunicorn's control socket (``gunicornc``) belongs to one master (gunicorn.conf.py): two
masters started with their own run directories (VOLBAL_RUN_DIR, as deploy/run sets it) each
answer on ``<run dir>/gunicorn.ctl`` with their own pid, and a master without a run directory
opens none, instead of gunicorn's default ``~/.gunicorn/gunicorn.ctl`` that every master of the
user shared (the last one started took it over)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from volbal.tests.live_server import free_port, gunicorn

pytestmark = pytest.mark.system


def _env(home: Path, **extra) -> dict:
    # no database is needed for /healthz: a port where nothing listens
    env = {**os.environ, "DJANGO_DEBUG": "1", "HOME": str(home),
           "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/volbal"}
    for name in ("XDG_RUNTIME_DIR", "GUNICORN_CONTROL_SOCKET", "VOLBAL_RUN_DIR"):
        env.pop(name, None)
    return {**env, **extra}


def _master_pid_behind(socket: Path) -> int:
    out = subprocess.run([str(Path(sys.executable).with_name("gunicornc")), "-s", str(socket),
                          "-c", "show stats", "-j"],
                         check=True, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)["pid"]


def test_each_master_has_its_own_control_socket_in_its_run_directory(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    masters = {}
    runs = {name: tmp_path / name for name in ("a", "b")}
    for path in runs.values():
        path.mkdir()
    with gunicorn(runs["a"], _env(home, VOLBAL_RUN_DIR=str(runs["a"])), workers=1,
                  pidfile=runs["a"] / "pid"), \
            gunicorn(runs["b"], _env(home, VOLBAL_RUN_DIR=str(runs["b"])), workers=1,
                     pidfile=runs["b"] / "pid"):
        for name, path in runs.items():
            masters[name] = _master_pid_behind(path / "gunicorn.ctl")
            assert masters[name] == int((path / "pid").read_text())
        assert masters["a"] != masters["b"]
        assert not (home / ".gunicorn").exists()


def test_a_master_without_a_run_directory_opens_no_shared_socket(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with gunicorn(tmp_path, _env(home), workers=1):
        assert not (home / ".gunicorn").exists()
