"""Every event names its actor (events.actor). Events recorded before are backfilled as source
``legacy``, actor ``unknown``: who did them was not recorded.

On SQLite, adding the columns and constraints rebuilds the table, which drops its append-only
triggers (migration 0002): they are created again here."""

import importlib

from django.db import migrations, models

import events.actor

SOURCES = [("api", "Api"), ("admin", "Admin"), ("cron", "Cron"), ("worker", "Worker"),
           ("system", "System"), ("legacy", "Legacy")]


def fields(source, name, user_id):
    return [
        migrations.AddField(
            model_name="event", name="actor_source",
            field=models.CharField(choices=SOURCES, default=source, max_length=8)),
        migrations.AddField(
            model_name="event", name="actor_user_id",
            field=models.BigIntegerField(blank=True, default=user_id, null=True)),
        migrations.AddField(
            model_name="event", name="actor_name",
            field=models.CharField(default=name, max_length=150)),
    ]


def sqlite_triggers_again(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    append_only = importlib.import_module("events.migrations.0002_append_only")
    for sql in append_only.SQLITE_DOWN + append_only.SQLITE_UP:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0003_event_types_and_payload_decimals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # the existing rows get the legacy actor; no default stays in the database
            database_operations=fields("legacy", "unknown", None),
            state_operations=fields(events.actor.current_source, events.actor.current_name,
                                    events.actor.current_user_id),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(actor_source__in=[s for s, _ in SOURCES]),
                name="event_actor_source_valid"),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(condition=~models.Q(actor_name=""),
                                              name="event_actor_named"),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=~models.Q(actor_source__in=("api", "admin"))
                | models.Q(actor_user_id__isnull=False),
                name="event_actor_user_when_request"),
        ),
        migrations.RunPython(sqlite_triggers_again, migrations.RunPython.noop),
    ]
