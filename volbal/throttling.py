"""Per-user request rates for the expensive endpoints (docs/api.md#limits), kept in the
database cache so every worker and every machine counts the same requests (process memory would
give each worker its own allowance).

A view joins a named scope with ``throttle_scope = EXPENSIVE`` (the backtest does; a sweep
should): one budget per user for everything expensive, ``VOLBAL_THROTTLE_EXPENSIVE`` (DRF's
``N/s|min|hour|day``, default 30/min). Beyond it: 429 ``throttled`` with ``Retry-After``
(volbal.api.exception_handler). Anonymous callers (outside local mode they are refused first)
are counted per client address: ``VOLBAL_PROXIES`` (REST framework's ``NUM_PROXIES``) says how
many proxies' ``X-Forwarded-For`` entries to trust: 1 behind deploy/nginx.conf."""

from __future__ import annotations

EXPENSIVE = "expensive"
