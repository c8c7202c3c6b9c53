"""The log's position and order ids, and the webhook cursors' position id, are plain indexed
columns (docs/architecture.md#layers-and-the-direction-of-imports): migrations 0001 and 0011
create them so, and depend on neither positions nor orders.

A database created when they were foreign keys still has the constraints: this drops them,
found by introspection, and keeps the columns, their indexes and the rows. On SQLite a
constraint can only go with a rebuild of the table, which drops the log's append-only
triggers (migration 0002): they are created again."""

import importlib

from django.db import migrations

# (model, column) of the former foreign keys
FORMER_KEYS = [("Event", "position_id"), ("Event", "order_id"),
               ("WebhookCursor", "position_id")]


def drop_foreign_keys(apps, schema_editor):
    connection = schema_editor.connection
    for model_name in dict.fromkeys(name for name, _ in FORMER_KEYS):
        model = apps.get_model("events", model_name)
        columns = {column for name, column in FORMER_KEYS if name == model_name}
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(
                cursor, model._meta.db_table)
        keys = [name for name, info in constraints.items()
                if info["foreign_key"] and set(info["columns"]) <= columns]
        if not keys:  # created by this history: nothing to drop
            continue
        if connection.vendor == "sqlite":
            schema_editor._remake_table(model)  # the table as the state has it: no keys
            if model_name == "Event":
                append_only = importlib.import_module("events.migrations.0002_append_only")
                for sql in append_only.SQLITE_DOWN + append_only.SQLITE_UP:
                    schema_editor.execute(sql, params=None)
        else:
            for name in keys:
                schema_editor.execute(schema_editor._delete_fk_sql(model, name))


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0013_webhook_delivery_plural"),
    ]

    operations = [
        # the foreign keys are not restored on the way back: the state never had them
        migrations.RunPython(drop_foreign_keys, migrations.RunPython.noop),
    ]
