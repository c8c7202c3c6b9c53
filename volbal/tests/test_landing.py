"""``/`` is a landing page: the service's name and version and links to the
docs, schema, admin and health; the admin's "view site" points to it; a stray trailing slash
answers a 404 naming the address without it."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import assert_error

pytestmark = pytest.mark.django_db


def test_the_landing_page_answers_json_with_name_version_and_links(client, settings):
    response = client.get("/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["name"] == "volbal"
    assert body["version"] == settings.SPECTACULAR_SETTINGS["VERSION"]
    assert {"docs", "schema", "admin", "health"} <= set(body["links"])
    for name, url in body["links"].items():
        answered = client.get(url)
        # the admin sends an anonymous visitor to its login page; everything else answers
        assert answered.status_code == (302 if name == "admin" else 200), (name, url)


def test_the_api_address_the_landing_page_gives_answers_the_same_index(settings):
    # a new user following "api": "/v1/" met a 404 there
    settings.DEBUG = False
    settings.LOCAL_MODE = False
    api = Client().get("/").json()["api"]
    response = Client().get(api)
    assert response.status_code == 200 and response.json() == Client().get("/").json()


def test_a_browser_gets_the_landing_page_as_html(client):
    response = client.get("/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<h1>volbal " in page
    for url in ("/v1/docs/", "/v1/schema/", "/admin/", "/healthz"):
        assert f'href="{url}"' in page
    assert "URLconf" not in page  # not Django's debug 404


def test_the_landing_page_answers_without_credentials_outside_local_mode(settings):
    settings.DEBUG = False
    settings.LOCAL_MODE = False
    assert Client().get("/").json()["name"] == "volbal"


def test_the_admin_view_site_link_points_to_the_landing_page(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(("sent", "meant"), [
    ("/v1/positions/", "/v1/positions"),
    ("/v1/positions/pos_x/events/", "/v1/positions/pos_x/events"),
    ("/v1/backtests/", "/v1/backtests"),
    ("/healthz/", "/healthz"),
    ("/v1/healthz/", "/v1/healthz"),
])
def test_a_stray_trailing_slash_answers_404_naming_the_address_without_it(api, settings, debug,
                                                                         sent, meant):
    settings.DEBUG = debug
    body = assert_error(api.get(sent), 404, "not_found")
    assert f"the address is {meant}," in body["message"]


def test_an_address_that_is_wrong_with_or_without_the_slash_is_a_plain_404(api):
    body = assert_error(api.get("/v1/nothing/"), 404, "not_found")
    assert "the address is" not in body["message"]
