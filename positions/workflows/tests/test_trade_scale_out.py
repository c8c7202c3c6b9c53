"""Scale-out (docs/architecture.md#background-jobs): four ``manage.py trade`` processes at once,
each with its own connection, over 20,000 positions on PostgreSQL split them: each position is
evaluated exactly once for the new price and no order is submitted twice. The cycle evaluates a
claimed batch with a few statements (positions.services.positions_evaluate_claimed), so the full
size runs in CI; VOLBAL_SCALE_POSITIONS sets another size."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from events.models import Event
from orders.models import Order
from positions.models import Position, Price, TradeCycle

pytestmark = [pytest.mark.system, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
D = Decimal
N = int(os.environ.get("VOLBAL_SCALE_POSITIONS", "20000"))


def test_four_trade_processes_evaluate_each_position_once(user):
    Position.objects.bulk_create(
        [Position(owner=user, ticker="ZIM", qty=D(50), cash=D(5000), anchor_price=D(100),
                  opening_qty=D(50), opening_cash=D(5000), broker="paper", auto_submit=True)
         for _ in range(N)], batch_size=5000)
    new = Price.objects.create(ticker="ZIM", price=D(96),
                               ts=timezone.now() - dt.timedelta(minutes=1))
    db = settings.DATABASES["default"]
    env = {**os.environ, "VOLBAL_CALENDAR": "",  # trade whatever the hour of the run
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                           f"{db['PORT'] or 5432}/{db['NAME']}"}
    procs = [subprocess.Popen([sys.executable, "manage.py", "trade", "--quiet", "--batch", "250"],
                              cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert all("Cycle (no calendar: always in session)" in out for out in outputs), outputs

    cycles = list(TradeCycle.objects.all())
    assert len(cycles) == 4
    assert sum(c.positions_claimed for c in cycles) == N
    assert sum(c.evaluated for c in cycles) == N
    assert sum(c.submitted for c in cycles) == N and sum(c.errors for c in cycles) == 0
    per_position = Event.objects.filter(type="evaluation").values("position_id").annotate(
        n=Count("id"))
    assert len(per_position) == N and {row["n"] for row in per_position} == {1}
    assert Event.objects.filter(type="evaluation", inputs__price=96,
                                inputs__price_source="stored").count() == N
    assert Position.objects.filter(evaluated_price_ts=new.ts,
                                   cycle_lease_until__isnull=True).count() == N
    assert sum(c.evaluated > 0 for c in cycles) >= 2  # the positions were split between them
    orders = Order.objects.values("position_id").annotate(n=Count("id"))
    assert len(orders) == N and {row["n"] for row in orders} == {1}
    assert Order.objects.filter(routed_at__isnull=True).count() == 0
