# A webhook cursor is kept per stream: a position's events, or a portfolio's own events.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0016_portfolios'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='webhookcursor',
            name='whk_cursor_unique',
        ),
        migrations.RenameField(
            model_name='webhookcursor',
            old_name='position_id',
            new_name='stream_id',
        ),
        migrations.AddConstraint(
            model_name='webhookcursor',
            constraint=models.UniqueConstraint(fields=('endpoint', 'stream_id'),
                                               name='whk_cursor_unique'),
        ),
    ]
