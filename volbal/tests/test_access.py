"""Who may call: another owner's ids answer 404; anonymous requests outside local mode answer 401
(the health endpoints excepted); DRF tokens and sessions authenticate; idempotency keys are
scoped to the caller."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from conftest import assert_error
from events.models import Event
from orders.models import Fill, IdempotencyRecord, Order
from positions.models import Position
from volbal.tests.live_server import call, live_server

pytestmark = pytest.mark.django_db

not_local = override_settings(LOCAL_MODE=False)


def state():
    return (Position.objects.count(), Order.objects.count(), Fill.objects.count(),
            Event.objects.count(), IdempotencyRecord.objects.count(),
            list(Position.objects.order_by("id").values_list("qty", "cash", "trigger_pct")),
            list(Order.objects.order_by("id").values_list("status", "filled_qty")))


@pytest.fixture
def theirs(other_user, make_position):
    """Another owner's position with an open order."""
    from orders.services import order_submit

    position = make_position(owner=other_user, qty=10, cash=10000)
    order = order_submit(position=position, side="BUY", qty=Decimal(1), idempotency_key="t")
    return position, order


def requests_on(position_id: str, order_id: str):
    """Every endpoint that names a position or an order: (method, url, body)."""
    p, o = position_id, order_id
    return [
        ("get", f"/v1/positions/{p}", None),
        ("patch", f"/v1/positions/{p}", {"trigger_pct": 0.05}),
        ("get", f"/v1/positions/{p}/events", None),
        ("get", f"/v1/positions/{p}/orders", None),
        ("post", f"/v1/positions/{p}/orders", {"side": "BUY", "qty": 1}),
        ("post", f"/v1/positions/{p}/evaluate", {"price": 50, "submit": True}),
        ("get", f"/v1/positions/{p}/dividends", None),
        ("post", f"/v1/positions/{p}/dividends",
         {"ex_date": "2030-01-02", "pay_date": "2030-01-10", "dps": 1}),
        ("get", f"/v1/orders/{o}", None),
        ("post", f"/v1/orders/{o}/fill", {"price": 10, "filled_qty": 1}),
        ("post", f"/v1/orders/{o}/cancel", None),
    ]


ENDPOINT_IDS = ["get", "patch", "events", "orders", "submit", "evaluate", "dividends",
                "announce", "order", "fill", "cancel"]


def send(client, method, url, body, **extra):
    return getattr(client, method)(url, body, format="json", HTTP_IDEMPOTENCY_KEY="k", **extra)


# --- another owner's ids ------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(ENDPOINT_IDS)), ids=ENDPOINT_IDS)
def test_another_owner_s_position_and_order_answer_404(api, theirs, index):
    position, order = theirs
    method, url, body = requests_on(position.id, order.id)[index]
    before = state()
    response = send(api, method, url, body)
    code = "order_not_found" if url.startswith("/v1/orders/") else "position_not_found"
    assert_error(response, 404, code)
    assert state() == before


@pytest.mark.parametrize("index", range(len(ENDPOINT_IDS)), ids=ENDPOINT_IDS)
def test_the_owner_reaches_the_same_endpoints(other_api, theirs, index):
    position, order = theirs
    method, url, body = requests_on(position.id, order.id)[index]
    response = send(other_api, method, url, body)
    assert response.status_code in (200, 201), response.content


def test_another_owner_s_positions_are_not_listed(api, other_api, theirs, make_position):
    mine = make_position()
    listed = [p["id"] for p in api.get("/v1/positions").json()["positions"]]
    assert listed == [mine.id]
    assert [p["id"] for p in other_api.get("/v1/positions").json()["positions"]] == [theirs[0].id]


def test_an_order_s_id_and_position_cannot_be_mixed_across_owners(api, theirs, make_position):
    """My position id with their order id, or the reverse, never reaches their order."""
    position, order = theirs
    mine = make_position()
    assert_error(api.post(f"/v1/orders/{order.id}/fill", {"price": 1, "filled_qty": 1},
                          format="json"), 404, "order_not_found")
    assert api.get(f"/v1/positions/{mine.id}/orders").json()["orders"] == []


