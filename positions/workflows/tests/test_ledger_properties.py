"""Property: whatever honest history the services write, ``manage.py verify_ledger`` agrees.

Random sequences of fractional orders, partial fills (some refused: too large, not enough
cash or shares, order no longer open), cancels, dividends announced and processed, splits
(forward, reverse 1:3, some recorded late: effective before an ex-date already processed)
with the split and dividend runs in either order, with the
clock moving on by hours between steps in the default trading time zone (America/New_York), so
fills land on both sides of ex-dates' local midnights. Deterministic (``derandomize=True``).
Runs on the suite's database (PostgreSQL in CI)."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from events.models import Event
from orders.models import Fill
from orders.services import order_cancel, order_fill, order_submit_for
from positions.dividends import dividend_announce
from positions.models import Dividend, Split
from positions.services import position_create
from positions.workflows.corporate_actions import (
    dividends_process,
    split_announce,
    splits_apply_due,
)
from volbal import clock
from volbal.errors import DomainError


def scaled(lo: int, hi: int, places: int) -> st.SearchStrategy[D]:
    return st.integers(lo, hi).map(lambda i: D(i).scaleb(-places))


quantities = scaled(1, 40 * 10**8, 8)  # 0.00000001 .. 40
prices = scaled(10_000, 500 * 10**6, 6)  # 0.01 .. 500
fills = st.lists(st.tuples(scaled(1, 100, 2), prices,  # share of what is left, price
                          st.one_of(st.none(), scaled(0, 2 * 10**6, 6))),  # commission
                max_size=3)
dividends = st.one_of(st.none(), st.tuples(
    st.integers(0, 2), st.integers(0, 3),  # ex-date days ahead, pay-date days after
    scaled(1, 3 * 10**6, 6), st.one_of(st.none(), scaled(0, 9_999, 4))))  # dps, withholding
rounds = st.lists(st.fixed_dictionaries({
    "side": st.sampled_from(["BUY", "SELL"]),
    "qty": quantities,
    "fills": fills,
    "overfill": st.booleans(),  # a fill larger than what is left: refused
    "cancel": st.booleans(),
    "dividend": dividends,
    "hours": st.integers(0, 30),  # then the clock moves on
    "process": st.booleans(),  # and the dividend run comes
    "split": st.one_of(st.none(), st.tuples(
        st.integers(-2, 1),  # effective this many days from today (before: recorded late)
        st.sampled_from(["2:1", "1:3", "3:2", "1:2"]))),
    "splits_first": st.booleans(),  # the split run before the dividend run, or after
}), min_size=1, max_size=8)


def ledger() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=StringIO())
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(opening_qty=st.one_of(st.just(D(0)), quantities), opening_cash=scaled(0, 10**12, 6),
       history=rounds)
def test_honest_histories_always_verify(user, monkeypatch, opening_qty, opening_cash,
                                        history):
    now = [dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)]  # stays before today
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    with transaction.atomic():
        pos = position_create(owner=user, ticker="PROP", qty=opening_qty, cash=opening_cash,
                              max_orders_per_day=100000)
        for n, step in enumerate(history):
            try:
                with transaction.atomic():  # a savepoint, as the request's transaction would be
                    order, _ = order_submit_for(owner=user, position_id=pos.id,
                                                side=step["side"], qty=step["qty"],
                                                idempotency_key=f"k{n}")
            except DomainError:  # an order that could never fill is refused, creating nothing
                order = None
            for share, price, commission in step["fills"] if order else ():
                part = (_remaining(order.id) * share).quantize(D("0.00000001"), ROUND_DOWN)
                refused(order_fill, owner=user, order_id=order.id, price=price,
                        filled_qty=max(part, D("0.00000001")), commission=commission)
            if order and step["overfill"]:
                refused(order_fill, owner=user, order_id=order.id, price=D("1"),
                        filled_qty=_remaining(order.id) + D("0.00000001"))
            if order and step["cancel"]:
                refused(order_cancel, owner=user, order_id=order.id)
            if step["dividend"]:
                ahead, pay_after, dps, rate = step["dividend"]
                ex = clock.trading_day() + dt.timedelta(days=ahead)
                refused(dividend_announce, owner=user, position_id=pos.id, ex_date=ex,
                        pay_date=ex + dt.timedelta(days=pay_after), dps=dps,
                        withholding_rate=rate)
            if step["split"]:
                days, ratio = step["split"]
                refused(split_announce, owner=user, position_id=pos.id, ratio=ratio,
                        effective_date=clock.trading_day() + dt.timedelta(days=days))
            now[0] += dt.timedelta(hours=step["hours"])
            if step["process"]:
                runs = [lambda: splits_apply_due(today=clock.trading_day()),
                        lambda: dividends_process(today=clock.trading_day())]
                for run in runs if step["splits_first"] else runs[::-1]:
                    run()
        code, out = ledger()
        assert code == 0, out
        n_fills = Fill.objects.count()
        n_dividends = Dividend.objects.exclude(status="announced").count()
        assert (f"{n_fills} fill{'' if n_fills == 1 else 's'}, {n_dividends} dividend"
                f"{'' if n_dividends == 1 else 's'} checked") in out
        event(f"fills: {min(n_fills, 3)}+")
        event(f"dividends effective or paid: {min(n_dividends, 2)}+")
        event("a dividend paid" if Dividend.objects.filter(status="paid").exists()
              else "no dividend paid")
        event("a split applied" if Split.objects.filter(status="applied").exists()
              else "no split applied")
        event("an entitlement corrected" if Event.objects.filter(
            type="dividend_entitlement_corrected").exists() else "no entitlement corrected")
        event("an entitlement moved by fills" if Dividend.objects.exclude(
            status="announced").exclude(entitlement_qty=opening_qty).exists()
              else "no entitlement moved by fills")
        transaction.set_rollback(True)  # the next example starts from empty books


def refused(service, **kwargs) -> None:
    """Call a service that may refuse: a refusal changes nothing but its event."""
    try:
        service(**kwargs)
    except DomainError:
        pass


def _remaining(order_id: str) -> D:
    from orders.models import Order

    order = Order.objects.get(pk=order_id)
    return order.qty - order.filled_qty
