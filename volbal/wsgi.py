"""WSGI entry point: ``gunicorn volbal.wsgi`` (see gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")

application = get_wsgi_application()

# Build the exchange calendar while the worker starts, not on its first order (exchange_calendars
# takes seconds to build one): a worker restarted mid-load answers at once when it is ready.
from volbal import market  # noqa: E402

market.warm()
