"""What every operator screen shares: actions that write need a permission and leave a record."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from rest_framework.authtoken.admin import TokenAdmin as DRFTokenAdmin
from rest_framework.authtoken.models import TokenProxy


class WriteActionsMixin:
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
        from django.contrib.admin.models import CHANGE, LogEntry

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
    help text of its own takes the serializer's, the description the API schema shows."""

    api_serializer: type | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        described = self.api_serializer().fields if self.api_serializer else {}
        for name, field in self.fields.items():
            if name in described and described[name].help_text and not field.help_text:
                field.help_text = described[name].help_text

    def clean(self):
        data = super().clean()
        if self.api_serializer is None:
            return data
        described = self.api_serializer().fields
        # a field the form could not parse is already reported; the others are checked, and
        # one left empty is left out as a request body would leave it out
        given = {n: data[n] for n, f in described.items() if n in data and n in self.fields
                 and n not in self.errors and (data[n] is not None or f.allow_null)}
        serializer = self.api_serializer(data=given, partial=True)
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
