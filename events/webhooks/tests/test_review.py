"""The webhooks review (an attacker's and a new user's): the admin's add form at the endpoint
limit; URLs whose host is a non-public address in a form the resolver reads (shorthand IPv4,
IDNA) or a name that resolves to one; IPv6 ranges that reach IPv4 or local networks; the owner
never shown which address a name resolved to; a new URL ends a delivery's backoff."""

from __future__ import annotations

import socket

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission

from conftest import assert_error
from events.models import Event
from events.webhooks import delivery, services, transport
from events.webhooks.models import WebhookDelivery, WebhookEndpoint
from events.webhooks.tests.receiver import Receiver

URL = "https://hooks.example.com/volbal"


def register(api, url):
    return api.post("/v1/webhooks", {"url": url}, format="json")


@pytest.fixture
def dns(monkeypatch):
    """Names the test resolves: {name: [addresses]} (an empty list: does not resolve); other
    names as the machine resolves them."""
    names: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host in names:
            if not names[host]:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [info for a in names[host] for info in real(a, port, *args, **kwargs)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return names


# --- 1. the admin's add form at the limit ---------------------------------------------------


@pytest.mark.django_db
def test_the_admin_add_form_at_the_limit_shows_only_the_error_and_adds_and_logs_nothing(
        client, django_user_model, settings):
    settings.VOLBAL_WEBHOOK_MAX_ENDPOINTS = 1
    staff = django_user_model.objects.create_user(username="op", password="pw-op-12345",
                                                  is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="events", codename__contains="webhook"))
    client.force_login(staff)
    services.webhook_create(owner=staff, url=URL, event_types=["all"])
    page = client.post("/admin/events/webhookendpoint/add/", {
        "owner": staff.pk, "url": "https://h.example.com/x", "event_types": "all",
        "description": ""}, follow=True)
    text = page.content.decode()
    assert page.status_code == 200 and page.redirect_chain == []  # the form, shown again
    assert "the most allowed; delete one first" in text
    assert "was added successfully" not in text and "whsec_" not in text
    assert WebhookEndpoint.objects.count() == 1
    assert not LogEntry.objects.filter(action_flag=ADDITION).exists()
    # below the limit the same form adds (and logs the addition)
    settings.VOLBAL_WEBHOOK_MAX_ENDPOINTS = 2
    added = client.post("/admin/events/webhookendpoint/add/", {
        "owner": staff.pk, "url": "https://h.example.com/x", "event_types": "all",
        "description": ""}, follow=True)
    assert "was added successfully" in added.content.decode()
    assert WebhookEndpoint.objects.count() == 2
    assert LogEntry.objects.filter(action_flag=ADDITION).count() == 1


# --- 2. hosts that are non-public addresses in disguise, or resolve to one ------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "http://127.1/", "http://0x7f.1/", "http://0177.0.0.1/", "http://2130706433/",
    "http://0x7f000001/", "http://①②⑦.0.0.1/", "http://127.0.0.1./", "http://10.1/x",
    "http://LOCALHOST./", "http://ｌｏｃａｌｈｏｓｔ/",
])
def test_non_public_addresses_in_any_form_the_resolver_reads_are_refused(api, url):
    error = assert_error(register(api, url), 400, "webhook_url_not_allowed")
    assert "public addresses only" in error["fields"]["url"]
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.django_db
def test_a_name_resolving_to_a_non_public_address_is_refused_without_saying_which(api, dns):
    dns["localtest.me"] = ["127.0.0.1"]
    dns["mixed.example.com"] = ["93.184.215.14", "10.0.0.7"]  # one private record is enough
    for url in ("http://localtest.me/", "https://mixed.example.com:8443/h"):
        error = assert_error(register(api, url), 400, "webhook_url_not_allowed")
        assert "127.0.0.1" not in str(error) and "10.0.0.7" not in str(error)
    wid = register(api, URL).json()["id"]
    assert_error(api.patch(f"/v1/webhooks/{wid}", {"url": "http://localtest.me/x"},
                           format="json"), 400, "webhook_url_not_allowed")
    assert WebhookEndpoint.objects.get().url == URL
    # public, or not resolving (yet): accepted; the connect-time check decides each request
    dns["public.example.com"] = ["93.184.215.14"]
    dns["not-yet.example.com"] = []
    assert register(api, "https://public.example.com/h").status_code == 201
    assert register(api, "https://not-yet.example.com/h").status_code == 201


@pytest.mark.django_db
def test_the_operator_may_allow_private_names(api, dns, settings):
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True
    dns["localtest.me"] = ["127.0.0.1"]
    assert register(api, "http://localtest.me:8000/x").status_code == 201
    assert register(api, "http://127.1:8000/x").status_code == 201


