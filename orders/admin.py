"""Operator screens for orders (with fills) and idempotency records (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.module_loading import import_string

from orders.models import OPEN_STATUSES, Fill, IdempotencyRecord, Order
from positions.models import Broker
from volbal.admin import ReadOnlyAdminMixin, WriteActionsMixin, shown_decimal, shown_time
from volbal.errors import DomainError

# The field a refused fill's reason is about (orders.services.order_fill's codes).
REFUSAL_FIELDS = {"fill_exceeds_order": "filled_qty", "insufficient_qty": "filled_qty",
                  "insufficient_cash": "filled_qty"}


class FillForm(forms.Form):
    """A typed-in fill: the fields of ``POST /v1/orders/{id}/fill``, checked by the API's
    serializer (its bounds, its sentences)."""

    price = forms.DecimalField()
    filled_qty = forms.DecimalField(label="Filled qty")
    commission = forms.DecimalField(required=False)

    @staticmethod
    def serializer_class():
        # imported when a form is built: django.setup() (every command) imports the admin
        # and must not load the API layer (volbal.admin.ApiValidatedForm does the same)
        return import_string("orders.serializers.FillRequestSerializer")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.serializer_class()().fields.items():
            self.fields[name].help_text = field.help_text

    def clean(self):
        data = super().clean()
        if self.errors:
            return data  # a field that is no number: already said
        serializer = self.serializer_class()(data={n: v for n, v in data.items()
                                                   if v is not None})
        if not serializer.is_valid():
            for name, errors in serializer.errors.items():
                for error in errors:
                    self.add_error(name if name in self.fields else None, str(error))
            return data
        return {**data, **serializer.validated_data}


def fill_offered(order: Order) -> bool:
    """Fills are typed in only for an open order of the manual broker (a paper or Alpaca
    order is filled by its broker)."""
    return order.broker == Broker.MANUAL and order.status in OPEN_STATUSES


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
    ordering = ("-created_at", "-id")  # the newest first
    readonly_fields = ("created_at", "updated_at")  # shown on its page, after the others
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
        return shown_decimal(obj.avg_fill_price, money=True)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        fill = path("<path:object_id>/fill/", self.admin_site.admin_view(self.fill_view),
                    name="orders_order_fill")
        return [fill, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, unquote(object_id))
        if order is not None and fill_offered(order) and self.has_write_permission(request):
            extra_context = {**(extra_context or {}), "fill_url": reverse(
                "admin:orders_order_fill", args=[quote(order.pk)])}
        return super().change_view(request, object_id, form_url, extra_context)

    def fill_view(self, request, object_id):
        """Record a fill of a manual order through the API's service (order_fill): the same
        checks and events, the actor the admin user (events.actor.ActorMiddleware)."""
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404("No such order.")
        if not self.has_write_permission(request):
            raise PermissionDenied
        back = reverse("admin:orders_order_change", args=[quote(order.pk)])
        if not fill_offered(order):
            self.message_user(request, f"Order {order.pk} takes no typed-in fill: "
                              + (f"its broker ({order.broker}) fills it."
                                 if order.broker != Broker.MANUAL else f"it is {order.status}."),
                              messages.ERROR)
            return HttpResponseRedirect(back)
        form = FillForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            from orders import services  # the writes: imported where used, not at setup

            try:
                order, _position, fill = services.order_fill(
                    owner=None, order_id=order.pk, price=data["price"],
                    filled_qty=data["filled_qty"], commission=data.get("commission"))
            except DomainError as exc:
                named = exc.fields or {REFUSAL_FIELDS.get(exc.code): exc.message}
                for name, message in named.items():
                    form.add_error(name if name in form.fields else None, message)
                    self.message_user(request, f"Fill refused ({exc.code})"
                                      + (f", {name}" if name else "") + f": {message}",
                                      messages.ERROR)
            else:
                self.log_action(request, [order], f"Fill {fill.pk} recorded: "
                                f"{shown_decimal(fill.qty)} at {shown_decimal(fill.price)}.")
                self.message_user(request, f"Fill {fill.pk} recorded: {shown_decimal(fill.qty)} "
                                  f"at {shown_decimal(fill.price, money=True)}; order "
                                  f"{order.status}.", messages.SUCCESS)
                return HttpResponseRedirect(back)
        return TemplateResponse(request, "admin/orders/order/fill.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "order": order,
            "order_url": back, "form": form, "title": f"Record a fill of order {order.pk}",
            "qty": shown_decimal(order.qty), "filled": shown_decimal(order.filled_qty),
            "remaining": shown_decimal(order.remaining_qty)})

    @admin.action(description="Cancel the selected open orders", permissions=["write"])
    def cancel_orders(self, request, queryset):
        from orders import services  # the writes: imported where used, not at setup

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
