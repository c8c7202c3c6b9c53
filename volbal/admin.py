"""What every operator screen shares: actions that write need a permission and leave a record,
forms that validate as the API, numbers and times shown one way
(docs/admin.md#how-values-are-shown), the API token screen."""

from __future__ import annotations

import functools
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_permission_codename
from django.db import models
from django.utils import timezone
from django.utils.html import format_html
from django.utils.module_loading import import_string
from rest_framework.authtoken.admin import TokenAdmin as DRFTokenAdmin
from rest_framework.authtoken.models import TokenProxy

from events.actor import admin_prefix
from volbal import clock
from volbal.renderers import decimal_text

# Money columns are kept to 6 decimal places (positions.models.MONEY); quantities and ratios
# to 8. A money column is shown with 2 to 6 places, the others with the places they need.
MONEY_PLACES = 6


def shown_decimal(value: Decimal | None, *, money: bool = False) -> str:
    """A number as operators read it: no trailing zeros (``130.850000`` -> ``130.85``), and
    money with at least 2 places (``10000`` -> ``10000.00``)."""
    if value is None:
        return "—"
    text = decimal_text(value)
    if money:
        places = len(text.partition(".")[2])
        text = f"{value:.{max(2, min(places, MONEY_PLACES))}f}"
    return text


def shown_date(value) -> str:
    """A date as operators read it: ISO, as in the times (``2026-01-15``)."""
    if value is None:
        return "—"
    return format_html("<span style='white-space:nowrap'>{}</span>", value.isoformat())


def shown_time(value, *, seconds: bool = True, two_lines: bool = False) -> str:
    """A time as operators read it: in the trading time zone, with the zone's name, on one
    line (a narrow column does not break it), or the date above the time for a narrow one."""
    if value is None:
        return "—"
    local = timezone.localtime(value, clock.trading_tz())
    day, time = local.strftime("%Y-%m-%d"), local.strftime(f"%H:%M{':%S' if seconds else ''} %Z")
    if two_lines:
        return format_html("{}<br><span style='white-space:nowrap'>{}</span>", day, time)
    return format_html("<span style='white-space:nowrap'>{} {}</span>", day, time)


@functools.cache
def _shown_column(model, name: str):
    """The display function of a model's decimal, date or time column (None for another
    column): one object per column, so the admin recognises it as read-only wherever it
    appears."""
    try:
        field = model._meta.get_field(name)
    except Exception:  # not a model field: a ModelAdmin method or attribute
        return None
    if isinstance(field, models.DecimalField):
        money = field.decimal_places == MONEY_PLACES

        def show(obj):
            return shown_decimal(getattr(obj, name), money=money)
    elif isinstance(field, models.DateTimeField):
        def show(obj):
            return shown_time(getattr(obj, name))
    elif isinstance(field, models.DateField):
        def show(obj):
            return shown_date(getattr(obj, name))
    else:
        return None
    show.__name__ = name  # the CSS class of its cell, as for the column itself
    return admin.display(description=field.verbose_name, ordering=name)(show)


