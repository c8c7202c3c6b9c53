"""Operator screens for orders (with fills) and idempotency records (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages

from orders import services
from orders.models import Fill, IdempotencyRecord, Order
from volbal.admin import ReadOnlyAdminMixin, WriteActionsMixin, shown_time
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt


class FillInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Fill
    extra = 0
    fields = ("id", "qty", "price", "commission", "created_at")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(WriteActionsMixin, admin.ModelAdmin):
    # fits 1366 px: the position by its ticker (its id is one click away), times in the
    # trading time zone
    list_display = (
        "id",
        "ticker",
        "side",
        "qty",
        "filled_qty",
        "status",
        "avg_price",
        "created",
    )
    list_filter = ("status", "side", "source", "trading_day")
    search_fields = ("id", "position__id", "position__ticker", "idempotency_key")
    list_select_related = ("position",)
    inlines = [FillInline]
    actions = ["cancel_orders"]

    def has_add_permission(self, request):
        return False  # orders come from the API and from evaluation

    @admin.display(description="ticker", ordering="position__ticker")
    def ticker(self, obj):
        return obj.position.ticker

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return shown_time(obj.created_at, seconds=False)

    @admin.display(description="avg price", ordering="avg_fill_price")
    def avg_price(self, obj):
        return "—" if obj.avg_fill_price is None else fmt(obj.avg_fill_price)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected open orders", permissions=["write"])
    def cancel_orders(self, request, queryset):
        done, requested = [], []
        for order in queryset:
            try:
                order, ended = services.order_cancel_request(owner=None, order_id=order.pk)
                (done if ended else requested).append(order)
            except DomainError as exc:
                self.message_user(request, f"Order {order.pk}: {exc.message}",
                                  messages.WARNING)
        self.log_action(request, done, "Cancelled (admin action cancel_orders).")
        self.log_action(request, requested,
                        "Cancel requested of its broker (admin action cancel_orders).")
        if done:
            self.message_user(request, f"Cancelled {len(done)} order(s).", messages.SUCCESS)
        if requested:
            self.message_user(request, f"Asked the broker to cancel {len(requested)} order(s); "
                              "they end when it reports them ended.", messages.SUCCESS)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "identity", "method", "path", "status_code", "created_at", "expires_at")
    search_fields = ("key", "path", "identity")
    list_filter = ("method", "status_code")
    exclude = ("response_body",)