# --- 4. IPv6 ranges that reach IPv4 or local networks -----------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("host", [
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "fec0::1",  # site-local (deprecated; ipaddress calls it global)
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::808:808",  # NAT64 of a public address: still refused
])
def test_ipv6_tunnel_and_site_local_addresses_are_refused(api, host):
    assert_error(register(api, f"http://[{host}]/h"), 400, "webhook_url_not_allowed")


def test_one_address_policy_at_registration_and_at_connect_time(dns):
    assert transport.address_refusal("2002:808:808::1") is None  # 6to4 of 8.8.8.8: public
    assert transport.address_refusal("2606:4700::1111") is None
    dns["six.example.com"] = ["fec0::1"]
    dns["tunnel.example.com"] = ["2002:7f00:1::"]
    for name in dns:
        answer = transport.post(f"http://{name}/h", b"{}", {}, timeout=2, allow_private=False)
        assert answer.status is None and answer.error.startswith(f"refused: {name} resolves")
    answer = transport.post("http://①②⑦.0.0.1/h", b"{}", {}, timeout=2, allow_private=False)
    assert answer.status is None and answer.error.startswith("refused:")


# --- 3. the owner is not told what a name resolved to; operators are --------------------------


@pytest.mark.usefixtures("transactional_db")
def test_the_owner_sees_a_generic_reason_and_the_operator_the_detail(
        api, dns, settings, client, django_user_model):
    receiver = Receiver().start()
    try:
        settings.VOLBAL_WEBHOOK_RETRY_HOURS = 0  # the first failure gives up: an alert
        settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True
        dns["inside.example.com"] = ["127.0.0.1"]
        dns["gone.example.com"] = []
        inside = register(api, f"http://inside.example.com:{receiver.port}/h").json()["id"]
        gone = register(api, "http://gone.example.com/h").json()["id"]
        settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = False
        assert api.post("/v1/positions", {"ticker": "ZZ0", "qty": 10, "cash": 1000},
                        format="json").status_code == 201
        delivery.deliver_pass()
        assert receiver.requests == []
    finally:
        receiver.stop()
    shown = {}
    for wid in (inside, gone):
        [d] = api.get(f"/v1/webhooks/{wid}/deliveries").json()["deliveries"]
        assert d["last_error"] == d["attempts"][0]["error"]
        shown[wid] = d["last_error"]
    assert shown[inside] == ("webhook_url_not_allowed: the URL's host is not a public address;"
                             " nothing was sent.")
    assert shown[gone] == "webhook_host_unresolvable: the URL's host name did not resolve."
    # the alerts the owner receives say no more
    alerts = Event.objects.filter(type="webhook_failed")
    assert alerts.count() == 2
    for alert in alerts:
        text = f"{alert.message} {alert.inputs} {alert.outputs}"
        assert "127.0.0.1" not in text and "resolves to" not in text
        assert "not known" not in text
    # the operator sees where the name went
    staff = django_user_model.objects.create_superuser(username="op", password="pw-op-12345")
    client.force_login(staff)
    detail = WebhookDelivery.objects.get(endpoint_id=inside)
    assert "resolves to 127.0.0.1" in detail.last_error
    page = client.get(f"/admin/events/webhookdelivery/{detail.pk}/change/").content.decode()
    assert "resolves to 127.0.0.1" in page


# --- 5. a new URL ends the backoff ----------------------------------------------------------


@pytest.mark.usefixtures("transactional_db")
def test_changing_the_url_retries_a_delivery_in_backoff_at_once(api, settings):
    settings.VOLBAL_WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver().start()
    try:
        receiver.answer = lambda request: 200 if request["path"] == "/fixed" else 500
        wid = register(api, receiver.url).json()["id"]
        assert api.post("/v1/positions", {"ticker": "ZZ0", "qty": 10, "cash": 1000},
                        format="json").status_code == 201
        delivery.deliver_pass()
        assert api.get(f"/v1/webhooks/{wid}").json()["next_attempt_at"] is not None
        delivery.deliver_pass()  # waiting: not tried again
        assert len(receiver.requests) == 1
        # the same URL again changes nothing
        same = api.patch(f"/v1/webhooks/{wid}", {"url": receiver.url}, format="json").json()
        assert same["next_attempt_at"] is not None
        moved = api.patch(f"/v1/webhooks/{wid}", {"url": receiver.url.replace("/hook", "/fixed")},
                          format="json").json()
        assert moved["next_attempt_at"] is None
        delivery.deliver_pass()  # no clock moved: due now
    finally:
        receiver.stop()
    assert [r["path"] for r in receiver.requests] == ["/hook", "/fixed"]
    d = WebhookDelivery.objects.get()
    assert (d.status, d.attempt_count) == ("succeeded", 2)