# --- anonymous callers outside local mode ----------------------------------------------------


ANONYMOUS_REFUSED = [
    ("get", "/v1/positions", None),
    ("post", "/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1}),
    ("post", "/v1/prices", {"ticker": "ZIM", "price": 1, "ts": "2025-01-01T00:00:00Z"}),
    ("post", "/v1/backtests", {"sample": "IBM"}),
]


@not_local
@pytest.mark.parametrize("index", range(len(ENDPOINT_IDS)), ids=ENDPOINT_IDS)
def test_anonymous_requests_answer_401_outside_local_mode(theirs, index):
    position, order = theirs
    method, url, body = requests_on(position.id, order.id)[index]
    before = state()
    response = send(APIClient(), method, url, body)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert state() == before


@not_local
@pytest.mark.parametrize(("method", "url", "body"), ANONYMOUS_REFUSED)
def test_anonymous_lists_and_creates_answer_401_outside_local_mode(method, url, body):
    before = state()
    assert_error(send(APIClient(), method, url, body), 401, "not_authenticated")
    assert state() == before


@not_local
@pytest.mark.parametrize("url", ["/healthz", "/v1/healthz", "/readyz"])
def test_health_endpoints_answer_anonymous_callers(url):
    response = APIClient().get(url)
    assert response.status_code == 200 and response.json()["status"] == "ok"


@not_local
@pytest.mark.parametrize("url", ["/v1/schema/", "/v1/docs/"])
def test_schema_and_docs_need_credentials_outside_local_mode(url):
    assert APIClient().get(url).status_code in (401, 403)


@not_local
def test_an_invalid_token_answers_401(theirs):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.get("/v1/positions"), 401, "authentication_failed")


