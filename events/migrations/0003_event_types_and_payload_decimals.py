"""Python-side changes only: the payloads' JSON encoder/decoder (exact decimals) and the
dividend_step_failed event type. No column changes, so nothing runs in the database: on SQLite
an AlterField would rebuild the table and drop the append-only triggers of 0002."""

import volbal.renderers
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_append_only'),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=[
        migrations.AlterField(
            model_name='event',
            name='inputs',
            field=models.JSONField(decoder=volbal.renderers.AuditJSONDecoder, default=dict, encoder=volbal.renderers.AuditJSONEncoder),
        ),
        migrations.AlterField(
            model_name='event',
            name='outputs',
            field=models.JSONField(decoder=volbal.renderers.AuditJSONDecoder, default=dict, encoder=volbal.renderers.AuditJSONEncoder),
        ),
        migrations.AlterField(
            model_name='event',
            name='type',
            field=models.CharField(choices=[('position_created', 'Position Created'), ('config_changed', 'Config Changed'), ('anchor_set', 'Anchor Set'), ('evaluation', 'Evaluation'), ('order_submitted', 'Order Submitted'), ('order_trimmed_guardrail', 'Order Trimmed Guardrail'), ('order_rejected_min', 'Order Rejected Min'), ('order_filled', 'Order Filled'), ('order_partially_filled', 'Order Partially Filled'), ('order_cancelled', 'Order Cancelled'), ('fill_rejected', 'Fill Rejected'), ('anchor_updated', 'Anchor Updated'), ('ex_div_announced', 'Ex Div Announced'), ('ex_div_effective', 'Ex Div Effective'), ('anchor_adjusted_for_dividend', 'Anchor Adjusted For Dividend'), ('dividend_cash_received', 'Dividend Cash Received'), ('dividend_step_failed', 'Dividend Step Failed')], max_length=40),
        ),
    ])]
