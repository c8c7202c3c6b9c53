"""Make the audit log append-only in the database itself: UPDATE and DELETE fail."""

from django.db import migrations

PG_UP = """
CREATE OR REPLACE FUNCTION events_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER events_event_append_only BEFORE UPDATE OR DELETE ON events_event
    FOR EACH ROW EXECUTE FUNCTION events_event_append_only();
"""
PG_DOWN = """
DROP TRIGGER IF EXISTS events_event_append_only ON events_event;
DROP FUNCTION IF EXISTS events_event_append_only();
"""
SQLITE_UP = [
    "CREATE TRIGGER events_event_no_update BEFORE UPDATE ON events_event "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;",
    "CREATE TRIGGER events_event_no_delete BEFORE DELETE ON events_event "
    "BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS events_event_no_update;",
    "DROP TRIGGER IF EXISTS events_event_no_delete;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise NotImplementedError(
                f"append-only events need a trigger for {schema_editor.connection.vendor}")
        for sql in [statements] if isinstance(statements, str) else statements:
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": PG_DOWN, "sqlite": SQLITE_DOWN}),
        ),
    ]
