"""alpaca-py's REST clients made fit for a service: a timeout on every request, a 429 waited out
until its reset (within a bound), JSON numbers read as exact Decimals, and an error's parts.

alpaca-py's ``RESTClient`` sends its requests through ``client._session`` with no timeout and
retries the status codes in ``client._retry_codes`` (429 and 504) ``client._retry`` times,
``client._retry_wait`` seconds apart, whatever the answer says about when to come back; its
constructors take none of these. :func:`configure` sets them on a client (the attributes the
broker adapter sets too: orders/brokers/alpaca.py, pinned alpaca-py): the session here waits a
429 out itself, by the answer's ``Retry-After`` or ``X-RateLimit-Reset``, so the SDK is left to
retry only 504. Waiting inside the session keeps the SDK's paging where it was: a rate limit on
the fifth page does not start the listing over.
"""

from __future__ import annotations

import email.utils
import functools
import json
import time
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus

import requests

TIMEOUT_SECONDS = 10  # per HTTP request (the SDK sets none)
SDK_RETRY_ATTEMPTS = 3  # a 504 is retried by the SDK this many times (its default)
SDK_RETRY_WAIT_SECONDS = 3
RATE_LIMIT_RETRIES = 2  # a 429 is waited out and asked again at most this many times
RATE_LIMIT_MAX_WAIT_SECONDS = 30  # a reset further away than this is not waited for
RATE_LIMIT_DEFAULT_WAIT_SECONDS = 3  # a 429 that says nothing of its reset


def reset_in(response: requests.Response, now: Callable[[], float] = time.time
             ) -> float | None:
    """Seconds until a 429's limit resets, as the answer says: ``Retry-After`` (seconds or an
    HTTP date), else ``X-RateLimit-Reset`` (Unix seconds, Alpaca's); never negative. None when
    it says neither."""
    after = (response.headers.get("Retry-After") or "").strip()
    if after:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                return max(0.0, email.utils.parsedate_to_datetime(after).timestamp() - now())
            except (TypeError, ValueError):
                pass
    reset = (response.headers.get("X-RateLimit-Reset") or "").strip()
    if reset:
        try:
            return max(0.0, float(reset) - now())
        except ValueError:
            pass
    return None


def rate_limit_wait(response: requests.Response, now: Callable[[], float] = time.time
                    ) -> float:
    """How long to wait out a 429: until its reset, or the default when it does not say."""
    wait = reset_in(response, now)
    return float(RATE_LIMIT_DEFAULT_WAIT_SECONDS) if wait is None else wait


class Session(requests.Session):
    """A requests session with a timeout on every request, 429s waited out (at most
    ``rate_limit_retries`` times, each wait at most ``max_wait`` seconds, else the 429 is
    answered as is), and JSON bodies decoded with exact ``Decimal`` numbers."""

    def __init__(self, *, timeout: float = TIMEOUT_SECONDS,
                 rate_limit_retries: int = RATE_LIMIT_RETRIES,
                 max_wait: float = RATE_LIMIT_MAX_WAIT_SECONDS,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.time):
        super().__init__()
        self.timeout, self.rate_limit_retries, self.max_wait = timeout, rate_limit_retries, max_wait
        self.sleep, self.now = sleep, now

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        for attempt in range(self.rate_limit_retries + 1):
            response = super().request(method, url, *args, **kwargs)
            if response.status_code != 429 or attempt == self.rate_limit_retries:
                break
            wait = rate_limit_wait(response, self.now)
            if wait > self.max_wait:
                break
            response.close()
            self.sleep(wait)
        # The SDK reads the body with response.json(): numbers become Decimals, not floats.
        response.json = functools.partial(requests.Response.json, response,
                                          parse_float=Decimal)
        return response


def configure(client, session: Session, *, retry_attempts: int = SDK_RETRY_ATTEMPTS,
              retry_wait: float = SDK_RETRY_WAIT_SECONDS):
    """``client`` (any alpaca-py RESTClient) sending through ``session``, retrying only 504
    itself (the session waits 429s out), ``retry_attempts`` times ``retry_wait`` apart."""
    client._session = session
    client._retry, client._retry_wait, client._retry_codes = retry_attempts, retry_wait, [504]
    return client


def api_error_parts(exc) -> tuple[int | None, str, str]:
    """(HTTP status, Alpaca's code, Alpaca's message) of an alpaca-py ``APIError``. A body that
    is not Alpaca's JSON (a proxy's error page, a replay's diagnostics) is not quoted: the
    message is the status's reason phrase and says so; Alpaca's own message is cut to 200
    characters at a word."""
    status = exc.status_code
    try:
        body = json.loads(str(exc))
        return status, str(body.get("code", "")), short(str(body.get("message", "")))
    except (ValueError, AttributeError):
        try:
            reason = HTTPStatus(status).phrase
        except (ValueError, TypeError):
            reason = "no HTTP status"
        return status, "", f"{reason}; the answer is not Alpaca's JSON error"


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters at a word (with an ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + " …"
