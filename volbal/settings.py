"""volbal settings: one module, driven by environment variables (docs/operations.md#settings)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be 0 or 1, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
# Local mode: DEBUG on lets anonymous requests act as one local user (docs/auth.md#who-may-call).
LOCAL_MODE = DEBUG
LOCAL_USERNAME = "local"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0")
    SECRET_KEY = "volbal-local-development-key-not-for-production-use-0123456789"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
if DEBUG:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # admin login lockout (volbal/login_guard.py)
    "django_tasks",  # Django 6's tasks, backported: the job queue (docs/architecture.md)
    "django_tasks_db",  # its database backend: the queue lives in our own database
    "volbal",  # its migration creates the database cache's table (volbal/migrations)
    "events",
    "positions",
    "positions.portfolios",  # label "portfolios": its screens and commands (no tables)
    "positions.research",  # label "research": research jobs (sweeps, walk-forwards, backtests)
    "orders",
]

MIDDLEWARE = [
    "volbal.middleware.RequestLogMiddleware",
    "volbal.middleware.JsonErrorsMiddleware",
    "volbal.framing.RequestFramingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # who acted, for every event the request records (outside the idempotency middleware:
    # the refusals it writes after its transaction name the caller too)
    "events.actor.ActorMiddleware",
    "volbal.admin.TradingTimeZoneMiddleware",
    "orders.middleware.IdempotencyMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "volbal.login_guard.LockoutBackend",  # refuses a locked-out username and address first
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "volbal.urls"
WSGI_APPLICATION = "volbal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("VOLBAL_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# The test suite's databases. On a server (PostgreSQL) every database the tests create is named
# with this one prefix: pytest-django's test database "<prefix>_<pid>" (one per test process, so
# parallel runs on one server do not collide) and the scratch database of each black-box server
# test "<prefix>_live_<random>" (volbal/tests/live_server.py), dropped when the test ends.
# Default: "test_" and DATABASE_URL's database name (test_volbal for .../volbal); set
# VOLBAL_TEST_DB_PREFIX to choose another (letters, digits, _ and -, at most 40). On SQLite the
# test database is in memory and the scratch ones are files in pytest's temporary directory.
# The servers those tests start listen on 127.0.0.1 at ports the system assigns, never a fixed one.
VOLBAL_TEST_DB_PREFIX = os.environ.get("VOLBAL_TEST_DB_PREFIX") or (
    "test_volbal" if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    else re.sub(r"[^A-Za-z0-9_-]", "_", f"test_{DATABASES['default']['NAME']}")[:40])
if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", VOLBAL_TEST_DB_PREFIX):
    raise ImproperlyConfigured(
        f"VOLBAL_TEST_DB_PREFIX={VOLBAL_TEST_DB_PREFIX!r}: use 1 to 40 letters, digits, _ or -.")
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": f"{VOLBAL_TEST_DB_PREFIX}_{os.getpid()}"}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
        "VOLBAL_DB_PREPARED_STATEMENTS", True):
    # Parameters bound by the server and statements prepared after their 5th use on a
    # connection: PostgreSQL parses and plans the hot path's statements once per connection
    # (bench/orders_load.py: about +19 % submissions, +16 % replays). Set it to 0 behind a
    # transaction-pooling proxy (PgBouncer in transaction mode), which cannot keep them.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True,
                                                          prepare_threshold=5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers wait for the lock instead of failing at once; IMMEDIATE transactions
    # take the write lock up front so read-modify-write cannot interleave.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The largest request body (bytes) outside the backtest's own limit; 413 request_too_large
# beyond (volbal.framing). deploy/nginx.conf's client_max_body_size is the same number.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# One cache shared by every worker and machine: the database's (volbal/migrations creates its
# table). It holds the request counts of the throttles (volbal/throttling.py).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "volbal_cache",
    }
}

# --- volbal ---
VOLBAL_IDEMPOTENCY_TTL_HOURS = env_int("VOLBAL_IDEMPOTENCY_TTL_HOURS", 24)
VOLBAL_TRADING_TZ = os.environ.get("VOLBAL_TRADING_TZ", "America/New_York")
# How far ahead of now a price's ts may be (clock skew): a later one would stay "latest" for ever.
VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS = env_int("VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS", 300)

# --- Background jobs (docs/architecture.md#background-jobs): django-tasks with its database
# backend, so the queue is this database (SQLite locally, PostgreSQL in production) and any
# number of `manage.py db_worker` processes on any number of machines claim from it
# (SELECT ... FOR UPDATE SKIP LOCKED).
# Research jobs run on their own queue, so the trade cycle's workers (the default queue) never
# wait behind a sweep: `manage.py db_worker` serves the default queue, `manage.py db_worker
# --queue-name research` the research jobs (`manage.py serve` starts one of each).
RESEARCH_QUEUE = "research"
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        # a queue per kind of job, each with its own workers: research (sweeps, walk-forwards,
        # backtest jobs) and webhooks (deliveries, events/webhooks/tasks.py) never hold the
        # workers of the trade cycle (default), nor a slow receiver a sweep
        "QUEUES": ["default", RESEARCH_QUEUE, "webhooks"],
    }
}
# Worker processes one sweep job's cells run on (0: every core of the worker's machine).
VOLBAL_SWEEP_JOBS = env_int("VOLBAL_SWEEP_JOBS", 0)
# A running sweep whose worker has written no heartbeat for this long is failed (worker_lost).
VOLBAL_SWEEP_STALE_SECONDS = env_int("VOLBAL_SWEEP_STALE_SECONDS", 300)
# Research quotas (positions/research/services.py): the most backtests one job may run (one cell
# on one series, per window), and per user the most queued or running jobs and the most runs
# they may still have to do.
VOLBAL_RESEARCH_MAX_JOB_RUNS = env_int("VOLBAL_RESEARCH_MAX_JOB_RUNS", 100_000)
VOLBAL_RESEARCH_MAX_ACTIVE_JOBS = env_int("VOLBAL_RESEARCH_MAX_ACTIVE_JOBS", 5)
VOLBAL_RESEARCH_MAX_QUEUED_RUNS = env_int("VOLBAL_RESEARCH_MAX_QUEUED_RUNS", 200_000)

# --- Webhooks (docs/webhooks.md; events/webhooks) ---
# Deliver to private, loopback, link-local and other non-public addresses (development, tests).
VOLBAL_WEBHOOKS_ALLOW_PRIVATE = env_bool("VOLBAL_WEBHOOKS_ALLOW_PRIVATE", False)
# Seconds to connect, and to wait for each read of the answer.
VOLBAL_WEBHOOK_TIMEOUT_SECONDS = env_int("VOLBAL_WEBHOOK_TIMEOUT_SECONDS", 10)
# Seconds one delivery's request may take in all, however the receiver trickles its answer (the
# worker's lease of the endpoint is this and a margin: events/webhooks/delivery.py).
VOLBAL_WEBHOOK_DEADLINE_SECONDS = env_int("VOLBAL_WEBHOOK_DEADLINE_SECONDS", 30)
# A delivery is retried (exponential backoff from BASE, each wait at most CAP) for this long,
# then marked failed, its endpoint disabled and a webhook_failed alert recorded.
VOLBAL_WEBHOOK_RETRY_HOURS = env_int("VOLBAL_WEBHOOK_RETRY_HOURS", 24)
VOLBAL_WEBHOOK_BACKOFF_BASE_SECONDS = env_int("VOLBAL_WEBHOOK_BACKOFF_BASE_SECONDS", 30)
VOLBAL_WEBHOOK_BACKOFF_CAP_SECONDS = env_int("VOLBAL_WEBHOOK_BACKOFF_CAP_SECONDS", 3600)
# The key endpoint secrets are derived from (default the Django secret key: changing it changes
# every endpoint's secret).
VOLBAL_WEBHOOK_SECRET_KEY = os.environ.get("VOLBAL_WEBHOOK_SECRET_KEY") or SECRET_KEY
# The most endpoints one owner may register.
VOLBAL_WEBHOOK_MAX_ENDPOINTS = env_int("VOLBAL_WEBHOOK_MAX_ENDPOINTS", 20)

# --- Admin login lockout (django-axes; volbal/login_guard.py) ---
AXES_FAILURE_LIMIT = env_int("VOLBAL_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("VOLBAL_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # the pair: one username from one address
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "volbal.login_guard.client_address"
AXES_LOCKOUT_CALLABLE = "volbal.login_guard.locked_out"
# The exchange calendar (an exchange_calendars code): the daily cap counts its sessions, the
# trade cycle trades only in them, day orders expire at their close. Empty: no calendar.
VOLBAL_CALENDAR = os.environ.get("VOLBAL_CALENDAR", "XNYS")
# Alerts (positions/alerts.py; 0 turns a check off). During a session, a ticker with no new price
# for this many minutes raises price_stale on its positions; no trade cycle for this many
# minutes raises cycle_missed on the positions that depend on the cycle.
VOLBAL_PRICE_STALE_AFTER = env_int("VOLBAL_PRICE_STALE_AFTER", 15)
VOLBAL_CYCLE_MISSED_AFTER = env_int("VOLBAL_CYCLE_MISSED_AFTER", 5)

# Market data (docs/marketdata.md#settings): the feed the trade cycle and the fetch commands
# price the held tickers from (alpaca, file or none), Alpaca's data feed and endpoint, the file
# feed's directory, and where fetched history for research is cached. The Alpaca credentials
# are the broker's, read from the environment only (never kept in the settings).
VOLBAL_PRICE_FEED = os.environ.get("VOLBAL_PRICE_FEED", "")
ALPACA_DATA_FEED = os.environ.get("ALPACA_DATA_FEED", "")
ALPACA_DATA_URL = os.environ.get("ALPACA_DATA_URL", "")
VOLBAL_PRICE_FEED_DIR = os.environ.get("VOLBAL_PRICE_FEED_DIR", "")
VOLBAL_MARKETDATA_CACHE_DIR = Path(os.environ.get("VOLBAL_MARKETDATA_CACHE_DIR")
                                   or BASE_DIR / "var" / "marketdata")

# --- REST framework ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "volbal.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        *(["volbal.auth.LocalModeAuthentication"] if LOCAL_MODE else []),
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["volbal.parsers.StrictJSONParser"],
    # bodies in exactly the media type the Idempotency-Key middleware records (volbal/parsers.py)
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "volbal.parsers.ExactContentNegotiation",
    "DEFAULT_RENDERER_CLASSES": ["volbal.api_renderers.DecimalJSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "volbal.schema.AutoSchema",
    "EXCEPTION_HANDLER": "volbal.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": False,
    # Per-user rates of named scopes (volbal/throttling.py); a view opts in with throttle_scope.
    "DEFAULT_THROTTLE_CLASSES": ["volbal.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "expensive": os.environ.get("VOLBAL_THROTTLE_EXPENSIVE") or "30/min",
    },
    # How many proxies' X-Forwarded-For entries name the client (1 behind deploy/nginx.conf).
    "NUM_PROXIES": env_int("VOLBAL_PROXIES", 0),
}
# The most strategy evaluations one backtest request may ask for (positions.strategy.backtest
# .budget): well under a second of one server process at the limit (a limit-order run's
# resting pair counted with it).
VOLBAL_BACKTEST_MAX_EVALUATIONS = env_int("VOLBAL_BACKTEST_MAX_EVALUATIONS", 20_000)

SPECTACULAR_SETTINGS = {
    "TITLE": "volbal API",
    "DESCRIPTION": "Volatility-balancing trading service: positions, evaluation, idempotent "
    "orders, fills, dividends, prices, backtests and the audit trail.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Outside local mode the schema and the docs need credentials like the rest of /v1/.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "volbal.schema.document_server_limits",
        "volbal.schema_http.document_http_limits",
        "volbal.schema.document_replays",
    ],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "DividendStatusEnum": "positions.models.DividendStatus",
        "SideEnum": "orders.models.Side",
        "SizingEnum": "positions.models.Sizing",
        "EventTypeEnum": "events.models.EventType",
        "ProposalKindEnum": "positions.strategy.rules.KINDS",
        "TrimmedByEnum": "positions.strategy.rules.TRIM_CAPS",
        "BlockedByEnum": "positions.strategy.rules.BLOCKS",
        "BacktestOrderKindEnum": "positions.research.api.BACKTEST_ORDER_KINDS",
        "SweepKindEnum": "positions.research.models.JobKind",
        "SweepStatusEnum": "positions.research.models.JobStatus",
        "SampleEnum": "positions.strategy.backtest.data.SAMPLE_TICKERS",
        "SweepMetricEnum": "positions.strategy.research.sweep.CELL_METRICS",
        "EvaluationPriceSourceEnum": "positions.selectors.PriceSource.ALL",
        "PositionPriceSourceEnum": "positions.serializers.PRICE_SOURCES_OF_POSITION",
        "ActorSourceEnum": "events.actor.ActorSource",
        "DeliveryStatusEnum": "events.webhooks.models.DeliveryStatus",
        "DisabledReasonEnum": "events.webhooks.models.DISABLED_REASONS",
        "RebalanceEnum": "positions.strategy.rules.REBALANCES",
    },
    # A nullable enum is the enum with "nullable": true, not a oneOf with a separate NullEnum.
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    # One tag per resource, in this order in Swagger UI.
    "TAGS": [
        {"name": "positions", "description": "Open, read and configure positions; evaluate."},
        {"name": "portfolios", "description": "Group positions with unallocated cash and "
         "target weights; deposit, withdraw and transfer cash (idempotently)."},
        {"name": "orders", "description": "Submit (idempotently), fill, cancel and read orders."},
        {"name": "events", "description": "The audit trail of every decision and change."},
        {"name": "dividends", "description": "Announce dividends and follow them to payment."},
        {"name": "splits", "description": "Record stock splits; each applies once on its "
         "effective date (shares × ratio, anchor ÷ ratio)."},
        {"name": "prices", "description": "Record observed prices; confirm a price the "
         "price-jump guard held back."},
        {"name": "backtests", "description": "Run the strategy over history."},
        {"name": "sweeps", "description": "Sweeps and walk-forwards as background jobs: start, "
                                          "follow, cancel; ranked cells, files and heatmap."},
        {"name": "webhooks", "description": "Endpoints that receive your positions' events, "
                                            "signed; their deliveries and attempts."},
        {"name": "health", "description": "Liveness and readiness."},
    ],
    # Local mode's anonymous access is a development convenience, not an API scheme.
    "AUTHENTICATION_WHITELIST": [
        "volbal.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# --- Production hardening (DJANGO_DEBUG=0) ---
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "volbal.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("VOLBAL_LOG_LEVEL", "WARNING")},
    "loggers": {
        # One line per request (request id, position, idempotency key, status, duration).
        "volbal.request": {"level": os.environ.get("VOLBAL_REQUEST_LOG_LEVEL", "INFO")},
        # volbal.request already reports 4xx/5xx; keep Django's duplicate for 5xx only.
        "django.request": {"level": "ERROR"},
    },
}
