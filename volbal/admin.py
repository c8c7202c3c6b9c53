"""What every operator screen shares: actions that write need a permission and leave a record."""

from __future__ import annotations

from django.contrib.auth import get_permission_codename


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
