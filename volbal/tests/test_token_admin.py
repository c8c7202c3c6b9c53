"""The API token screen: superusers only, and never a whole key."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


LIST = "admin:authtoken_tokenproxy_changelist"


def test_a_superuser_sees_only_a_prefix_of_each_key(admin_client, user):
    token = Token.objects.create(user=user)
    listing = admin_client.get(reverse(LIST))
    assert listing.status_code == 200
    text = listing.content.decode()
    assert f"{token.key[:8]}…" in text and "alice" in text
    assert token.key not in text
    change = admin_client.get(reverse("admin:authtoken_tokenproxy_change", args=[user.pk]))
    assert change.status_code == 200 and token.key not in change.content.decode()
    history = admin_client.get(reverse("admin:authtoken_tokenproxy_history", args=[user.pk]))
    assert history.status_code == 200 and token.key not in history.content.decode()


def test_creating_a_token_in_the_admin_never_shows_or_logs_the_key(admin_client, user):
    response = admin_client.post(reverse("admin:authtoken_tokenproxy_add"),
                                 {"user": user.pk}, follow=True)
    assert response.status_code == 200
    token = Token.objects.get(user=user)
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"{token.key[:8]}…" in m for m in messages), messages
    assert token.key not in response.content.decode()
    entry = LogEntry.objects.get()
    assert token.key not in entry.object_repr and entry.object_repr == f"{token.key[:8]}…"


def test_staff_who_are_not_superusers_see_no_tokens(django_user_model, user):
    Token.objects.create(user=user)
    staff = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="authtoken"))
    client = Client()
    client.force_login(staff)
    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(reverse("admin:authtoken_tokenproxy_change",
                              args=[user.pk])).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "tokenproxy" not in index.lower()
    assert client.post(reverse("admin:authtoken_tokenproxy_add"),
                       {"user": staff.pk}).status_code == 403
    assert not Token.objects.filter(user=staff).exists()
