"""An ``Authorization`` header is never ignored (docs/auth.md#who-may-call): a token is
accepted as ``Token <key>`` or ``Bearer <key>`` (what generated clients send); any other header
answers 401 in every mode and changes nothing, never acting as the local user."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import assert_error
from positions.models import Position

pytestmark = pytest.mark.django_db

BODY = {"ticker": "ZIM", "qty": 0, "cash": 100}
REFUSED = ["Basic YWxpY2U6cHc=", "Bearer", "Bearer a b", "Digest x", "JWT abc", "",
           "Bearerabc", "Token"]


def client_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "Token"])
@pytest.mark.parametrize("local", [True, False], ids=["local-mode", "production"])
def test_a_bearer_or_token_header_acts_as_the_token_s_owner(user, scheme, local):
    """Before: in local mode a valid Bearer token landed the position under the local user."""
    key = Token.objects.create(user=user).key
    with override_settings(LOCAL_MODE=local):
        response = client_with(f"{scheme} {key}").post("/v1/positions", BODY, format="json")
        assert response.status_code == 201, response.content
        assert Position.objects.get(pk=response.json()["id"]).owner == user
        listed = client_with(f"{scheme} {key}").get("/v1/positions")
    assert [p["id"] for p in listed.json()["positions"]] == [response.json()["id"]]


@pytest.mark.parametrize("local", [True, False], ids=["local-mode", "production"])
def test_an_unknown_bearer_token_answers_401(local):
    with override_settings(LOCAL_MODE=local):
        response = client_with("Bearer not-a-real-token").post("/v1/positions", BODY,
                                                                 format="json")
    assert_error(response, 401, "authentication_failed")
    assert Position.objects.count() == 0


@pytest.mark.parametrize("header", REFUSED)
@pytest.mark.parametrize("local", [True, False], ids=["local-mode", "production"])
def test_an_authorization_header_the_service_does_not_accept_answers_401(header, local):
    """Before: local mode served these as the local user; production said no credentials were
    provided."""
    with override_settings(LOCAL_MODE=local):
        created = client_with(header).post("/v1/positions", BODY, format="json",
                                           HTTP_IDEMPOTENCY_KEY="k")
        listed = client_with(header).get("/v1/positions")
    body = assert_error(created, 401, "authentication_failed")
    assert "Bearer <token>" in body["message"]
    assert_error(listed, 401, "authentication_failed")
    assert Position.objects.count() == 0


def test_a_refused_header_is_refused_even_with_a_logged_in_session(user):
    client = APIClient()
    client.force_login(user)
    client.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6cHc=")
    assert_error(client.get("/v1/positions"), 401, "authentication_failed")


def test_the_health_endpoints_ignore_authorization():
    assert client_with("Basic x").get("/healthz").status_code == 200


def test_the_schema_documents_bearer_first_and_token_on_every_protected_operation():
    """A generated client picks the first scheme: Bearer, which the service now accepts."""
    schema = APIClient().get("/v1/schema/?format=json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["tokenAuth"] == {**schemes["tokenAuth"], "type": "apiKey", "in": "header",
                                    "name": "Authorization"}
    security = schema["paths"]["/v1/positions"]["post"]["security"]
    assert security[:2] == [{"bearerAuth": []}, {"tokenAuth": []}]
