"""Admin login lockout (docs/auth.md#login-lockout) with django-axes: after
``VOLBAL_LOGIN_FAILURE_LIMIT`` wrong passwords for one username from one client address, that
pair is locked out for ``VOLBAL_LOGIN_COOLOFF_MINUTES`` (429 with ``Retry-After`` and a
sentence saying so), or until an operator deletes the access attempts in the admin (Axes,
"Access attempts": select, delete).

The client address is the one the throttles use (REST framework's ``get_ident``): the
connection's address, or with ``VOLBAL_PROXIES=1`` (behind deploy/nginx.conf, which sets
X-Forwarded-For to the address it saw) the proxy's entry of X-Forwarded-For, which a client
cannot forge."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpResponse
from rest_framework.throttling import BaseThrottle


def client_address(request) -> str:
    """The client's address, as every limit of this service counts it."""
    return BaseThrottle().get_ident(request)


def locked_out(request, original_response=None, credentials=None) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    text = (f"Too many failed logins for this username from your address "
            f"({settings.AXES_FAILURE_LIMIT} in a row): logging in is locked for {minutes} "
            f"minutes, or until an operator unlocks it in the admin (Axes, Access attempts).")
    response = HttpResponse(text, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check before the password one, for logins over HTTP (the admin's form).
    A login with no request (a test client's ``login()``, the shell) has no client address to
    lock: it goes straight to the password check instead of failing."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
