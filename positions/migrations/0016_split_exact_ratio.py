"""A split's ratio stated exactly as new:old whole shares (docs/strategy.md#splits): the
decimal ``ratio`` becomes two integer columns, each existing ratio converted exactly (0.5 ->
1:2, 0.33333333 -> 33333333:100000000: what was stored, not what may have been meant)."""

from decimal import Decimal
from fractions import Fraction

from django.db import migrations, models
from django.db.models import Q


def to_rates(apps, schema_editor):
    Split = apps.get_model("positions", "Split")
    for split in Split.objects.all().only("id", "ratio"):
        k = Fraction(Decimal(split.ratio))
        Split.objects.filter(pk=split.pk).update(new_rate=k.numerator, old_rate=k.denominator)


def to_ratio(apps, schema_editor):
    Split = apps.get_model("positions", "Split")
    for split in Split.objects.all().only("id", "new_rate", "old_rate"):
        ratio = (Decimal(split.new_rate) / Decimal(split.old_rate)).quantize(Decimal("1e-8"))
        Split.objects.filter(pk=split.pk).update(ratio=ratio)


class Migration(migrations.Migration):

    dependencies = [
        ("positions", "0015_guard_reference"),
    ]

    operations = [
        migrations.AddField(model_name="split", name="new_rate",
                            field=models.PositiveIntegerField(null=True)),
        migrations.AddField(model_name="split", name="old_rate",
                            field=models.PositiveIntegerField(null=True)),
        migrations.RunPython(to_rates, to_ratio),
        migrations.RemoveConstraint(model_name="split", name="split_ratio_pos"),
        migrations.RemoveField(model_name="split", name="ratio"),
        migrations.AlterField(model_name="split", name="new_rate",
                              field=models.PositiveIntegerField()),
        migrations.AlterField(model_name="split", name="old_rate",
                              field=models.PositiveIntegerField()),
        migrations.AddConstraint(
            model_name="split",
            constraint=models.CheckConstraint(condition=Q(new_rate__gt=0) & Q(old_rate__gt=0),
                                              name="split_rates_pos"),
        ),
    ]
