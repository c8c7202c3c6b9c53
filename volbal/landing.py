"""``/``: what this service is and where to go next (docs, schema, admin, health)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from volbal.api import json_response

NAME = "volbal"


def links() -> dict[str, str]:
    return {
        "docs": "/v1/docs/",
        "schema": "/v1/schema/",
        "admin": "/admin/",
        "health": "/healthz",
        "readiness": "/readyz",
        "api_health": "/v1/healthz",
    }


def landing_body() -> dict:
    return {
        "name": NAME,
        "description": settings.SPECTACULAR_SETTINGS["DESCRIPTION"],
        "version": settings.SPECTACULAR_SETTINGS["VERSION"],
        "api": "/v1/",
        "links": links(),
    }


def _wants_html(request) -> bool:
    """A browser (HTML before JSON in Accept) gets the page; anything else the JSON."""
    accept = request.headers.get("Accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html != -1 and (json == -1 or html < json)


@require_GET
def landing(request):
    body = landing_body()
    if not _wants_html(request):
        return json_response(body, 200)
    items = "".join(f'<li><a href="{escape(url)}">{escape(name)}</a> <code>{escape(url)}</code>'
                    "</li>" for name, url in body["links"].items())
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{NAME}</title>"
            f"<h1>{NAME} {escape(body['version'])}</h1><p>{escape(body['description'])}</p>"
            f"<ul>{items}</ul></html>")
    return HttpResponse(page, content_type="text/html; charset=utf-8")
