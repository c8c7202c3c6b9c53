"""Operator screens for portfolios: the list, a portfolio's page with its positions (target and
actual weights) and its allocation picture, and a rebalance action. Balances are not edited
here: cash moves through the API's cash movements (positions.books writes them)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from positions.models import Portfolio
from positions.portfolios.selectors import portfolio_value, portfolio_values
from positions.reports import ReturnsAdminMixin
from volbal.admin import WriteActionsMixin, shown_decimal, shown_time
from volbal.errors import DomainError

CENT = Decimal("0.01")
# The performance (numpy), the allocation picture (the charts) and the rebalance (the writes)
# are imported by the view or action that uses them, not at django.setup(), which imports this
# module for every command.


@admin.register(Portfolio)
class PortfolioAdmin(ReturnsAdminMixin, WriteActionsMixin, admin.ModelAdmin):
    list_display = ("id", "owner", "name", "cash_shown", "value_shown", "rebalance",
                    "last_rebalanced_on", "created")
    list_filter = ("rebalance", "created_at")
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    actions = ["rebalance_now"]
    readonly_fields = ("id", "owner", "name", "cash", "opening_cash", "rebalance",
                       "rebalance_band", "last_rebalanced_on", "value_shown", "holdings",
                       "allocation", "returns_shown", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", "owner", "name", "cash", "opening_cash", "value_shown")}),
        ("Rebalancing", {"fields": ("rebalance", "rebalance_band", "last_rebalanced_on")}),
        ("Positions", {"fields": ("holdings", "allocation")}),
        ("Returns", {"fields": ("returns_shown",)}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    # opened and changed through the API (the services check the rules); here they are read
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _value(self, obj):
        if not hasattr(obj, "_portfolio_value"):
            obj._portfolio_value = portfolio_value(obj)
        return obj._portfolio_value

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class Valued(base):
            """The list's page valued at once (its positions read in one query, as the API's
            list does), not one portfolio's positions at a time as each row is shown."""

            def get_results(self, request):
                super().get_results(request)
                page = list(self.result_list)
                for portfolio, value in zip(page, portfolio_values(page), strict=True):
                    portfolio._portfolio_value = value
                self.result_list = page

        return Valued

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return shown_time(obj.created_at, seconds=False, two_lines=True)

    @admin.display(description="unallocated cash", ordering="cash")
    def cash_shown(self, obj):
        return shown_decimal(obj.cash, money=True)

    @admin.display(description="value")
    def value_shown(self, obj):
        value = self._value(obj).value
        return "— (a position has no known price)" if value is None else shown_decimal(
            value.quantize(CENT), money=True)

    @admin.display(description="positions")
    def holdings(self, obj):
        rows = self._value(obj).holdings
        if not rows:
            return "none"

        def weight(w):
            return "—" if w is None else f"{w:.4f}"

        return format_html(
            "<table><thead><tr><th>position</th><th>ticker</th><th>shares</th><th>cash</th>"
            "<th>value</th><th>target weight</th><th>actual weight</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td>"
                             "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
                                 (reverse("admin:positions_position_change",
                                          args=[quote(h.position.pk)]),
                                  h.position.pk, h.position.ticker,
                                  shown_decimal(h.position.qty),
                                  shown_decimal(h.position.cash, money=True),
                                  "—" if h.value is None else shown_decimal(
                                      h.value.quantize(CENT), money=True),
                                  weight(h.target_weight), weight(h.weight))
                                 for h in rows)))

    @admin.display(description="allocation")
    def allocation(self, obj):
        return format_html(
            "<img src='{}' alt='{}: target and actual weights' width='720'>",
            reverse("admin:positions_portfolio_allocation", args=[quote(obj.pk)]), obj.name)

    def get_urls(self):
        picture = path("<path:object_id>/allocation.png",
                       self.admin_site.admin_view(self.allocation_view),
                       name="positions_portfolio_allocation")
        return [picture, *self.returns_urls(), *super().get_urls()]

    def performance_of(self, obj):
        from positions.performance import portfolio_performance

        return portfolio_performance(obj)

    def performance_title(self, obj) -> str:
        return f"{obj.name} {obj.pk}: value and time-weighted return"

    def allocation_view(self, request, object_id):
        from positions.portfolios.picture import allocation_png

        portfolio = self.viewed(request, object_id)  # 404 / 403 as the other pictures
        return HttpResponse(allocation_png(portfolio_value(portfolio)),
                            content_type="image/png")

    @admin.action(description="Rebalance now (cash toward the target weights)",
                  permissions=["write"])
    def rebalance_now(self, request, queryset):
        from positions.portfolios.services import portfolio_rebalance

        for portfolio in queryset:
            shown = f"Portfolio {portfolio.pk}"
            try:
                done = portfolio_rebalance(portfolio_id=portfolio.pk)
            except DomainError as exc:
                self.message_user(request, f"{shown}: {exc.message}", messages.WARNING)
                continue
            self.log_action(request, [portfolio], f"Rebalanced (admin action): {done.text()}")
            self.message_user(request, f"{shown}: {done.text()}", messages.SUCCESS)
