"""Admin login lockout (docs/auth.md#login-lockout): before, 40 wrong passwords in 9 s were followed
by a successful login. Now, after VOLBAL_LOGIN_FAILURE_LIMIT failures for one username from one
address, that pair is refused (429, a sentence saying why and for how long) even with the right
password, until the cool-off passes or an operator unlocks it in the admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-operator-password"
LOGIN = "/admin/login/"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", password=PASSWORD)


def attempt(password: str, address: str = "10.0.0.1", **extra):
    client = Client(REMOTE_ADDR=address, **extra)
    response = client.post(LOGIN, {"username": "operator", "password": password,
                                    "next": "/admin/"})
    return client, response


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def fail(times: int, address: str = "10.0.0.1", **extra) -> list[int]:
    """``times`` wrong passwords; their statuses (the form again: 200; the one reaching the
    limit already answers the lockout: 429)."""
    statuses = []
    for _ in range(times):
        client, response = attempt("wrong", address, **extra)
        assert not logged_in(client)
        statuses.append(response.status_code)
    return statuses


@override_settings(AXES_FAILURE_LIMIT=5)
def test_the_right_password_is_refused_after_the_failure_limit(operator):
    assert fail(5) == [200, 200, 200, 200, 429]
    client, response = attempt(PASSWORD)
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed logins" in text and "15 minutes" in text and "unlock" in text
    assert int(response["Retry-After"]) == 15 * 60
    assert not logged_in(client)


@override_settings(AXES_FAILURE_LIMIT=5)
def test_fewer_failures_than_the_limit_still_log_in_and_reset_the_count(operator):
    fail(4)
    client, response = attempt(PASSWORD)
    assert response.status_code == 302 and logged_in(client)
    fail(4)  # counted from zero again after the success
    assert attempt(PASSWORD)[1].status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_the_limit_is_per_username_and_address(operator, django_user_model):
    fail(3, "10.0.0.1")
    assert attempt(PASSWORD, "10.0.0.1")[1].status_code == 429
    assert attempt(PASSWORD, "10.0.0.2")[1].status_code == 302  # another address
    django_user_model.objects.create_superuser("second", password=PASSWORD)
    other = Client(REMOTE_ADDR="10.0.0.1").post(LOGIN, {"username": "second",
                                                        "password": PASSWORD})
    assert other.status_code == 302  # another username from the locked address


@override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=dt.timedelta(minutes=15))
def test_the_lockout_ends_after_the_cool_off(operator):
    from axes.models import AccessAttempt

    fail(3)
    assert attempt(PASSWORD)[1].status_code == 429
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    assert attempt(PASSWORD)[1].status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_an_operator_unlocks_from_the_admin(operator, django_user_model):
    from axes.models import AccessAttempt

    fail(3)
    assert attempt(PASSWORD)[1].status_code == 429
    colleague = django_user_model.objects.create_superuser("colleague", password=PASSWORD)
    admin = Client()
    admin.force_login(colleague)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "operator" in listing.content.decode()
    locked = AccessAttempt.objects.get(username="operator")
    response = admin.post("/admin/axes/accessattempt/", {
        "action": "delete_selected", "_selected_action": [locked.pk], "post": "yes"})
    assert response.status_code == 302
    assert attempt(PASSWORD)[1].status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_behind_the_proxy_the_forwarded_address_is_the_client(operator, settings):
    """deploy/nginx.conf sets X-Forwarded-For to the address it saw; with VOLBAL_PROXIES=1 the
    lockout counts that address, not nginx's own (which would lock everyone out together)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    fail(3, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert attempt(PASSWORD, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")[1].status_code \
        == 429
    assert attempt(PASSWORD, "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10")[1].status_code \
        == 302
