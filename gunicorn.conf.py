"""gunicorn settings for production: ``gunicorn volbal.wsgi`` (reads this file by default)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# cores + 1, not gunicorn's usual 2 x cores + 1: a request here spends most of its time on the
# CPU (the database waits are short), so more workers only add switching. Measured with
# bench/orders_load.py on 2 cores: 3 workers ~15-20 % more submissions per second than 5.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = 100
accesslog = os.environ.get("GUNICORN_ACCESSLOG", None)
errorlog = "-"
wsgi_app = "volbal.wsgi:application"
# The control socket (gunicornc) of this master, in its own run directory: gunicorn's default,
# ~/.gunicorn/gunicorn.ctl, is one path for every master of the user, so a second master took
# it over and gunicornc reached (and could stop) the wrong server. deploy/run sets
# VOLBAL_RUN_DIR; GUNICORN_CONTROL_SOCKET names another path. A master with neither opens no
# control socket rather than share one.
_run_dir = os.environ.get("VOLBAL_RUN_DIR")
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or (
    os.path.join(_run_dir, "gunicorn.ctl") if _run_dir else None)
if _control_socket:
    control_socket = _control_socket
control_socket_disable = not _control_socket
# The longest request line (method, path, query) taken; a longer one is answered 414 by gunicorn
# itself (documented on every operation of /v1/schema/, volbal.schema.document_server_limits).
limit_request_line = 4094
# The longest header line taken; a longer one is answered 431 by gunicorn (documented the same
# way, volbal.schema_http). deploy/nginx.conf passes header lines up to this length.
limit_request_field_size = 8190


def on_starting(server):
    """Build the exchange calendar once, in the master: every worker forked from it (and every
    replacement of a dead one) inherits it instead of spending seconds building its own."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")
    # after DJANGO_SETTINGS_MODULE is set: volbal.market reads the settings
    from volbal import market

    market.warm()
