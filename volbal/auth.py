"""Local mode: with DEBUG on, an anonymous request acts as one local user."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authentication import BaseAuthentication

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
