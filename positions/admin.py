"""Operator screens for positions and prices. Writes go through the same services as the API."""

from __future__ import annotations

from dataclasses import replace

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from events.selectors import events_for_position
from positions import selectors, services
from positions.dividends import dividends_process
from positions.models import (
    EXECUTION_FIELDS,
    STRATEGY_FIELDS,
    Dividend,
    Position,
    Price,
    TradeCycle,
)
from positions.strategy import rules
from volbal.errors import DomainError

STATE_FIELDS = ("qty", "cash", "anchor_price", "dividend_receivable")


class PositionForm(forms.ModelForm):
    """Validates the strategy configuration with the same rules as the API."""

    class Meta:
        model = Position
        fields = ("owner", "ticker", "qty", "cash", "anchor_price", *STRATEGY_FIELDS,
                  *EXECUTION_FIELDS)

    # Left out of a post, these keep the position's value (a new one's default).
    OPTIONAL = ("broker", "slippage_bps")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.OPTIONAL:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        data = super().clean()
        for name in self.OPTIONAL:
            if data.get(name) in (None, ""):
                data[name] = getattr(self.instance, name)
        values = {n: data.get(n, getattr(rules.Config(), n)) for n in STRATEGY_FIELDS}
        if any(v is None for n, v in values.items() if n != "qty_step"):
            return data  # field errors already reported
        for field, message in rules.config_errors(replace(rules.Config(), **values)).items():
            if field in self.fields:
                self.add_error(field, message)
            else:
                self.add_error(None, f"{field}: {message}")
        if "ticker" in data and data["ticker"]:
            try:
                data["ticker"] = services.ticker_normalize(data["ticker"])
            except DomainError as exc:
                self.add_error("ticker", exc.message)
        return data


