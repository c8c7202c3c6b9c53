"""Who is calling: DRF token authentication (one lookup per request) and local mode, where with
DEBUG on an anonymous request acts as one local user."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication
from rest_framework.authentication import BaseAuthentication

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


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, looked up once per request.

    The idempotency middleware must know the caller before DRF authenticates (the key's scope
    is per caller); it calls :meth:`authenticate_once` and the view's authentication reuses that
    answer (a user and token, ``None``, or the refusal) instead of querying again."""

    def authenticate(self, request):
        return self.authenticate_once(getattr(request, "_request", request))

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
                cached = super().authenticate(http_request)
            except authentication.exceptions.AuthenticationFailed as exc:
                cached = exc
            http_request._volbal_token_auth = cached
        if isinstance(cached, Exception):
            raise cached
        return cached
