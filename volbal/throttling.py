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

from django.db import connections, router, transaction
from rest_framework import throttling

EXPENSIVE = "expensive"
# REST framework's throttle reads a key's request history from the cache, then writes it back:
# two workers reading the same history each let a request through on it (80 parallel requests
# on a 30/min budget: 52 passed). ScopedRateThrottle below reads and writes the history in one
# transaction holding the key's cache row locked (SELECT ... FOR UPDATE; on SQLite the
# transaction's write lock), so the requests of one key are counted one after the other. The
# lock lasts until the transaction ends: at once for most requests, at the end of the request
# when it runs in the Idempotency-Key's transaction (orders.middleware), so a caller's
# simultaneous keyed requests to expensive endpoints are counted, and answered, in turn.

_LOCK_ATTEMPTS = 3  # a row culled (volbal_cache is culled past MAX_ENTRIES) between add and lock


def _lock_row(cache, key: str, timeout: int) -> None:
    """Lock the cache row of ``key`` in the current transaction, creating it (an empty history)
    if it is missing."""
    alias = router.db_for_write(cache.cache_model_class)
    connection = connections[alias]
    table = connection.ops.quote_name(cache.cache_model_class._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    stored_key = cache.make_and_validate_key(key)
    with connection.cursor() as cursor:
        for _ in range(_LOCK_ATTEMPTS):
            cursor.execute(f"SELECT cache_key FROM {table} WHERE cache_key = %s{lock}",
                           [stored_key])
            if cursor.fetchone() is not None:
                return
            # a concurrent first request inserts too: ours waits for its commit, then fails
            # quietly (DatabaseCache.add), and the next SELECT locks the row it inserted
            cache.add(key, [], timeout)


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """REST framework's per-scope rate, counted atomically (see above). Rates and scopes as
    before: ``throttle_scope`` on the view, ``DEFAULT_THROTTLE_RATES`` in settings."""

    def allow_request(self, request, view):
        if not getattr(view, self.scope_attr, None):
            return True
        alias = router.db_for_write(self.cache.cache_model_class)
        with transaction.atomic(using=alias):
            return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        key = super().get_cache_key(request, view)
        if key is not None:
            _lock_row(self.cache, key, self.duration)
        return key

