"""Paper trading equals the backtest with resting orders (docs/brokers.md#resting-orders): a
bundled sample's closes are fed one by one into the service, the trade cycle runs after each
for a paper-broker position with ``order_type: limit`` and auto_submit (dividends announced
ahead), and the result is the backtest's ``fill: limit`` on the same closes, order by order:
the same fills at the same limit prices on the same days, the same rungs, the same balances;
verify_ledger passes. The model is test_paper_equals_backtest.py (``fill: next_bar``), whose
clock fixture this reuses: the service's "now" is noon in New York on each bar's date."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from events.models import Event
from orders.models import Order
from positions.strategy import rules
from positions.strategy.backtest import data, engine
from positions.tests.test_paper_equals_backtest import (
    CASES,
    SLIPPAGE,
    assert_ledger_ok,
    feed_closes,
    live_fills,
    noon,
    opened_as_backtested,
)

pytestmark = [pytest.mark.system, pytest.mark.django_db]  # a sample's prices, day by day
D = Decimal

@pytest.mark.parametrize("start,end,fields", CASES)
def test_paper_trading_resting_orders_equals_the_limit_backtest(user, clock_at, start, end,
                                                               fields):
    series, dividends = data.load_sample("IBM")
    # the closes only: the live feed records one price per day, and so reads the backtest
    series = dataclasses.replace(series.between(start, end), opens=None, highs=None, lows=None)
    days = [dt.date.fromisoformat(series.label(i)[:10]) for i in range(len(series))]
    cfg = rules.Config(**fields)
    run = engine.run(series, cfg, engine.Setup(slippage_bps=SLIPPAGE, fill="limit"), dividends)
    opening, *orders = run.orders
    assert opening.kind == "opening" and len(run.rungs) >= 5  # enough to compare

    clock_at(noon(days[0]))
    pos = opened_as_backtested(user, opening, days, dividends, order_type="limit", **fields)
    feed_closes(clock_at, series, days, start=0)  # bar 0 too: its close places the first rungs
    fills, live = live_fills(pos)
    expected = [(days[o.bar], o.side, o.qty, o.price, o.commission) for o in orders]
    assert live == expected
    # the resting ones at the backtest's limits, as rungs
    limits = {i: limit for i, _trigger, limit in run.rungs}
    assert [(f.order.rung, f.order.limit_price) for f in fills] == [
        (o.side, limits[k + 1]) if k + 1 in limits else (None, None)
        for k, o in enumerate(orders)]

    pos.refresh_from_db()
    assert (pos.qty, pos.cash, pos.dividend_receivable, pos.anchor_price) == (
        run.qty, run.cash, run.receivable, run.anchor)
    # exactly the last close's rungs rest now, each event naming its rung
    resting = Order.objects.filter(position=pos, rung__isnull=False, status="submitted")
    assert 1 <= resting.count() <= 2
    assert all(o.rung == o.side and o.order_type == "limit" for o in resting)
    assert Event.objects.filter(position_id=pos.pk, type="order_submitted",
                                inputs__rung="BUY").exists()
    assert Event.objects.filter(position_id=pos.pk, type="order_cancelled",
                                inputs__reason__startswith="the ladder").exists()
    assert Event.objects.filter(position_id=pos.pk, type="ex_div_effective").exists()

    assert_ledger_ok()
