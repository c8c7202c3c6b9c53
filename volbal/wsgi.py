"""WSGI entry point: ``gunicorn volbal.wsgi`` (see gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")

application = get_wsgi_application()

# Import every view now: gunicorn loads this module in each worker before the worker accepts a
# request. Left to the first request, the import of the whole API (about 1 s of CPU, several on
# a busy machine) stalled whatever request came first to a new or respawned worker, a health
# probe included (bench/attack_probe.py: 5.4 s probes under attack, all first requests).
get_resolver().resolve("/healthz")
# Build the exchange calendar while the worker starts, not on its first order (exchange_calendars
# takes seconds to build one): a worker restarted mid-load answers at once when it is ready.
from volbal import market  # noqa: E402

market.warm()
