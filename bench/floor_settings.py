"""Settings of bench/orders_load.py's gunicorn: the project's settings exactly (production mode
comes from the same environment variables), with a URLconf that adds the DRF floor
(bench/floor_urls.py). The product never loads this module."""

from volbal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
