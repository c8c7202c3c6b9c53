"""Every stored price names who recorded it (events.actor). Prices stored before are backfilled
as source ``legacy``, recorder ``unknown``."""

from django.db import migrations, models

import events.actor

SOURCES = [("api", "Api"), ("admin", "Admin"), ("cron", "Cron"), ("worker", "Worker"),
           ("system", "System"), ("legacy", "Legacy")]


def fields(source, name, user_id):
    return [
        migrations.AddField(
            model_name="price", name="recorded_source",
            field=models.CharField(choices=SOURCES, default=source, max_length=8)),
        migrations.AddField(
            model_name="price", name="recorded_user_id",
            field=models.BigIntegerField(blank=True, default=user_id, null=True)),
        migrations.AddField(
            model_name="price", name="recorded_by",
            field=models.CharField(default=name, max_length=150)),
    ]


class Migration(migrations.Migration):

    dependencies = [
        ("positions", "0004_dividend_rate_label_withholding_tax_rate"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # the existing rows get the legacy recorder; no default stays in the database
            database_operations=fields("legacy", "unknown", None),
            state_operations=fields(events.actor.current_source, events.actor.current_name,
                                    events.actor.current_user_id),
        ),
    ]
