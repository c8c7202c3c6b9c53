"""Root URLs: health, the /v1 API, its schema and docs, and the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from events.webhooks.api import WebhookViewSet
from orders.api import OrderViewSet
from positions.api import AlertViewSet, PositionViewSet, PriceViewSet
from positions.portfolios.api import PortfolioViewSet
from positions.research.api import BacktestView, SweepViewSet
from volbal import health
from volbal.api import json_error_view
from volbal.landing import landing

router = SimpleRouter(trailing_slash=False)
router.register("positions", PositionViewSet, basename="position")
router.register("portfolios", PortfolioViewSet, basename="portfolio")
router.register("orders", OrderViewSet, basename="order")
router.register("prices", PriceViewSet, basename="price")
router.register("sweeps", SweepViewSet, basename="sweep")
router.register("alerts", AlertViewSet, basename="alert")
router.register("webhooks", WebhookViewSet, basename="webhook")

admin.site.site_url = "/"  # the admin's "view site": the landing page

urlpatterns = [
    path("", landing, name="landing"),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("v1/healthz", health.healthz_v1),
    path("v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("v1/backtests", BacktestView.as_view(), name="backtests"),
    path("v1/", landing, name="api-root"),  # the address the landing gives as "api"
    path("v1/", include(router.urls)),
    path("admin/", admin.site.urls),
]

handler400 = json_error_view(400)
handler403 = json_error_view(403)
handler404 = json_error_view(404)
handler500 = json_error_view(500)
