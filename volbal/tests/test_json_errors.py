"""Every error under /v1/ is JSON, in local mode (DEBUG) too; a NUL in a path or cursor is a 4xx
before any database sees it; a cursor nested too deep is a 400."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from django.urls import path

from volbal import urls

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("v1/boom", boom), *urls.urlpatterns]


def assert_json_error(response, status: int, code: str):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"] == code and body["message"]
    assert response["X-Request-ID"]


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("url", ["/v1/nothing", "/v1/positions/", "/v1/orders/x/nothing"])
def test_unknown_addresses_answer_json_404(api, settings, debug, url):
    settings.DEBUG = debug
    assert_json_error(api.get(url), 404, "not_found")


@pytest.mark.parametrize("debug", [True, False])
def test_a_server_error_answers_json_500(settings, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = __name__
    response = Client(raise_request_exception=False).get("/v1/boom")
    assert_json_error(response, 500, "server_error")


@pytest.mark.parametrize(("method", "url"), [
    ("get", "/v1/positions/pos_a%00b"),
    ("get", "/v1/orders/ord_a%00b"),
    ("post", "/v1/orders/ord_a%00b/fill"),
    ("post", "/v1/orders/ord_a%00b/cancel"),
    ("post", "/v1/positions/pos_a%00b/orders"),
    ("post", "/v1/positions/pos_a%00b/evaluate"),
])
def test_a_nul_in_the_path_names_nothing(api, method, url):
    from orders.models import IdempotencyRecord

    if method == "get":
        response = api.get(url)
    else:
        response = api.post(url, data=json.dumps({"side": "BUY", "qty": 1}),
                            content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-nul")
    assert_json_error(response, 404, "not_found")
    assert not IdempotencyRecord.objects.exists()


def cursor_of(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    base64.urlsafe_b64encode(("[" * 1100 + "]" * 1100).encode()).decode(),
    cursor_of(["2020-01-01T00:00:00+00:00", "pos_a\u0000b"]),
])
def test_a_forged_cursor_is_a_400(api, make_position, cursor):
    position = make_position()
    for url in ("/v1/positions", f"/v1/positions/{position.id}/orders",
                f"/v1/positions/{position.id}/events"):
        response = api.get(f"{url}?cursor={cursor}")
        assert response.status_code == 400, (url, response.content[:200])
        assert response.json()["detail"] == "invalid_query"
