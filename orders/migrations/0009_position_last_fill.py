"""The last fill of each position (positions/0017's last_fill_price and last_fill_at, kept by
positions.books from now on) filled in from the fills already recorded: the newest by time,
then id, as the known price read it from the fills before."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def backfill(apps, schema_editor):
    Position = apps.get_model("positions", "Position")
    Fill = apps.get_model("orders", "Fill")
    last = Fill.objects.filter(order__position_id=OuterRef("pk")).order_by("-created_at", "-id")
    Position.objects.update(last_fill_price=Subquery(last.values("price")[:1]),
                            last_fill_at=Subquery(last.values("created_at")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0008_order_one_open_per_rung"),
        ("positions", "0017_known_price_columns"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
