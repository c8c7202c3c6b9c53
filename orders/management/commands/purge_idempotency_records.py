"""manage.py purge_idempotency_records: delete expired idempotency records (run it from cron)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from orders.services import idempotency_records_purge


class Command(BaseCommand):
    help = (
        "Delete the idempotency records whose keys expired (they are remembered for "
        "VOLBAL_IDEMPOTENCY_TTL_HOURS, default 24) and say how many. Safe to run at any time and "
        "concurrently; an order's key still answers its order after its record is gone."
    )

    def handle(self, *args, **options):
        deleted = idempotency_records_purge()
        noun = "record" if deleted == 1 else "records"
        self.stdout.write(
            f"Deleted {deleted} expired idempotency {noun} "
            f"(keys are kept {settings.VOLBAL_IDEMPOTENCY_TTL_HOURS} hours)."
        )
