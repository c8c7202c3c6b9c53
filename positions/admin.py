"""Operator screens for positions and prices. Writes go through the same services as the API."""

from __future__ import annotations

import functools
from dataclasses import replace
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from events.selectors import events_for_position
from orders.selectors import position_valuation, with_known_price
from positions import selectors, services
from positions.dividends import dividend_announce
from positions.models import (
    EXECUTION_FIELDS,
    STRATEGY_FIELDS,
    Dividend,
    DividendStatus,
    Position,
    Price,
    Split,
    SplitStatus,
    TickerFeed,
    TradeCycle,
)
from positions.reports import ReturnsAdminMixin
from positions.splits import price_confirm
from positions.strategy import rules
from volbal.admin import (
    ApiValidatedForm,
    ReadOnlyAdminMixin,
    WriteActionsMixin,
    configure_site,
    shown_decimal,
    shown_time,
)
from volbal.errors import DomainError

STATE_FIELDS = ("qty", "cash", "anchor_price", "dividend_receivable")
CENT = Decimal("0.01")  # a position's value is shown to the cent

# Imported where a screen or an action uses them, not at django.setup() (which imports every
# admin module, for every command): positions.performance (numpy), positions.picture (the
# charts and the backtest code they draw from), positions.workflows (evaluation, corporate
# actions), orders.services (the writes). positions/research/tests/test_sweep_command.py
# (test_a_command_starts_without_...) pins it.

configure_site()  # no nav sidebar; API tokens for superusers only, keys by their prefix


