"""The one client for outbound webhook requests: the URL check (at registration and before
every request), the address check at connect time, Stripe-style signing, no redirects,
timeouts: one per read and a total deadline per request, and a cap on the bytes read.

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
# The most bytes read of an answer (status line, headers and the excerpt of the body): a
# receiver cannot make the worker read without end.
RESPONSE_MAX_BYTES = 64 * 1024


class UrlRefused(ValueError):
    """A URL that may not receive webhooks: ``code`` is the API's machine code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Volbal-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# Tunnels and translators whose other end is an IPv4 address chosen by whoever writes the
# URL: refused whole (NAT64 64:ff9b::/96 and 64:ff9b:1::/48, Teredo 2001::/32).
_TUNNELS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48",
                                                     "2001::/32"))


def address_refusal(address) -> str | None:
    """Why ``address`` may not be called (not a public unicast address), or None: the one
    address policy, used at registration and at connect time."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:  # 2002::/16 carries the IPv4 address it reaches
            why = address_refusal(ip.sixtofour)
            if why:
                return f"{ip} is a 6to4 address for {ip.sixtofour}, which is not public"
        elif ip.is_site_local:  # fec0::/10: deprecated, yet ipaddress calls it global
            return f"{ip} is a site-local address"
        elif any(ip in net for net in _TUNNELS):
            return f"{ip} is a NAT64 or Teredo address"
    for name in ("is_loopback", "is_link_local", "is_multicast", "is_private", "is_reserved",
                 "is_unspecified"):
        if getattr(ip, name):
            return f"{ip} is a {name.removeprefix('is_').replace('_', '-')} address"
    if not ip.is_global:  # 100.64.0.0/10 and other ranges not routed on the internet
        return f"{ip} is not a public address"
    return None


def host_normalised(host: str) -> str:
    """``host`` as the resolver gets it from the HTTP client: IDNA-encoded (Python's codec,
    which socket uses: ``①②⑦.0.0.1`` is ``127.0.0.1``), lower case, without a final dot, and
    an IPv4 address in the shorthand ``inet_aton`` reads (``127.1``, ``0x7f.1``,
    ``0177.0.0.1``, ``2130706433``) written out. Raises :class:`UrlRefused`."""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UrlRefused("webhook_url_invalid", "The URL's host is not a valid name.") from None
    ascii_host = ascii_host.rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(ascii_host.split("%", 1)[0]))
    except ValueError:
        pass
    if ascii_host and ":" not in ascii_host:
        try:
            return socket.inet_ntoa(socket.inet_aton(ascii_host))
        except OSError:
            pass
    return ascii_host


def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as the request would connect (raises OSError or
    UnicodeError when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, *, allow_private: bool, resolve_name: bool = False) -> str:
    """``url`` if it may receive webhooks: http or https, a host, no user name or password in
    it, a valid port, and (unless ``allow_private``) not a non-public address in any form the
    resolver reads, not a local name, and (``resolve_name``, at registration) not a name that
    resolves to a non-public address now. A name that does not resolve now is accepted:
    nothing is sent to it until it does, and then to public addresses only. Raises
    :class:`UrlRefused`. Names are resolved, and checked again, when a request is made."""
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
    host = host_normalised(parts.hostname)
    if allow_private:
        return url
    try:
        why = address_refusal(host)
        if why and host != parts.hostname.rstrip(".").lower():
            why = f"{parts.hostname} is {host}; {why}"
    except ValueError:
        why = None
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")) \
                or "." not in host:
            why = f"{host} is a local name"
        elif resolve_name:
            try:
                addresses = resolve(host, port or (443 if parts.scheme == "https" else 80))
            except (OSError, UnicodeError):
                addresses = []
            if any(address_refusal(a) for a in addresses):
                # which address is not said: the owner learns nothing of the internal DNS
                why = f"{host} resolves to an address that is not public"
    if why:
        raise UrlRefused("webhook_url_not_allowed", f"Webhooks go to public addresses only: "
                                                    f"{why}.")
    return url


# What the owner is told of an attempt that got no answer: a code and a sentence, never the
# addresses a name resolved to (the detail, for operators, is in the admin).
PUBLIC_ERRORS = {
    "refused": "webhook_url_not_allowed: the URL's host is not a public address; nothing was "
               "sent.",
    "unresolvable": "webhook_host_unresolvable: the URL's host name did not resolve.",
    "timeout": "timeout: no whole answer within the timeout or the delivery's deadline.",
    "tls": "tls_failed: the TLS handshake or the certificate check failed.",
    "connection": "connection_failed: the connection could not be made or was broken.",
    "too_large": f"answer_too_large: the answer was longer than {RESPONSE_MAX_BYTES} bytes.",
}


def public_error(error: str) -> str:
    """The owner's view of an attempt's ``error`` (see :data:`PUBLIC_ERRORS`); "" for none."""
    if not error:
        return ""
    if error.startswith("refused:"):
        kind = "refused"
    elif error.startswith("cannot resolve"):
        kind = "unresolvable"
    elif "timeout" in error.lower() or "timed out" in error.lower():
        kind = "timeout"
    elif "answer too large" in error:
        kind = "too_large"
    elif error.startswith(("SSL", "CertificateError")) or "certificate" in error.lower():
        kind = "tls"
    else:
        kind = "connection"
    return PUBLIC_ERRORS[kind]


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


_PAST_DEADLINE = "timed out: no whole answer within the delivery's deadline"


class _Bounded:
    """A socket whose every read and write waits at most the per-read timeout and never past
    the request's deadline, and which reads at most ``RESPONSE_MAX_BYTES``. A per-read timeout
    alone lets a receiver that trickles a byte every few seconds hold the worker for ever."""

    _deadline = 0.0
    _per_read = 0.0
    _left_to_read = RESPONSE_MAX_BYTES

    def _bound(self, deadline: float, per_read: float) -> None:
        self._deadline, self._per_read = deadline, per_read
        self._left_to_read = RESPONSE_MAX_BYTES

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(_PAST_DEADLINE)
        self.settimeout(min(self._per_read, left))

    def _timed(self, operation, *args):
        try:
            return operation(*args)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                raise TimeoutError(_PAST_DEADLINE) from None
            raise

    def _read_size(self, size: int) -> int:
        if self._left_to_read <= 0:
            raise ConnectionAbortedError(f"answer too large: more than {RESPONSE_MAX_BYTES} "
                                         "bytes")
        self._arm()
        return min(size or self._left_to_read, self._left_to_read)

    def recv_into(self, buffer, nbytes=0, flags=0):
        n = self._timed(super().recv_into, buffer, self._read_size(nbytes or len(buffer)),
                        flags)
        self._left_to_read -= n
        return n

    def recv(self, bufsize, flags=0):
        data = self._timed(super().recv, self._read_size(bufsize), flags)
        self._left_to_read -= len(data)
        return data

    def send(self, data, flags=0):
        self._arm()
        return self._timed(super().send, data, flags)

    def sendall(self, data, flags=0):
        self._arm()
        return self._timed(super().sendall, data, flags)


class _BoundedSocket(_Bounded, socket.socket):
    pass


class _BoundedSSLSocket(_Bounded, ssl.SSLSocket):
    pass


def _connect(addresses: list[str], port: int, timeout: float, deadline: float
             ) -> _BoundedSocket:
    """A connection to the first of the checked ``addresses`` that answers, in time."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(_PAST_DEADLINE)
        try:
            plain = socket.create_connection((address, port), min(timeout, left))
        except OSError as exc:
            error = exc
            continue
        sock = _BoundedSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        sock._bound(deadline, timeout)
        return sock
    raise error


