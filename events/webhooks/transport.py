"""The one client for outbound webhook requests: the URL check (at registration and before
every request), the address check at connect time, Stripe-style signing, no redirects,
timeouts.

The address check runs on the addresses the host name resolves to when the request is made, and
the connection goes to the address that was checked (a name that resolves to a public address
for the check and to 127.0.0.1 a moment later, DNS rebinding, gets nowhere). Every resolved
address must be public (Sentry's rule): a name with one private record is refused.
``VOLBAL_WEBHOOKS_ALLOW_PRIVATE`` lifts the address check for development and tests."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SIGNATURE_HEADER = "Volbal-Signature"
EVENT_ID_HEADER = "Volbal-Event-Id"
EXCERPT_BYTES = 500


class UrlRefused(ValueError):
    """A URL that may not receive webhooks: ``code`` is the API's machine code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Volbal-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def address_refusal(address: str) -> str | None:
    """Why ``address`` may not be called (not a public unicast address), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("is_loopback", "is_link_local", "is_multicast", "is_private", "is_reserved",
                 "is_unspecified"):
        if getattr(ip, name):
            return f"{ip} is a {name.removeprefix('is_').replace('_', '-')} address"
    if not ip.is_global:  # 100.64.0.0/10 and other ranges not routed on the internet
        return f"{ip} is not a public address"
    return None


def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if it may receive webhooks: http or https, a host, no user name or password in
    it, a valid port, and (unless ``allow_private``) not a literal non-public address or a
    local name. Raises :class:`UrlRefused`. Names are resolved, and checked again, when a
    request is made."""
    if not isinstance(url, str) or not url or len(url) > 2000 or any(
            c.isspace() or ord(c) < 32 for c in url):
        raise UrlRefused("webhook_url_invalid", "The URL must be an http or https URL of at "
                                                "most 2000 characters, without spaces.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("webhook_url_invalid", f"The URL cannot be read: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("webhook_url_invalid", "The URL must start with http:// or https://.")
    if not parts.hostname:
        raise UrlRefused("webhook_url_invalid", "The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("webhook_url_invalid", "The URL must not carry a user name or "
                                                "password; authenticate with the signature.")
    if port == 0:
        raise UrlRefused("webhook_url_invalid", "The URL's port must be 1 to 65535.")
    if parts.fragment:
        raise UrlRefused("webhook_url_invalid", "The URL must not have a #fragment.")
    if allow_private:
        return url
    host = parts.hostname.rstrip(".").lower()
    try:
        why = address_refusal(host)
    except ValueError:
        why = None
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")) \
                or "." not in host:
            why = f"{host} is a local name"
    if why:
        raise UrlRefused("webhook_url_not_allowed", f"Webhooks go to public addresses only: "
                                                    f"{why}.")
    return url


@dataclass(frozen=True)
class Answer:
    """What one request got: a status (None when no answer came) or the error."""

    status: int | None
    error: str = ""
    excerpt: str = ""
    retry_after: float | None = None  # seconds, from a Retry-After header
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A connection to the first of the checked ``addresses`` that answers."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error or OSError("no address to connect to")


class _Pinned(http.client.HTTPConnection):
    """Connects to the addresses already checked, whatever the name resolves to now."""

    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self):
        self.sock = _connect(self._addresses, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self):
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float,
         allow_private: bool) -> Answer:
    """POST ``body`` to ``url``; never raises for the network's or the receiver's failures
    (they come back as an :class:`Answer` with ``error``); never follows a redirect."""
    started = time.monotonic()

    def answer(**kw) -> Answer:
        return Answer(duration_ms=int((time.monotonic() - started) * 1000), **kw)

    try:
        check_url(url, allow_private=allow_private)
    except UrlRefused as exc:
        return answer(status=None, error=f"refused: {exc}")
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return answer(status=None, error=f"cannot resolve {parts.hostname}: {exc}")
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        for address in addresses:
            why = address_refusal(address)
            if why:
                return answer(status=None, error=f"refused: {parts.hostname} resolves to "
                                                 f"{address}; {why}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    addresses = list(dict.fromkeys(addresses))
    conn = (_PinnedTLS if https else _Pinned)(parts.hostname, port, addresses, timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
        return answer(status=response.status, excerpt=excerpt,
                      retry_after=_retry_after(response.getheader("Retry-After")))
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        return answer(status=None, error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.close()