class PositionForm(ApiValidatedForm):
    """Validates each field as the API does (its serializer), then the configuration as a
    whole with the same rules."""

    api_serializer = "positions.serializers.PositionCreateSerializer"

    class Meta:
        model = Position
        fields = ("owner", "ticker", "qty", "cash", "anchor_price", *STRATEGY_FIELDS,
                  *EXECUTION_FIELDS)

    # Left out of a post, these keep the position's value (a new one's default).
    OPTIONAL = ("broker", "slippage_bps", "order_type")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.OPTIONAL:
            if name in self.fields:
                self.fields[name].required = False

    def _kept_when_left_out(self, name):
        value = self.cleaned_data.get(name)
        return getattr(self.instance, name) if value in (None, "") else value

    def clean_broker(self):  # before the API's serializer sees the value
        return self._kept_when_left_out("broker")

    def clean_slippage_bps(self):
        return self._kept_when_left_out("slippage_bps")

    def clean_order_type(self):
        return self._kept_when_left_out("order_type")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data  # a field out of its bounds: the combination is not checked
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
class PositionAdmin(ReturnsAdminMixin, WriteActionsMixin, admin.ModelAdmin):
    form = PositionForm
    list_display = (
        "id",
        "owner",
        "ticker",
        "qty",
        "cash",
        "anchor",
        "value_shown",
        "weight_shown",
        "created",
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
        "resting_orders",
        "picture",
        "returns_shown",
        "recent_orders",
        "event_timeline",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return with_known_price(super().get_queryset(request))

    def readonly_names(self, request, obj=None):
        fields = list(self.readonly_fields)
        if obj is not None:  # balances move only through fills and dividends
            fields += ["owner", "ticker", "qty", "cash", "anchor_price"]
        return fields

    def get_fieldsets(self, request, obj=None):
        state = ("owner", "ticker", "qty", "cash", "anchor_price", "dividend_receivable")
        sets = [
            (None, {"fields": ("id", *state) if obj else state[:-1]}),
            ("Strategy", {"fields": STRATEGY_FIELDS}),
            ("Execution", {"fields": (*EXECUTION_FIELDS, "resting_orders") if obj
                           else EXECUTION_FIELDS}),
        ]
        if obj is not None:
            sets += [
                ("Valuation", {"fields": ("value_shown", "weight_shown", "decision_preview")}),
                ("Returns", {"fields": ("returns_shown",)}),
                (
                    "Activity",
                    {"fields": ("picture", "recent_orders", "event_timeline", "created_at",
                                "updated_at")},
                ),
            ]
        return self.shown_fieldsets(request, obj, sets)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return shown_time(obj.created_at, seconds=False, two_lines=True)

    # at 1366 px the list shows every column without scrolling: short headers, no
    # receivable (on the position's page), times to the minute
    @admin.display(description="anchor", ordering="anchor_price")
    def anchor(self, obj):
        return shown_decimal(obj.anchor_price, money=True)

    def _price(self, obj):
        """The newest stored price as the position uses it (split-adjusted): the one the
        decision preview (and the trade cycle) evaluates at."""
        if not hasattr(obj, "_adjusted_price"):
            known = obj if hasattr(obj, "known_stored_ts") else with_known_price(
                Position.objects.filter(pk=obj.pk)).get()
            price = known.known_stored_price
            obj._adjusted_price = None if price is None else selectors.split_adjusted(
                position=obj, price=price, ts=known.known_stored_ts)
        return obj._adjusted_price

    def _valuation(self, obj):
        """The position's valuation, as the API shows it (orders.selectors.position_valuation:
        at the newer of the newest stored price and the last fill)."""
        if not hasattr(obj, "_valuation"):
            obj._valuation = position_valuation(obj)
        return obj._valuation

    @admin.display(description="value")
    def value_shown(self, obj):
        v = self._valuation(obj)
        if v.value is None:
            return "—"
        return format_html("<span style='white-space:nowrap'>{}</span><br><small "
                           "style='white-space:nowrap'>at {}, {}</small>",
                           shown_decimal(v.value.quantize(CENT), money=True),
                           shown_decimal(v.price, money=True), v.source)

    @admin.display(description="weight")
    def weight_shown(self, obj):
        v = self._valuation(obj)
        return "—" if v.weight is None else f"{v.weight:.4f}"

    @admin.display(description="decision at the latest price")
    def decision_preview(self, obj):
        price = self._price(obj)
        if price is None:
            return "No stored price for this ticker yet (POST /v1/prices or import_prices)."
        from positions.workflows import evaluation

        try:
            decision = evaluation.position_decide(position=obj, price=price)
        except (rules.RuleError, ArithmeticError) as exc:  # keep the page usable
            return f"No preview at {price}: {type(exc).__name__}: {exc}"
        shown = decision.proposal or decision.blocked
        what = "nothing to do"
        if decision.proposal is not None:
            what = f"would {shown.side} {shown.qty} (notional {shown.notional})"
        elif shown is not None:
            what = f"{shown.side} {shown.qty} blocked by {decision.blocked_by}"
        return format_html("<b>{}</b> [{}]<br>{}", what, decision.reason, decision.message)

    @admin.display(description="resting orders")
    def resting_orders(self, obj):
        """The rung orders open at the broker and the ladder's rungs (docs/strategy.md#resting-
        orders): the API's GET /v1/positions/{id}/resting-orders, as rows."""
        from positions.workflows import evaluation

        try:
            result = evaluation.position_resting(owner=None, position=obj)
        except (rules.RuleError, ArithmeticError) as exc:  # keep the page usable
            return f"Not shown: {type(exc).__name__}: {exc}"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((o.id, o.rung, o.qty - o.filled_qty, o.limit_price,
              o.status + (" (cancel requested)" if o.cancel_requested_at else ""))
             for o in result.orders))
        table = format_html("<table><tr><th>order</th><th>rung</th><th>qty left</th>"
                            "<th>limit</th><th>status</th></tr>{}</table>", rows) \
            if result.orders else ""
        return format_html("{}{}", result.message, table)

    def _evaluate(self, request, queryset, submit: bool):
        from positions.workflows import evaluation

        for position in queryset:
            # "Position" first: the admin capitalises a message's first letter, and an id
            # must stay as it is to be searched for or pasted into a URL
            shown = f"Position {position.pk}"
            try:
                result = evaluation.position_evaluate(owner=None, position_id=position.pk,
                                                    submit=submit, source="admin")
            except DomainError as exc:
                self.message_user(request, f"{shown}: {exc.message}", messages.WARNING)
                continue
            except (rules.RuleError, ArithmeticError) as exc:  # the others still run
                self.message_user(request, f"{shown}: not evaluated: "
                                  f"{type(exc).__name__}: {exc}", messages.ERROR)
                continue
            order = f" Order {result.order.id} submitted." if result.order else ""
            self.log_action(request, [position], f"Evaluated at the latest price"
                            f"{' and submitted' if submit else ''} (admin action): "
                            f"{result.reason}.{order}")
            self.message_user(request, f"{shown}: {result.message.rstrip('.')}.{order}",
                              messages.SUCCESS if result.decision else messages.WARNING)

    @admin.action(description="Evaluate at the latest price (record the decision)",
                  permissions=["write"])
    def evaluate_now(self, request, queryset):
        self._evaluate(request, queryset, submit=False)

    @admin.action(description="Evaluate at the latest price and submit the proposal",
                  permissions=["write"])
    def evaluate_and_submit(self, request, queryset):
        self._evaluate(request, queryset, submit=True)

    def get_urls(self):
        picture = path("<path:object_id>/picture.png",
                       self.admin_site.admin_view(self.picture_view),
                       name="positions_position_picture")
        return [picture, *self.returns_urls(), *super().get_urls()]

    def picture_view(self, request, object_id):
        from positions.picture import position_picture_png

        position = self.viewed(request, object_id)
        return HttpResponse(position_picture_png(position), content_type="image/png")

    def performance_of(self, obj):
        from positions.performance import position_performance

        return position_performance(obj)

    def performance_title(self, obj) -> str:
        return f"{obj.ticker} {obj.pk}: value and time-weighted return"

    @admin.display(description="picture")
    def picture(self, obj):
        return format_html(
            "<img src='{}' alt='{}: price, fills and anchor over time' width='990'>",
            reverse("admin:positions_position_picture", args=[quote(obj.pk)]), obj.ticker)

    @admin.display(description="recent orders")
    def recent_orders(self, obj):
        orders = obj.orders.order_by("-created_at")[:10]
        if not orders:
            return "none"
        return format_html(
            "<table><thead><tr><th>order</th><th>side</th><th>qty</th><th>filled</th>"
            "<th>avg price</th><th>status</th><th>created</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td><td>{}</td></tr>",
                (
                    (
                        reverse("admin:orders_order_change", args=[o.pk]),
                        o.pk,
                        o.side,
                        shown_decimal(o.qty),
                        shown_decimal(o.filled_qty),
                        shown_decimal(o.avg_fill_price, money=True),
                        o.status,
                        shown_time(o.created_at),
                    )
                    for o in orders
                ),
            ),
        )

    @admin.display(description="event timeline (latest 30)")
    def event_timeline(self, obj):
        events = events_for_position(position_id=obj.pk).order_by("-id")[:30]
        return format_html(
            "<table><thead><tr><th>time</th><th>event</th><th>actor</th><th>message</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td></tr>",
                ((shown_time(e.created_at), e.type, e.actor, e.message) for e in events),
            ),
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            from orders.services import position_configure_replacing_rungs

            position_configure_replacing_rungs(
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


class PriceForm(ApiValidatedForm):
    api_serializer = "positions.serializers.PriceInSerializer"

    class Meta:
        model = Price
        fields = ("ticker", "price", "ts")


@admin.register(Price)
class PriceAdmin(WriteActionsMixin, admin.ModelAdmin):
    """Prices are added through the prices service (as POST /v1/prices: same checks, the
    ticker upper-cased, the recorder named); a stored price is not edited (a new price at the
    same ticker and time replaces it)."""

    form = PriceForm
    list_display = ("ticker", "price", "time", "source", "recorded_by", "recorded_source",
                    "created", "confirmed_by")
    ordering = ("-ts", "ticker")  # the newest first
    actions = ["confirm"]
    list_filter = ("ticker", "source", "recorded_source")
    search_fields = ("ticker", "recorded_by")
    date_hierarchy = "ts"
    readonly_fields = ("source", "recorded_by", "recorded_source", "recorded_user_id",
                       "created_at")

    @admin.display(description="ts", ordering="ts")
    def time(self, obj):
        return shown_time(obj.ts)

    @admin.display(description="recorded", ordering="created_at")
    def created(self, obj):
        return shown_time(obj.created_at)

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        services.prices_record(rows=[{"ticker": data["ticker"], "price": data["price"],
                                      "ts": data["ts"]}])
        stored = Price.objects.get(ticker=data["ticker"], ts=data["ts"])
        obj.pk, obj._state.adding = stored.pk, False

    @admin.action(description="Confirm the selected prices (the price-jump guard lets them "
                  "through)", permissions=["write"])
    def confirm(self, request, queryset):
        prices = [price_confirm(ticker=p.ticker, ts=p.ts) for p in queryset]
        self.log_action(request, prices, "Confirmed (admin action confirm).")
        self.message_user(request, f"{len(prices)} price(s) confirmed.", messages.SUCCESS)


def logs_dividend_steps(action):
    """An action that moves dividends on: each dividend whose status it changed gets a
    ``LogEntry`` saying which step it took."""

    @functools.wraps(action)
    def logged(modeladmin, request, queryset):
        before = dict(Dividend.objects.exclude(status=DividendStatus.PAID)
                      .values_list("pk", "status"))
        result = action(modeladmin, request, queryset)
        after = Dividend.objects.filter(pk__in=before).values_list("pk", "status")
        moved = {pk: status for pk, status in after if status != before[pk]}
        for status in (DividendStatus.EFFECTIVE, DividendStatus.PAID):
            modeladmin.log_action(
                request, Dividend.objects.filter(pk__in=[k for k, v in moved.items()
                                                         if v == status]),
                f"Became {status} (admin action {action.__name__}).")
        return result

    return logged


class DividendForm(ApiValidatedForm):
    """Announces the dividend through the same service as the API (same checks, same event),
    so a refusal (a second dividend on the same ex-date, …) is shown on the form."""

    api_serializer = "positions.serializers.DividendAnnounceSerializer"
    withholding_tax_rate = forms.DecimalField(
        max_digits=12, decimal_places=8, required=False, label="Withholding tax rate")
    # its help text is the API's (ApiValidatedForm)

    class Meta:
        model = Dividend
        fields = ("position", "ex_date", "pay_date", "dps")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.instance = dividend_announce(
                owner=None, position_id=data["position"].pk, ex_date=data["ex_date"],
                pay_date=data["pay_date"], dps=data["dps"],
                withholding_rate=data.get("withholding_tax_rate"))
            data["withholding_tax_rate"] = self.instance.withholding_rate  # the default taken
        except DomainError as exc:
            for name, message in (exc.fields or {None: exc.message}).items():
                self.add_error(name if name in self.fields else None, message)
        return data


@admin.register(Dividend)
class DividendAdmin(WriteActionsMixin, admin.ModelAdmin):
    form = DividendForm
    # fits 1366 px: the position by its ticker (its id is one click away)
    list_display = ("id", "ticker", "ex_date", "pay_date", "dps", "withholding", "status",
                    "entitlement_qty", "net_amount")
    list_filter = ("status", "ex_date", "pay_date")
    search_fields = ("id", "position__id", "position__ticker")
    list_select_related = ("position",)
    autocomplete_fields = ("position",)
    actions = ["process_due"]

    @admin.display(description="ticker", ordering="position__ticker")
    def ticker(self, obj):
        return format_html("<a href='{}'>{}</a>", reverse(
            "admin:positions_position_change", args=[quote(obj.position_id)]),
            obj.position.ticker)

    @admin.display(description="withholding", ordering="withholding_rate")
    def withholding(self, obj):
        return shown_decimal(obj.withholding_rate)

    def save_model(self, request, obj, form, change):
        pass  # announced by the form's service call (DividendForm.clean)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Process due dividend steps now (as of today)",
                  permissions=["write"])
    @logs_dividend_steps
    def process_due(self, request, queryset):
        from positions.workflows.corporate_actions import dividends_process

        report = dividends_process()
        self.message_user(request, f"{len(report.effective)} became effective, "
                          f"{len(report.paid)} were paid.", messages.SUCCESS)
        for failure in report.failed:
            self.message_user(request, str(failure), messages.ERROR)


