"""The database cache's table (settings.CACHES, LOCATION volbal_cache): made by ``migrate`` so
the README's commands need no extra step. ``createcachetable`` skips a table already there."""

from django.core.management import call_command
from django.db import migrations


def create(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def drop(apps, schema_editor):
    schema_editor.execute("DROP TABLE IF EXISTS volbal_cache")


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunPython(create, drop)]