class _Pinned(http.client.HTTPConnection):
    """Connects to the addresses already checked, whatever the name resolves to now."""

    def __init__(self, host, port, addresses, timeout, deadline):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._deadline = deadline

    def connect(self):
        self.sock = _connect(self._addresses, self.port, self.timeout, self._deadline)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host, port, addresses, timeout, deadline):
        context = ssl.create_default_context()
        context.sslsocket_class = _BoundedSSLSocket
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses
        self._deadline = deadline

    def connect(self):
        sock = _connect(self._addresses, self.port, self.timeout, self._deadline)
        tls = self._context.wrap_socket(sock, server_hostname=self.host,
                                        do_handshake_on_connect=False)
        tls._bound(self._deadline, self.timeout)
        tls.settimeout(max(0.001, min(self.timeout, self._deadline - time.monotonic())))
        tls.do_handshake()
        self.sock = tls


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
         allow_private: bool, deadline: float | None = None) -> Answer:
    """POST ``body`` to ``url``; never raises for the network's or the receiver's failures
    (they come back as an :class:`Answer` with ``error``); never follows a redirect. Each
    connect and read waits at most ``timeout`` seconds, the whole request (name resolution
    aside) at most ``deadline`` seconds (default ``timeout``)."""
    started = time.monotonic()
    end = started + (deadline if deadline is not None else timeout)

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
        addresses = resolve(host_normalised(parts.hostname), port)
    except (OSError, UnicodeError, UrlRefused) as exc:
        return answer(status=None, error=f"cannot resolve {parts.hostname}: {exc}")
    if not allow_private:
        for address in addresses:
            why = address_refusal(address)
            if why:
                return answer(status=None, error=f"refused: {parts.hostname} resolves to "
                                                 f"{address}; {why}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = (_PinnedTLS if https else _Pinned)(parts.hostname, port, addresses, timeout, end)
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