@admin.register(TradeCycle)
class TradeCycleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The trade cycle's summaries (manage.py trade): read-only."""

    list_display = ("started_at", "market_open", "session", "positions_claimed", "evaluated",
                    "submitted", "routed", "fills", "cancelled", "orders_expired", "errors",
                    "duration_ms", "worker")
    list_filter = ("market_open", "session")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in TradeCycle._meta.fields]


@admin.register(TickerFeed)
class TickerFeedAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Per ticker, what the market-data feed last said (docs/marketdata.md#the-admin): the last
    price fetched, its time and the feed; the last error and since when the ticker has been
    failing (an episode of feed_error alerts); the day its corporate actions were fetched
    through. Read-only: the cycle and the fetch commands write it."""

    list_display = ("ticker", "price", "price_ts", "source", "fetched_at", "error_code",
                    "error_at", "failing_since", "actions_through")
    list_filter = ("source", "error_code")
    search_fields = ("ticker",)
    readonly_fields = [f.name for f in TickerFeed._meta.fields]


class SplitForm(ApiValidatedForm):
    """Records the split for every position in the ticker through the same service as
    ``manage.py apply_split`` (the API's bounds on ratio and date), applying it when due."""

    api_serializer = "positions.serializers.SplitRecordSerializer"
    ticker = forms.CharField(max_length=16, help_text="Every position in this ticker.")
    ratio = forms.CharField(max_length=24, help_text='New shares for old ones, exactly: "2:1" '
                            'for 2-for-1, "1:3" for 1-for-3 (a decimal that states it exactly, '
                            "2 or 0.5, is taken too).")

    class Meta:
        model = Split
        fields = ("effective_date",)

    def clean_ratio(self):
        """The form's text as the API would take it: ``new:old`` text, else a number."""
        text = self.cleaned_data["ratio"].strip()
        if ":" in text:
            return text
        try:
            return Decimal(text)
        except ArithmeticError:
            raise forms.ValidationError('Enter the ratio as new:old (e.g. "1:3") or a '
                                        "number.") from None

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        from positions.workflows.corporate_actions import split_announce_ticker

        try:
            report = split_announce_ticker(ticker=data["ticker"], ratio=data["ratio"],
                                           effective_date=data["effective_date"])
        except DomainError as exc:
            for name, message in (exc.fields or {None: exc.message}).items():
                self.add_error(name if name in self.fields else None, message)
            return data
        if not report.recorded:
            self.add_error(None, f"Nothing recorded: {len(report.existing)} position(s) "
                           f"already have this split, {len(report.conflicts)} another ratio "
                           f"on that date, {len(report.failed)} refused it"
                           + "".join(f"; {pid}: {why}" for pid, why in report.failed) + ".")
            return data
        self.instance = Split.objects.get(pk=report.recorded[0])
        self.report = report
        return data


@admin.register(Split)
class SplitAdmin(WriteActionsMixin, admin.ModelAdmin):
    form = SplitForm
    # fits 1366 px: the position by its ticker (its id is one click away)
    list_display = ("id", "ticker", "ratio_shown", "effective_date", "status", "qty_before",
                    "qty_after", "cash_in_lieu", "anchor_before", "anchor_after")
    list_filter = ("status", "effective_date")
    search_fields = ("id", "position__id", "position__ticker")
    list_select_related = ("position",)
    actions = ["apply_due"]

    ticker = DividendAdmin.ticker

    def save_model(self, request, obj, form, change):
        report = form.report  # recorded (and applied when due) by the form's service call
        self.message_user(request, f"Recorded on {len(report.recorded)} position(s), applied "
                          f"on {len(report.applied)}.", messages.SUCCESS)
        for pid, why in report.failed:
            self.message_user(request, f"{pid}: not applied: {why}", messages.WARNING)

    @admin.display(description="ratio (new:old)")
    def ratio_shown(self, split):
        return split.ratio_text

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Apply due splits now (as of today)", permissions=["write"])
    def apply_due(self, request, queryset):
        from positions.workflows.corporate_actions import splits_apply_due

        report = splits_apply_due()
        self.log_action(request, Split.objects.filter(pk__in=report.applied,
                                                      status=SplitStatus.APPLIED),
                        "Applied (admin action apply_due).")
        self.message_user(request, f"{len(report.applied)} split(s) applied.", messages.SUCCESS)
        for split_id, reason in report.failed:
            self.message_user(request, f"{split_id}: {reason}", messages.ERROR)
