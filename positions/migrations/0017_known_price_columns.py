"""The known price's own history on the position (orders.selectors.known_price): the last
fill's price and time and the latest applied split's effective date, kept by positions.books
from now on. The split's date is filled in here from the splits already applied; the last fill
by orders/0007 (the fills are the orders app's: a migration here depends on nothing above)."""

from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery


def backfill(apps, schema_editor):
    Position = apps.get_model("positions", "Position")
    Split = apps.get_model("positions", "Split")
    applied = (Split.objects.filter(position_id=OuterRef("pk"), status="applied")
               .values("position_id").annotate(latest=Max("effective_date")).values("latest"))
    Position.objects.update(last_split_date=Subquery(applied[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('positions', '0016_split_exact_ratio'),
    ]

    operations = [
        migrations.AddField(
            model_name='position',
            name='last_fill_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='position',
            name='last_fill_price',
            field=models.DecimalField(blank=True, decimal_places=6, editable=False, max_digits=22, null=True),
        ),
        migrations.AddField(
            model_name='position',
            name='last_split_date',
            field=models.DateField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
