"""The project's URLs plus the DRF floor of bench/orders_load.py: ``GET /v1/bench/floor``, a
trivial REST framework view with the project's default authentication, permission, renderer,
negotiation and throttle classes, behind every middleware of the settings (under /v1/, so the
middleware takes the same branches as for the API's own paths). Loaded only through
bench/floor_settings.py; the product's URLconf (volbal/urls.py) has no such route."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from volbal import urls as product

FLOOR_PATH = "v1/bench/floor"


class DrfFloor(APIView):
    """What any authenticated API read costs at least: the settings' defaults, a tiny body."""

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [path(FLOOR_PATH, DrfFloor.as_view()), *product.urlpatterns]

handler400 = product.handler400
handler403 = product.handler403
handler404 = product.handler404
handler500 = product.handler500