class ShownValuesMixin:
    """A ModelAdmin or inline whose decimal, date and time columns are shown one way in the
    lists and on the read-only pages: numbers without trailing zeros (money to 2-6 places),
    dates ISO, times in the trading time zone with the zone's name (:func:`shown_decimal`,
    :func:`shown_date`, :func:`shown_time`). Fields a form edits keep their inputs."""

    def _shown(self, names):
        return [(_shown_column(self.model, n) or n) if isinstance(n, str) else n
                for n in names]

    def readonly_names(self, request, obj=None) -> list:
        """The read-only fields by name (a subclass extends this, not get_readonly_fields)."""
        return list(super().get_readonly_fields(request, obj))

    def _shown_names(self, request, obj) -> set[str]:
        """The fields shown by their display function: the read-only ones, and on a page the
        user may only view, every editable one (the admin's own choice of fields)."""
        names = {n for n in self.readonly_names(request, obj) if isinstance(n, str)}
        if obj is not None and not self.has_change_permission(request, obj):
            names |= {f.name for f in self.model._meta.concrete_fields if f.editable}
        return {n for n in names if _shown_column(self.model, n)}

    def get_list_display(self, request):
        return self._shown(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        # the display functions are read-only fields too: no form ever takes them
        return [*self.readonly_names(request, obj),
                *(_shown_column(self.model, n) for n in sorted(self._shown_names(request, obj)))]

    def get_fieldsets(self, request, obj=None):
        return self.shown_fieldsets(request, obj, super().get_fieldsets(request, obj))

    def shown_fieldsets(self, request, obj, fieldsets) -> list:
        """``fieldsets`` with the fields of :meth:`_shown_names` by their display function (an
        admin that builds its own fieldsets passes them through this)."""
        shown, seen = self._shown_names(request, obj), set()

        def swap(name):
            if isinstance(name, (list, tuple)):  # fields on one line
                return tuple(swap(n) for n in name)
            return _shown_column(self.model, name) if name in shown else name

        out = []
        for title, options in fieldsets:
            fields = []
            for item in map(swap, options["fields"]):
                if item not in seen:  # a display function get_fields appended already
                    seen.add(item)
                    fields.append(item)
            out.append((title, {**options, "fields": fields}))
        return out


class ReadOnlyAdminMixin(ShownValuesMixin):
    """For a screen (ModelAdmin or inline) that only shows: no add, change or delete, for
    every user (the audit log, deliveries, cycles, fills, idempotency records)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WriteActionsMixin(ShownValuesMixin):
    """For a ModelAdmin whose actions write (cancel, evaluate, process).

    Such an action is declared ``@admin.action(permissions=["write"], ...)``: it is offered to,
    and runs for, only a user with the model's *change* permission (``orders.change_order``…),
    so a staff user who may only view is refused. The permission is checked by its codename:
    these admins answer ``has_change_permission`` False to every user, superusers included,
    because their edit forms are closed; their actions go through the services instead.

    Each object an action changed is recorded with :meth:`log_action` as a ``LogEntry``
    (the admin's history and "Recent actions")."""

    def has_write_permission(self, request) -> bool:
        codename = get_permission_codename("change", self.opts)
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def log_action(self, request, objects, message: str) -> None:
        objects = list(objects)
        if objects:
            LogEntry.objects.log_actions(user_id=request.user.pk, queryset=objects,
                                         action_flag=CHANGE, change_message=message)


class ApiValidatedForm(forms.ModelForm):
    """An admin form that validates exactly as the API: one definition of each field's bounds,
    choices, normalisation and description (the API's serializer, ``api_serializer``).

    The form parses what was typed (its model fields); then the serializer checks the values
    as it checks a request body: its errors become the form's, named on their field, and the
    values it returns (normalised: a ticker upper-cased) are the ones saved. A field without
    help text of its own takes the serializer's, the description the API schema shows.

    ``api_serializer`` is the serializer's dotted path, imported when a form is first built:
    the admin modules are imported by ``django.setup()`` in every process, and a command such
    as ``manage.py sweep`` should not pay for loading the API layer."""

    api_serializer: str | None = None

    @classmethod
    def serializer_class(cls) -> type | None:
        return import_string(cls.api_serializer) if cls.api_serializer else None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        serializer_class = self.serializer_class()
        described = serializer_class().fields if serializer_class else {}
        for name, field in self.fields.items():
            if name in described and described[name].help_text and not field.help_text:
                field.help_text = described[name].help_text
            value = self.initial.get(name)
            if isinstance(field, forms.DecimalField) and isinstance(value, Decimal):
                self.initial[name] = decimal_text(value)  # 0.03, not 0.03000000

    def clean(self):
        data = super().clean()
        serializer_class = self.serializer_class()
        if serializer_class is None:
            return data
        described = serializer_class().fields
        # a field the form could not parse is already reported; the others are checked, and
        # one left empty is left out as a request body would leave it out
        given = {n: data[n] for n, f in described.items() if n in data and n in self.fields
                 and n not in self.errors and (data[n] is not None or f.allow_null)}
        serializer = serializer_class(data=given, partial=True)
        if serializer.is_valid():
            data.update(serializer.validated_data)
            return data
        for name, errors in serializer.errors.items():
            for error in errors if isinstance(errors, list) else [errors]:
                self.add_error(name if name in self.fields else None, str(error))
        return data


TOKEN_SHOWN = 8  # characters of an API key the admin shows


def token_prefix(key: str) -> str:
    return f"{key[:TOKEN_SHOWN]}…"


class ApiTokenAdmin(DRFTokenAdmin):
    """DRF's token screen, for superusers only, never showing a whole key: the list, page
    titles, messages and the admin's history show the key's first characters (enough to tell
    tokens apart). A key is handed over with ``manage.py drf_create_token USERNAME``."""

    list_display = ("key_shown", "user", "created")

    @admin.display(description="key")
    def key_shown(self, obj):
        return token_prefix(obj.key)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


def register_token_admin(site=admin.site) -> None:
    """Replace DRF's token screen by :class:`ApiTokenAdmin`. The token's name everywhere the
    admin names an object (titles, breadcrumbs, messages, the history's LogEntry) is its
    ``str``: for the admin's token proxy (used nowhere else) that becomes the prefix."""
    TokenProxy.__str__ = lambda self: token_prefix(self.key)
    if site.is_registered(TokenProxy):
        site.unregister(TokenProxy)
    site.register(TokenProxy, ApiTokenAdmin)


def configure_site(site=admin.site) -> None:
    """The operator site: no navigation sidebar (at 1366 px the lists need its width), and
    the API token screen of :func:`register_token_admin`."""
    site.enable_nav_sidebar = False
    site.empty_value_display = "—"  # as shown_decimal and shown_time show nothing
    register_token_admin(site)


class TradingTimeZoneMiddleware:
    """Under the admin, times are shown and typed in the trading time zone
    (``VOLBAL_TRADING_TZ``); the API keeps UTC."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(admin_prefix()):
            return self.get_response(request)
        with timezone.override(clock.trading_tz()):
            return self.get_response(request)
