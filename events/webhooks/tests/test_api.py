"""/v1/webhooks (docs/webhooks.md): register (the secret shown once), read, change, disable,
delete, deliveries; bad input refused with machine codes and nothing stored; another owner's
endpoint is a 404; the schema documents it; the admin never shows the secret."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from conftest import assert_error
from events.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/volbal"


def register(api, **body):
    return api.post("/v1/webhooks", {"url": URL, **body}, format="json")


def test_register_shows_the_secret_once(api):
    response = register(api, event_types=["order_filled", "webhook_failed", "order_filled"],
                        description="fills")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["event_types"] == ["order_filled", "webhook_failed"]
    assert body["active"] is True and body["disabled_reason"] is None
    got = api.get(f"/v1/webhooks/{body['id']}").json()
    assert "secret" not in got and body["secret"] not in str(got)
    listed = api.get("/v1/webhooks").json()
    assert [w["id"] for w in listed["webhooks"]] == [body["id"]] and listed["next"] is None
    assert body["secret"] not in str(listed)
    assert body["secret"] not in str(WebhookEndpoint.objects.values().get())  # not stored
    assert register(api).json()["event_types"] == ["all"]
    assert register(api).json()["secret"] != body["secret"]


def test_a_replayed_registration_answers_the_endpoint_without_its_secret(api):
    from orders.models import IdempotencyRecord

    first = api.post("/v1/webhooks", {"url": URL}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    again = api.post("/v1/webhooks", {"url": URL}, format="json", HTTP_IDEMPOTENCY_KEY="w-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and "secret" not in again.json()
    assert WebhookEndpoint.objects.count() == 1
    assert first.json()["secret"].encode() not in bytes(
        IdempotencyRecord.objects.get().response_body)


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"url": "ftp://example.com/x"}, "webhook_url_invalid", "url"),
    ({"url": "example.com/x"}, "webhook_url_invalid", "url"),
    ({"url": "https://user:pw@example.com/x"}, "webhook_url_invalid", "url"),
    ({"url": "https://example.com/x y"}, "webhook_url_invalid", "url"),
    ({"url": "https://example.com:99999/x"}, "webhook_url_invalid", "url"),
    ({"url": "http://127.0.0.1:8000/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://localhost/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://[::1]/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://[::ffff:10.0.0.1]/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://169.254.169.254/latest"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://10.1.2.3/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://100.64.0.1/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://224.0.0.1/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://0.0.0.0/x"}, "webhook_url_not_allowed", "url"),
    ({"url": "http://intranet/x"}, "webhook_url_not_allowed", "url"),
    ({"url": URL, "event_types": ["order_filed"]}, "unknown_event_type", "event_types"),
    ({"url": URL, "event_types": []}, "validation_error", "event_types"),
    ({"url": URL, "secret": "mine"}, "validation_error", "secret"),
    ({"event_types": ["all"]}, "validation_error", "url"),
])
def test_bad_registrations_are_refused_and_store_nothing(api, body, code, field):
    error = assert_error(api.post("/v1/webhooks", body, format="json"), 400, code)
    assert field in error["fields"]
    assert WebhookEndpoint.objects.count() == 0


def test_private_addresses_may_be_registered_when_the_operator_allows(api, settings):
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True
    assert register(api, url="http://127.0.0.1:8000/x").status_code == 201


def test_change_disable_enable_delete(api):
    wid = register(api).json()["id"]
    changed = api.patch(f"/v1/webhooks/{wid}", {"event_types": ["split_applied"],
                                                 "url": "https://other.example.com/h"},
                        format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["event_types"] == ["split_applied"]
    assert changed.json()["url"] == "https://other.example.com/h"
    off = api.patch(f"/v1/webhooks/{wid}", {"active": False}, format="json").json()
    assert (off["active"], off["disabled_reason"]) == (False, "owner")
    on = api.patch(f"/v1/webhooks/{wid}", {"active": True}, format="json").json()
    assert (on["active"], on["disabled_reason"]) == (True, None)
    assert_error(api.patch(f"/v1/webhooks/{wid}", {"url": "http://10.0.0.1/"}, format="json"),
                 400, "webhook_url_not_allowed")
    assert_error(api.patch(f"/v1/webhooks/{wid}", {"event_types": ["nope"]}, format="json"),
                 400, "unknown_event_type")
    assert WebhookEndpoint.objects.get().url == "https://other.example.com/h"  # unchanged
    assert api.put(f"/v1/webhooks/{wid}", {"url": URL}, format="json").status_code == 405
    assert api.delete(f"/v1/webhooks/{wid}").status_code == 204
    assert_error(api.get(f"/v1/webhooks/{wid}"), 404, "webhook_not_found")


def test_another_owners_endpoint_is_not_found(api, other_api):
    wid = register(api).json()["id"]
    assert_error(other_api.get(f"/v1/webhooks/{wid}"), 404, "webhook_not_found")
    assert_error(other_api.patch(f"/v1/webhooks/{wid}", {"active": False}, format="json"),
                 404, "webhook_not_found")
    assert_error(other_api.delete(f"/v1/webhooks/{wid}"), 404, "webhook_not_found")
    assert_error(other_api.get(f"/v1/webhooks/{wid}/deliveries"), 404, "webhook_not_found")
    assert other_api.get("/v1/webhooks").json()["webhooks"] == []
    assert WebhookEndpoint.objects.get().active is True


def test_deliveries_start_empty_and_page(api):
    wid = register(api).json()["id"]
    body = api.get(f"/v1/webhooks/{wid}/deliveries").json()
    assert body == {"webhook_id": wid, "deliveries": [], "next": None}
    assert_error(api.get(f"/v1/webhooks/{wid}/deliveries?limit=0"), 400, "invalid_query")


def test_the_number_of_endpoints_is_bounded(api, settings):
    settings.VOLBAL_WEBHOOK_MAX_ENDPOINTS = 2
    assert register(api).status_code == register(api).status_code == 201
    assert_error(register(api), 409, "webhook_limit_reached")


def test_registering_is_throttled_per_user_as_an_expensive_endpoint(api, other_api,
                                                                   monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"expensive": "1/min"})
    wid = register(api).json()["id"]
    response = register(api)
    assert_error(response, 429, "throttled")
    assert response.headers["Retry-After"]
    assert_error(api.patch(f"/v1/webhooks/{wid}", {"description": "x"}, format="json"), 429,
                 "throttled")
    assert api.get("/v1/webhooks").status_code == 200  # reading is not throttled
    assert register(other_api).status_code == 201
    assert WebhookEndpoint.objects.count() == 2


def test_the_schema_documents_the_webhook_endpoints(api):
    schema = api.get("/v1/schema/?format=json").json()
    paths = schema["paths"]
    assert set(paths["/v1/webhooks"]) >= {"get", "post"}
    assert set(paths["/v1/webhooks/{id}"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/v1/webhooks/{id}/deliveries"]
    post = paths["/v1/webhooks"]["post"]["responses"]
    assert "webhook_url_not_allowed" in post["400"]["description"]
    assert "unknown_event_type" in post["400"]["description"]
    assert {"201", "409", "429"} <= set(post)
    assert "webhook_not_found" in paths["/v1/webhooks/{id}"]["get"]["responses"]["404"][
        "description"]
    created = schema["components"]["schemas"]["WebhookCreated"]["properties"]
    assert "secret" in created
    assert "secret" not in schema["components"]["schemas"]["Webhook"]["properties"]


def test_the_admin_never_shows_the_secret_and_acts_through_the_services(client, api,
                                                                         django_user_model):
    body = register(api).json()
    staff = django_user_model.objects.create_user(username="op", password="pw-op-12345",
                                                  is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="events", codename__contains="webhook"))
    client.force_login(staff)
    page = client.get(f"/admin/events/webhookendpoint/{body['id']}/change/")
    assert page.status_code == 200
    assert body["secret"] not in page.content.decode()
    assert body["secret"] not in client.get("/admin/events/webhookendpoint/").content.decode()
    client.post("/admin/events/webhookendpoint/", {"action": "disable",
                                                   "_selected_action": [body["id"]]})
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.active, endpoint.disabled_reason) == (False, "operator")
    client.post("/admin/events/webhookendpoint/", {"action": "retry",
                                                   "_selected_action": [body["id"]]})
    endpoint.refresh_from_db()
    assert (endpoint.active, endpoint.disabled_reason) == (True, "")
    assert client.get("/admin/events/webhookdelivery/").status_code == 200

    # added in the admin: the secret is in the message after saving, once
    added = client.post("/admin/events/webhookendpoint/add/", {
        "owner": staff.pk, "url": "https://h.example.com/x", "event_types": "order_filled, all",
        "description": ""}, follow=True)
    assert added.status_code == 200
    new = WebhookEndpoint.objects.get(url="https://h.example.com/x")
    assert new.event_types == ["all"] and new.owner == staff
    assert "whsec_" in added.content.decode()
    page = client.get(f"/admin/events/webhookendpoint/{new.pk}/change/").content.decode()
    assert "whsec_" not in page
    refused = client.post("/admin/events/webhookendpoint/add/", {
        "owner": staff.pk, "url": "http://127.0.0.1/x", "event_types": "all"})
    assert refused.status_code == 200 and "public addresses only" in refused.content.decode()