@admin.register(Position)
class PositionAdmin(admin.ModelAdmin):
    form = PositionForm
    list_display = (
        "id",
        "owner",
        "ticker",
        "qty",
        "cash",
        "anchor_price",
        "dividend_receivable",
        "value_shown",
        "weight_shown",
        "created_at",
    )
    list_filter = ("ticker", "sizing", "fractional", "created_at")
    search_fields = ("id", "ticker", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    actions = ["evaluate_now", "evaluate_and_submit"]
    readonly_fields = (
        "id",
        "dividend_receivable",
        "value_shown",
        "weight_shown",
        "decision_preview",
        "recent_orders",
        "event_timeline",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return selectors.with_latest_price(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:  # balances move only through fills and dividends
            fields += ["owner", "ticker", "qty", "cash", "anchor_price"]
        return fields

    def get_fieldsets(self, request, obj=None):
        state = ("owner", "ticker", "qty", "cash", "anchor_price", "dividend_receivable")
        sets = [
            (None, {"fields": ("id", *state) if obj else state[:-1]}),
            ("Strategy", {"fields": STRATEGY_FIELDS}),
            ("Execution", {"fields": EXECUTION_FIELDS}),
        ]
        if obj is not None:
            sets += [
                ("Valuation", {"fields": ("value_shown", "weight_shown", "decision_preview")}),
                (
                    "Activity",
                    {"fields": ("recent_orders", "event_timeline", "created_at", "updated_at")},
                ),
            ]
        return sets

    def _valuation(self, obj):
        price = getattr(obj, "latest_price", None)
        if price is None:
            return None, None
        return rules.weight_of(
            qty=obj.qty, cash=obj.cash, receivable=obj.dividend_receivable, price=price
        )

    @admin.display(description="value")
    def value_shown(self, obj):
        value, _ = self._valuation(obj)
        return "—" if value is None else f"{value:,.2f} at {obj.latest_price}"

    @admin.display(description="weight")
    def weight_shown(self, obj):
        _, weight = self._valuation(obj)
        return "—" if weight is None else f"{weight:.4f}"

    @admin.display(description="decision at the latest price")
    def decision_preview(self, obj):
        price = getattr(obj, "latest_price", None)
        if price is None:
            return "No stored price for this ticker yet (POST /v1/prices or import_prices)."
        try:
            decision = services.position_decide(position=obj, price=price)
        except (rules.RuleError, ArithmeticError) as exc:  # keep the page usable
            return f"No preview at {price}: {type(exc).__name__}: {exc}"
        shown = decision.proposal or decision.blocked
        what = "nothing to do"
        if decision.proposal is not None:
            what = f"would {shown.side} {shown.qty} (notional {shown.notional})"
        elif shown is not None:
            what = f"{shown.side} {shown.qty} blocked by {decision.blocked_by}"
        return format_html("<b>{}</b> [{}]<br>{}", what, decision.reason, decision.message)

    def _evaluate(self, request, queryset, submit: bool):
        for position in queryset:
            try:
                result = services.position_evaluate(owner=None, position_id=position.pk,
                                                    submit=submit, source="admin")
            except DomainError as exc:
                self.message_user(request, f"{position.pk}: {exc.message}", messages.WARNING)
                continue
            except (rules.RuleError, ArithmeticError) as exc:  # the others still run
                self.message_user(request, f"{position.pk}: not evaluated: "
                                  f"{type(exc).__name__}: {exc}", messages.ERROR)
                continue
            order = f" Order {result.order.id} submitted." if result.order else ""
            self.message_user(request, f"{position.pk}: {result.message.rstrip('.')}.{order}",
                              messages.SUCCESS if result.decision else messages.WARNING)

    @admin.action(description="Evaluate at the latest price (record the decision)")
    def evaluate_now(self, request, queryset):
        self._evaluate(request, queryset, submit=False)

    @admin.action(description="Evaluate at the latest price and submit the proposal")
    def evaluate_and_submit(self, request, queryset):
        self._evaluate(request, queryset, submit=True)

    @admin.display(description="recent orders")
    def recent_orders(self, obj):
        orders = obj.orders.order_by("-created_at")[:10]
        if not orders:
            return "none"
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        reverse("admin:orders_order_change", args=[o.pk]),
                        o.pk,
                        o.side,
                        o.qty,
                        o.status,
                        o.created_at.strftime("%Y-%m-%d %H:%M"),
                    )
                    for o in orders
                ),
            ),
        )

    @admin.display(description="event timeline (latest 30)")
    def event_timeline(self, obj):
        events = events_for_position(position_id=obj.pk).order_by("-id")[:30]
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td><b>{}</b></td><td>{}</td></tr>",
                ((e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.type, e.message) for e in events),
            ),
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.position_configure(
                owner=None,
                position_id=obj.pk,
                changes={n: data[n] for n in (*STRATEGY_FIELDS, *EXECUTION_FIELDS)
                         if n in form.changed_data and n in data},
            )
            return
        created = services.position_create(
            owner=data["owner"],
            ticker=data["ticker"],
            qty=data["qty"],
            cash=data["cash"],
            anchor_price=data.get("anchor_price"),
            **{n: data[n] for n in STRATEGY_FIELDS},
            **{n: data[n] for n in EXECUTION_FIELDS if n in data},
        )
        obj.pk = created.pk
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail refers to it for ever


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ("ticker", "price", "ts", "created_at")
    list_filter = ("ticker",)
    search_fields = ("ticker",)
    date_hierarchy = "ts"


@admin.register(Dividend)
class DividendAdmin(admin.ModelAdmin):
    list_display = ("id", "position", "ex_date", "pay_date", "dps", "withholding_rate",
                    "status", "entitlement_qty", "net_amount")
    list_filter = ("status", "ex_date", "pay_date")
    search_fields = ("id", "position__id", "position__ticker")
    list_select_related = ("position",)
    actions = ["process_due"]

    def has_add_permission(self, request):
        return False  # announced through the API (same validation, same event)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Process due dividend steps now (as of today)")
    def process_due(self, request, queryset):
        report = dividends_process()
        self.message_user(request, f"{len(report.effective)} became effective, "
                          f"{len(report.paid)} were paid.", messages.SUCCESS)


@admin.register(TradeCycle)
class TradeCycleAdmin(admin.ModelAdmin):
    """The trade cycle's summaries (manage.py trade): read-only."""

    list_display = ("started_at", "market_open", "session", "positions_claimed", "evaluated",
                    "submitted", "routed", "fills", "cancelled", "orders_expired", "errors",
                    "duration_ms", "worker")
    list_filter = ("market_open", "session")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in TradeCycle._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
