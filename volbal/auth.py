"""Who is calling: DRF token authentication (one lookup per request; ``Token <key>`` or
``Bearer <key>``) and local mode, where with DEBUG on an anonymous request acts as one local user.

An ``Authorization`` header is never ignored: one that is not an accepted scheme answers 401 in
every mode, so a client whose credentials the service does not understand is told, instead of
acting silently as the local user (or, in production, being told it sent none)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from volbal.rows import fetch_one

_local_user_id: int | None = None


def local_user():
    """The one user anonymous requests act as in local mode (created on first use)."""
    global _local_user_id
    User = get_user_model()
    if _local_user_id is not None:
        # the username too: a cached id may have been rolled back and handed to someone else
        user = User.objects.filter(pk=_local_user_id, username=settings.LOCAL_USERNAME).first()
        if user is not None:
            return user
    user, _ = User.objects.get_or_create(username=settings.LOCAL_USERNAME)
    _local_user_id = user.pk
    return user


class LocalModeAuthentication(BaseAuthentication):
    """Last in the chain: only reached when no token or session identified the caller."""

    def authenticate(self, request):
        if not settings.LOCAL_MODE:
            return None
        return (local_user(), None)


_UNSET = object()


# The schemes an API token may be sent with (any case): DRF's own and the one generated
# OpenAPI clients send by default.
TOKEN_SCHEMES = ("Token", "Bearer")


_HOW = "send 'Authorization: Bearer <token>' or 'Authorization: Token <token>'."


def _refused(why: str) -> authentication.exceptions.AuthenticationFailed:
    return authentication.exceptions.AuthenticationFailed(f"{why}; {_HOW}")


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication under either scheme of :data:`TOKEN_SCHEMES`, looked up once
    per request; any other ``Authorization`` header is refused (401), never ignored.

    The idempotency middleware must know the caller before DRF authenticates (the key's scope
    is per caller); it calls :meth:`authenticate_once` and the view's authentication reuses that
    answer (a user and token, ``None``, or the refusal) instead of querying again."""

    def authenticate(self, request):
        return self.authenticate_once(getattr(request, "_request", request))

    def _parse(self, http_request):
        """DRF's parsing with either keyword; a present header of another kind is refused."""
        if "authorization" not in http_request.headers:
            return None
        header = get_authorization_header(http_request)
        parts = header.split()
        schemes = {scheme.lower().encode() for scheme in TOKEN_SCHEMES}
        if not parts:
            raise _refused("An empty Authorization header is not accepted")
        if parts[0].lower() not in schemes:
            shown = parts[0].decode("latin-1")[:20]
            raise _refused(f"The {shown!r} authorization scheme is not accepted")
        if len(parts) != 2:
            raise _refused("The Authorization header must be the scheme, one space and the token")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise _refused("The token has characters no token has") from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key):
        """DRF's checks and messages; the two rows read without compiling querysets (every
        authenticated request pays for this)."""
        token = fetch_one(self.get_model(), key=key)
        user = None if token is None else fetch_one(get_user_model(), id=token.user_id)
        if user is None:
            raise authentication.exceptions.AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise authentication.exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token

    def authenticate_once(self, http_request):
        cached = getattr(http_request, "_volbal_token_auth", _UNSET)
        if cached is _UNSET:
            try:
                cached = self._parse(http_request)
            except authentication.exceptions.AuthenticationFailed as exc:
                cached = exc
            http_request._volbal_token_auth = cached
        if isinstance(cached, Exception):
            raise cached
        return cached


class TokenScheme(OpenApiAuthenticationExtension):
    """The schema documents both ways of sending a token, Bearer first: a client generated from
    it (openapi-python-client and the like) sends ``Authorization: Bearer <token>`` unchanged."""

    target_class = "volbal.auth.TokenAuthentication"
    name = ["bearerAuth", "tokenAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer",
             "description": "An API token (`manage.py drf_create_token USER`): "
                            "`Authorization: Bearer <token>`."},
            {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "The same token with DRF's prefix: `Authorization: Token <token>`."},
        ]

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"tokenAuth": []}]
