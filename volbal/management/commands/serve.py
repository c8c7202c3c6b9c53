"""``manage.py serve [ADDR:PORT]``: the local service in one command: Django's development
server and a job worker for each queue beside it: the default queue (the scheduled trade cycle),
the research jobs' (sweeps, walk-forwards, backtest jobs) and the webhooks' (deliveries), so
neither a long sweep nor a slow receiver delays a cycle; Ctrl-C stops them all.

Production runs them apart: gunicorn behind nginx (``deploy/run``) and as many ``manage.py
db_worker`` (default queue), ``manage.py db_worker --queue-name research`` and ``manage.py
db_worker --queue-name webhooks`` processes, on as many machines, as the jobs need."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Run the development web server and a job worker per queue together (the local "
            "service); Ctrl-C stops them all.")
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="the web server's address and port (default 127.0.0.1:8000)")
        parser.add_argument("--noreload", action="store_true",
                            help="no code reloading (web server and worker)")

    def handle(self, *args, **opts):
        # Ctrl-C and a service manager's SIGTERM both stop the server and then the worker
        # (a shell's background job inherits SIGINT ignored: take it back).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        workers = []
        # runserver's reloader runs this command again in a child process (RUN_MAIN=true):
        # the workers are started once, by the parent, and live as long as it does.
        if os.environ.get("RUN_MAIN") != "true":
            # a worker per queue, as production runs them
            for queue in settings.TASKS["default"]["QUEUES"]:
                command = [sys.executable, os.path.abspath(sys.argv[0]), "db_worker",
                           "--queue-name", queue, "--interval", "1",
                           *(["--no-reload"] if opts["noreload"] else [])]
                if not sys.argv[0].endswith("manage.py"):
                    command[1:2] = ["-m", "django"]
                worker = subprocess.Popen(command)
                workers.append(worker)
                self.stdout.write(f"Job worker of the {queue} queue started (pid {worker.pid}).")
        try:
            call_command("runserver", opts["addrport"], use_reloader=not opts["noreload"])
        finally:
            for worker in workers:
                _stop(worker)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(worker: subprocess.Popen) -> None:
    """Ask the worker to stop (it finishes its task on the first signal); after 10 s, kill."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