def test_an_invalid_token_answers_401_even_in_local_mode():
    """A wrong token is refused, not quietly treated as the local user."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.get("/v1/positions"), 401, "authentication_failed")


@not_local
def test_an_inactive_user_s_token_answers_401(user, api):
    user.is_active = False
    user.save()
    assert_error(api.get("/v1/positions"), 401, "authentication_failed")


def test_local_mode_lets_anonymous_callers_act_as_the_local_user():
    assert settings.LOCAL_MODE  # the test settings are the README's local mode
    response = APIClient().post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1},
                                format="json")
    assert response.status_code == 201
    assert Position.objects.get().owner.username == settings.LOCAL_USERNAME


# --- tokens and sessions ------------------------------------------------------------------------


@not_local
def test_a_token_from_drf_create_token_authenticates(user):
    out = io.StringIO()
    call_command("drf_create_token", user.username, stdout=out)
    token = out.getvalue().split()[2]  # "Generated token <key> for user alice"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    created = client.post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1}, format="json")
    assert created.status_code == 201
    assert Position.objects.get(pk=created.json()["id"]).owner == user
    assert client.get("/v1/positions").json()["positions"][0]["id"] == created.json()["id"]


@not_local
def test_a_session_authenticates(user, make_position):
    position = make_position()
    client = APIClient()
    assert client.login(username="alice", password="pw-alice-123")
    response = client.get(f"/v1/positions/{position.id}")
    assert response.status_code == 200 and response.json()["id"] == position.id
    submitted = client.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1},
                            format="json", HTTP_IDEMPOTENCY_KEY="s1")
    assert submitted.status_code == 201


@not_local
def test_force_login_authenticates(user, make_position):
    position = make_position()
    client = APIClient()
    client.force_login(user)
    assert client.get(f"/v1/positions/{position.id}/events").status_code == 200


@not_local
def test_a_session_write_without_the_csrf_token_is_refused(user, make_position):
    position = make_position()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    before = state()
    response = client.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1},
                           format="json", HTTP_IDEMPOTENCY_KEY="csrf")
    assert_error(response, 403, "permission_denied")
    assert state() == before
    # with the token from the cookie the same request goes through
    client.get("/admin/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1},
                           format="json", HTTP_IDEMPOTENCY_KEY="csrf", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content


# --- idempotency keys belong to their caller -----------------------------------------------


def test_the_same_key_and_body_from_two_users_are_two_requests(api, other_api):
    body = {"ticker": "ZIM", "qty": 0, "cash": 100}
    mine = api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    theirs = other_api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs


@pytest.mark.parametrize("scheme", ["token", "TOKEN", "Token"])
def test_the_token_scheme_is_case_insensitive_and_keys_stay_per_user(user, other_user, scheme):
    """DRF accepts ``token`` in any case; the idempotency scope must follow the same user, or
    one user's replay would hand another user's stored response (here: their position)."""
    from rest_framework.authtoken.models import Token

    body = {"ticker": "ZIM", "qty": 0, "cash": 100}
    clients = []
    for who in (user, other_user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {Token.objects.create(user=who).key}")
        clients.append(client)
    with not_local:
        first = clients[0].post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        second = clients[1].post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert Position.objects.get(pk=second.json()["id"]).owner == other_user
    # and in local mode, where anonymous callers share the local user, too
    third = APIClient().post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert third.status_code == 201 and third.json()["id"] not in (first.json()["id"],
                                                                  second.json()["id"])


def test_a_key_used_by_token_replays_for_the_same_user_by_session(user, api):
    body = {"ticker": "ZIM", "qty": 0, "cash": 100}
    first = api.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="mine")
    client = APIClient()
    client.force_login(user)
    again = client.post("/v1/positions", body, format="json", HTTP_IDEMPOTENCY_KEY="mine")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


@not_local
def test_an_anonymous_write_with_a_key_stores_nothing():
    before = state()
    response = APIClient().post("/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 1},
                                format="json", HTTP_IDEMPOTENCY_KEY="anon")
    assert_error(response, 401, "not_authenticated")
    assert state() == before


# --- production settings on a real server ------------------------------------------------------


def _create_token(env: dict) -> str:
    script = (
        "from django.contrib.auth import get_user_model;"
        "from rest_framework.authtoken.models import Token;"
        "u = get_user_model().objects.create_user('carol', password='pw-carol-123');"
        "print(Token.objects.create(user=u).key)"
    )
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], env=env,
                         cwd=settings.BASE_DIR, check=True, capture_output=True, text=True,
                         timeout=120)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.system
def test_production_settings_on_gunicorn_refuse_anonymous_callers(tmp_path):
    """DJANGO_DEBUG=0 as docs/operations.md#production runs it: nothing anonymous gets past the
    health endpoints; a token works."""
    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 30 + "-live-test-secret-key-0123456789",
           "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    tokens = {}
    with live_server(tmp_path, workers=1, env=env,
                     before_start=lambda full_env: tokens.update(carol=_create_token(full_env))
                     ) as base:
        for path in ("/healthz", "/v1/healthz", "/readyz"):
            assert call(base + path)[0] == 200, path
        status, body, headers = call(base + "/v1/positions", method="POST",
                                     body={"ticker": "ZIM", "qty": 0, "cash": 1},
                                     headers={"Idempotency-Key": "anon"})
        assert (status, body["detail"]) == (401, "not_authenticated")
        for path in ("/v1/positions", "/v1/positions/pos_x", "/v1/positions/pos_x/events",
                     "/v1/orders/ord_x"):
            status, body, _ = call(base + path)
            assert (status, body["detail"]) == (401, "not_authenticated"), path
        auth = {"Authorization": f"Token {tokens['carol']}"}
        status, created, _ = call(base + "/v1/positions", method="POST",
                                  body={"ticker": "ZIM", "qty": 0, "cash": 1}, headers=auth)
        assert status == 201
        status, listed, _ = call(base + "/v1/positions", headers=auth)
        assert status == 200 and [p["id"] for p in listed["positions"]] == [created["id"]]
        assert json.loads(json.dumps(listed))["next"] is None
