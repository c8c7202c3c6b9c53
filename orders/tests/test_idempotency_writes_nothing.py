"""The idempotency middleware and views that declare ``writes_nothing``: their POSTs are answered
again, never replayed; and with no such view in the URLconf no path is resolved to find out."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import get_resolver, path
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import middleware
from orders.models import IdempotencyRecord
from volbal import urls as product

pytestmark = pytest.mark.django_db

calls = []


class Computes(APIView):
    writes_nothing = True

    def post(self, request):
        calls.append(request.data)
        return Response({"n": len(calls)})


urlpatterns = [path("v1/test/computes", Computes.as_view()), *product.urlpatterns]


@override_settings(ROOT_URLCONF=__name__)
def test_a_view_that_writes_nothing_is_answered_again_not_replayed(api, make_position):
    calls.clear()
    answers = [api.post("/v1/test/computes", {"x": 1}, format="json",
                        HTTP_IDEMPOTENCY_KEY="same") for _ in range(2)]
    assert [a.json() for a in answers] == [{"n": 1}, {"n": 2}]
    assert all("Idempotent-Replayed" not in a.headers for a in answers)
    assert not IdempotencyRecord.objects.exists()
    # and the product's views behind the same URLconf still have their keys remembered
    position = make_position()
    first, again = (api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1},
                             format="json", HTTP_IDEMPOTENCY_KEY="k1") for _ in range(2))
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()

def test_the_products_urlconf_has_no_such_view_so_no_path_is_resolved_first(
        api, make_position, monkeypatch):
    assert middleware._some_view_writes_nothing(get_resolver()) is False

    def refuse(path):
        raise AssertionError(f"resolved {path} before the view")

    monkeypatch.setattr(middleware, "resolve", refuse)
    position = make_position()
    response = api.post(f"/v1/positions/{position.id}/orders", {"side": "BUY", "qty": 1},
                        format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().status_code == 201
