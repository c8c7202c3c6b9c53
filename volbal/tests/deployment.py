"""The production deployment as shipped, for black-box tests and bench/: a scratch database,
``manage.py migrate`` and ``collectstatic``, then ``deploy/run`` (nginx in front of gunicorn,
3 workers, DJANGO_DEBUG=0) on free loopback ports. nginx comes from Debian: installed here when
missing, as .ci/run does."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from volbal.tests.live_server import ROOT, call, free_port, scratch_database


def ensure_nginx() -> str:
    """The nginx binary, installed from Debian's packages if missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True, env=env,
                   timeout=600)
    return shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Deployment:
    nginx: str  # base URL through nginx
    gunicorn: str  # base URL of gunicorn itself (what nginx proxies to)
    tokens: list[str]  # one API token per user made for the test
    run_dir: Path


def _make_users(env: dict, count: int) -> list[str]:
    code = ("import json; from django.contrib.auth.models import User; "
            "from rest_framework.authtoken.models import Token; "
            f"print(json.dumps([Token.objects.create(user=User.objects.create_user('client%d' % i)"
            f").key for i in range({count})]))")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-v0", "-c", code], cwd=ROOT,
                         env=env, check=True, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def deployed(tmp_path: Path, *, users: int = 0, env: dict | None = None):
    ensure_nginx()
    # nginx's workers (nobody, when run as root) read the static files and write temp files
    # under the run directory: a world-readable one, not pytest's private tmp_path.
    run_dir = Path(tempfile.mkdtemp(prefix="volbal-deploy-"))
    run_dir.chmod(0o755)
    listen, upstream = free_port(), free_port()
    with scratch_database(tmp_path) as url:
        full_env = {
            **os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "deploy-test-" + "x" * 50,
            # loopback has no TLS: nginx would send X-Forwarded-Proto http
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_STATIC_ROOT": str(run_dir / "static"),
            "VOLBAL_PYTHON": sys.executable, "VOLBAL_RUN_DIR": str(run_dir / "nginx"),
            "VOLBAL_LISTEN": f"127.0.0.1:{listen}", "GUNICORN_BIND": f"127.0.0.1:{upstream}",
            "GUNICORN_WORKERS": "3", **(env or {}),
        }
        for command in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=full_env,
                           check=True, timeout=300)
        for path in run_dir.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        tokens = _make_users(full_env, users) if users else []
        log = open(tmp_path / "deploy.log", "w")
        proc = subprocess.Popen(["bash", "deploy/run"], cwd=ROOT, env=full_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{listen}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if call(base + "/healthz")[0] == 200:
                        break
                except (OSError, ValueError):  # not listening yet, or nginx's 502 page
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "deploy.log").read_text())
                time.sleep(0.2)
            yield Deployment(base, f"http://127.0.0.1:{upstream}", tokens, run_dir)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()
            shutil.rmtree(run_dir, ignore_errors=True)


# --- the attack and the probes (volbal/tests/test_deploy.py, bench/attack_probe.py) ---

PROBE_EVERY = 0.1


def probe(url: str, stop: float) -> list[float | None]:
    """GET ``url`` every PROBE_EVERY seconds until ``stop``: each latency in ms, None if it
    failed."""
    latencies: list[float | None] = []
    while time.monotonic() < stop:
        started = time.perf_counter()
        try:
            ok = call(url)[0] == 200
        except OSError:
            ok = False
        latencies.append((time.perf_counter() - started) * 1000 if ok else None)
        time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - started)))
    return latencies


def attack(target: str, tokens: list[str], seconds: float):
    """Start the attack process (volbal/tests/attack.py) against ``target``."""
    return subprocess.Popen(
        [sys.executable, "-m", "volbal.tests.attack", target.removeprefix("http://"),
         str(seconds), ",".join(tokens)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ})


def summary(latencies: list[float | None]) -> dict:
    answered = sorted(x for x in latencies if x is not None)
    return {"probes": len(latencies), "failed": len(latencies) - len(answered),
            "median_ms": round(statistics.median(answered), 1) if answered else None,
            "p95_ms": round(answered[int(len(answered) * 0.95) - 1], 1) if answered else None,
            "max_ms": round(answered[-1], 1) if answered else None}


def run_attack(base: str, tokens: list[str], seconds: float) -> tuple[dict, dict]:
    """The attack on ``base`` while /healthz is probed there: (probe summary, attack report)."""
    attacker = attack(base, tokens, seconds)
    time.sleep(3)  # the slow connections are open and the flood is running
    latencies = probe(base + "/healthz", time.monotonic() + seconds - 4)
    out, _ = attacker.communicate(timeout=seconds + 120)
    return summary(latencies), json.loads(out.strip().splitlines()[-1])
