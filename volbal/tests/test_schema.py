"""The OpenAPI schema validates without warnings and documents headers and error codes; the docs
are served from the package, not a CDN; production settings pass ``check --deploy``."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """``manage.py spectacular --validate --fail-on-warn`` into a file, parsed."""
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path),
                 stderr=io.StringIO())
    return yaml.safe_load(path.read_text())


def operation(schema, path: str, method: str) -> dict:
    return schema["paths"][path][method]


def documented_codes(op: dict, status: int) -> set[str]:
    description = op["responses"][str(status)]["description"]
    return set(re.findall(r"`([a-z_]+)`", description)) - {"detail"}


def test_spectacular_validates_without_warnings(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "volbal API"


def test_every_endpoint_is_documented(schema):
    expected = {
        ("/v1/positions", "get"), ("/v1/positions", "post"),
        ("/v1/positions/{id}", "get"), ("/v1/positions/{id}", "patch"),
        ("/v1/positions/{id}/events", "get"),
        ("/v1/positions/{id}/orders", "get"), ("/v1/positions/{id}/orders", "post"),
        ("/v1/positions/{id}/evaluate", "post"), ("/v1/positions/{id}/ladder", "get"),
        ("/v1/orders/{id}", "get"), ("/v1/orders/{id}/fill", "post"),
        ("/v1/orders/{id}/cancel", "post"),
    }
    documented = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert expected <= documented, expected - documented


def test_order_submission_documents_the_required_idempotency_key(schema):
    op = operation(schema, "/v1/positions/{id}/orders", "post")
    header = next(p for p in op["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True
    assert "255" in header["description"] and "409" in header["description"]


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/orders/{id}/fill", "post"), ("/v1/orders/{id}/cancel", "post"),
     ("/v1/positions", "post"), ("/v1/positions/{id}", "patch")],
)
def test_other_writes_document_an_optional_idempotency_key(schema, path, method):
    header = next(p for p in operation(schema, path, method)["parameters"]
                  if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header.get("required", False) is False


def test_order_submission_documents_its_statuses_and_error_codes(schema):
    op = operation(schema, "/v1/positions/{id}/orders", "post")
    assert {"200", "201", "400", "404", "409", "415"} <= set(op["responses"])
    assert {"invalid_idempotency_key", "validation_error", "malformed_json"} <= documented_codes(
        op, 400)
    assert documented_codes(op, 404) == {"position_not_found"}
    assert {"idempotency_signature_mismatch", "daily_order_cap_exceeded"} <= documented_codes(
        op, 409)
    error = op["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][error.rsplit("/", 1)[1]]["properties"]
    assert {"detail", "message", "fields"} <= set(properties)


def test_order_submission_documents_missing_idempotency_key(schema):
    op = operation(schema, "/v1/positions/{id}/orders", "post")
    assert "missing_idempotency_key" in documented_codes(op, 400)


def test_fill_documents_every_refusal_code(schema):
    op = operation(schema, "/v1/orders/{id}/fill", "post")
    assert documented_codes(op, 404) == {"order_not_found"}
    assert {"order_not_open", "fill_exceeds_order", "insufficient_qty", "insufficient_cash",
            "balance_out_of_range", "idempotency_signature_mismatch"} <= documented_codes(op, 409)


def test_reads_document_not_found_and_bad_queries(schema):
    for path in ("/v1/positions/{id}", "/v1/positions/{id}/events"):
        op = operation(schema, path, "get")
        assert documented_codes(op, 404) == {"position_not_found"}
    assert "invalid_query" in documented_codes(operation(schema, "/v1/positions", "get"), 400)
    assert documented_codes(operation(schema, "/v1/orders/{id}", "get"), 404) == {
        "order_not_found"}


def test_the_schema_endpoint_answers(api):
    response = api.get("/v1/schema/")
    assert response.status_code == 200
    assert yaml.safe_load(response.content)["paths"]["/v1/positions/{id}/orders"]
    as_json = api.get("/v1/schema/", {"format": "json"})
    assert as_json.status_code == 200 and as_json.json()["openapi"].startswith("3.")


def test_the_docs_are_served_from_the_package_not_a_cdn(api):
    response = api.get("/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html and "https://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert all(a.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/")
                            else "/" + settings.STATIC_URL) for a in assets), assets
    assert all("drf_spectacular_sidecar" in a for a in assets), assets
    assert '"/v1/schema/"' in html


def test_the_docs_assets_are_served(api, settings):
    """By WhiteNoise from the installed package (in production from collectstatic's copy)."""
    settings.WHITENOISE_USE_FINDERS = True  # read when a new client loads the middleware
    html = api.get("/v1/docs/").content.decode()
    client = APIClient()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    # the page cannot work without Swagger UI's script and its stylesheet: they must be there
    # (a loop over no matches would pass with a page that loads nothing)
    names = {asset.rsplit("/", 1)[-1] for asset in assets}
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= names, assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_production_settings_pass_check_deploy():
    env = {**os.environ, "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": "k2Lr-7vQ_sX9pW3mZ8tY1uN6bC4dF0gH5jK-check-deploy-test-key"}
    env.pop("DJANGO_SECURE_SSL_REDIRECT", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {**os.environ, "DJANGO_DEBUG": "0"}
    env.pop("DJANGO_SECRET_KEY", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
