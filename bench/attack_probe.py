"""/healthz latency under the attack of docs/operations.md#production, through nginx and
straight to gunicorn, in one run on the same deployment (deploy/run: nginx + gunicorn with 3
workers, DJANGO_DEBUG=0):
64 connections trickling headers plus FLOODERS clients looping 100,000-bar backtests, while
/healthz is probed every 100 ms (each probe waits at most 30 s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/volbal .venv/bin/python bench/attack_probe.py

(a scratch database is created and dropped; nginx is installed from Debian if missing).
``VOLBAL_ATTACK_SECONDS`` (20) sets each attack's length. The criterion: every probe
through nginx within 200 ms."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")

import django

django.setup()

from volbal.tests.deployment import deployed, run_attack  # noqa: E402

FLOODERS = 4
SECONDS = float(os.environ.get("VOLBAL_ATTACK_SECONDS", "20"))
CRITERION_MS = 200


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, deployed(Path(tmp), users=FLOODERS) as running:
        rows = []
        for name, base in (("through nginx", running.nginx), ("gunicorn alone", running.gunicorn)):
            print(f"attacking {name} for {SECONDS:.0f} s ...", flush=True)
            probes, report = run_attack(base, running.tokens, SECONDS)
            rows.append((name, probes, report))
            print(f"  /healthz: {probes}\n  attackers: {report}", flush=True)
    print(f"\n{'':16} {'probes':>6} {'failed':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, p, _ in rows:
        print(f"{name:16} {p['probes']:>6} {p['failed']:>6} {p['median_ms'] or '-':>10} "
              f"{p['p95_ms'] or '-':>8} {p['max_ms'] or '-':>8}")
    nginx = rows[0][1]
    ok = nginx["failed"] == 0 and nginx["max_ms"] is not None and nginx["max_ms"] < CRITERION_MS
    print(f"\nevery probe through nginx within {CRITERION_MS} ms: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
