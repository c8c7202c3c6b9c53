"""Dividends (Flow D): announce, ex-date, pay-date, exactly once, with hand-computed amounts."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import connection

from events.models import Event
from orders.models import Order
from orders.services import order_fill, order_submit_for
from positions.dividends import dividends_process
from positions.models import Dividend, Position

EX = dt.date(2026, 3, 10)
PAY = dt.date(2026, 3, 24)


def announce(api, pid, **body):
    payload = {"ex_date": EX.isoformat(), "pay_date": PAY.isoformat(), "dps": 0.5, **body}
    return api.post(f"/v1/positions/{pid}/dividends", payload, format="json")


def types(pid):
    return list(Event.objects.filter(position_id=pid).order_by("id").values_list("type",
                                                                                 flat=True))


@pytest.mark.django_db
def test_ex_date_then_pay_date_moves_net_to_cash_once(api, make_position):
    pos = make_position(qty="100", cash="1000", anchor_price="50")
    res = announce(api, pos.id)
    assert res.status_code == 201
    body = res.json()
    assert body["status"] == "announced" and body["withholding_tax_rate"] == 0.25
    assert "ex_div_announced" in types(pos.id)

    dividends_process(today=EX - dt.timedelta(days=1))  # nothing due yet
    assert Dividend.objects.get().status == "announced"

    dividends_process(today=EX)
    pos.refresh_from_db()
    # 100 shares x 0.50 = 50.00 gross; 25 % withheld -> 37.50 net, receivable
    assert pos.dividend_receivable == D("37.5") and pos.cash == D("1000")
    assert pos.anchor_price == D("49.5")  # 50 - 0.50
    div = Dividend.objects.get()
    assert (div.status, div.entitlement_qty, div.gross_amount, div.net_amount) == (
        "effective", D("100"), D("50"), D("37.5"))
    shown = api.get(f"/v1/positions/{pos.id}").json()
    assert shown["dividend_receivable"] == 37.5

    dividends_process(today=PAY)
    dividends_process(today=PAY + dt.timedelta(days=3))  # again: nothing more
    pos.refresh_from_db()
    assert pos.cash == D("1037.5") and pos.dividend_receivable == 0
    assert Dividend.objects.get().status == "paid"
    assert types(pos.id).count("ex_div_effective") == 1
    assert types(pos.id).count("anchor_adjusted_for_dividend") == 1
    assert types(pos.id).count("dividend_cash_received") == 1
    listed = api.get(f"/v1/positions/{pos.id}/dividends").json()
    assert [d["status"] for d in listed["dividends"]] == ["paid"]


@pytest.mark.django_db
def test_both_dates_passed_at_once_are_caught_up_in_order(api, make_position):
    pos = make_position(qty="10", cash="0", anchor_price="20")
    announce(api, pos.id, dps=1, withholding_tax_rate=0.1)
    call_command("process_dividends", "--date", "2026-04-01")
    pos.refresh_from_db()
    # 10 x 1.00 = 10 gross, 10 % withheld -> 9 net, straight to cash
    assert pos.cash == D("9") and pos.dividend_receivable == 0 and pos.anchor_price == D("19")
    order = [t for t in types(pos.id) if t != "position_created"]
    assert order == ["ex_div_announced", "ex_div_effective", "anchor_adjusted_for_dividend",
                     "dividend_cash_received"]


@pytest.mark.django_db
def test_fill_on_the_ex_date_is_not_entitled(api, user, make_position, settings):
    settings.VOLBAL_TRADING_TZ = "UTC"
    pos = make_position(qty="100", cash="100000", anchor_price="50")
    today = dt.date.today()
    announce(api, pos.id, ex_date=today.isoformat(), pay_date=today.isoformat(), dps=2,
             withholding_tax_rate=0)
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("40"),
                                idempotency_key="k")
    order_fill(owner=user, order_id=order.id, price=D("50"), filled_qty=D("40"), commission=D(0))
    dividends_process(today=today)
    pos.refresh_from_db()
    div = Dividend.objects.get()
    assert div.entitlement_qty == D("100")  # the 40 bought today do not count
    # 100 x 2 = 200, no withholding; cash: 100000 - 40 x 50 + 200
    assert div.net_amount == D("200") and pos.cash == D("98200") and pos.qty == D("140")


@pytest.mark.django_db
def test_position_without_anchor_and_zero_withholding(api, make_position):
    pos = make_position(qty="3", cash="0")
    announce(api, pos.id, dps=0.333333, withholding_tax_rate=0)
    dividends_process(today=PAY)
    pos.refresh_from_db()
    assert pos.anchor_price is None
    assert pos.cash == D("0.999999")  # 3 x 0.333333, nothing withheld
    assert "anchor_adjusted_for_dividend" not in types(pos.id)


@pytest.mark.django_db
def test_evaluation_after_ex_date_drop_fires_no_false_buy_trigger(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    announce(api, pos.id, dps=4, withholding_tax_rate=0)
    dividends_process(today=EX)
    pos.refresh_from_db()
    assert pos.anchor_price == D("96")
    # The stock opens ex-dividend 4.00 lower: 96 is 4 % below the old anchor (a buy trigger
    # at 3 %) but level with the adjusted one.
    res = api.post(f"/v1/positions/{pos.id}/evaluate", {"price": 96}, format="json").json()
    assert res["proposals"] == [] and res["blocked"] == []
    assert res["reason"] == "no_trigger"
    # The receivable (400) counts in the value: 100 x 96 + 10000 + 400
    assert res["value"] == 20000


@pytest.mark.django_db
@pytest.mark.parametrize("body,field", [
    ({"pay_date": "2026-03-09"}, "pay_date"),
    ({"dps": 0}, "dps"),
    ({"dps": -1}, "dps"),
    ({"withholding_tax_rate": 1}, "withholding_tax_rate"),
    ({"withholding_tax_rate": -0.1}, "withholding_tax_rate"),
    ({"ex_date": "10/03/2026"}, "ex_date"),
    ({"ex_date": "2026-02-30"}, "ex_date"),
])
def test_bad_announcements_are_400_with_the_field_named(api, make_position, body, field):
    pos = make_position(qty="1", cash="1")
    res = announce(api, pos.id, **body)
    assert res.status_code == 400
    assert res.json()["detail"] == "validation_error" and field in res.json()["fields"]
    assert not Dividend.objects.exists()
    assert types(pos.id) == ["position_created"]


@pytest.mark.django_db
def test_duplicate_ex_date_is_a_409_dividend_exists(api, make_position):
    pos = make_position(qty="1", cash="1")
    assert announce(api, pos.id).status_code == 201
    events_before = types(pos.id)
    res = announce(api, pos.id, dps=0.7, pay_date=(PAY + dt.timedelta(days=1)).isoformat())
    assert res.status_code == 409, res.content
    assert res.json()["detail"] == "dividend_exists" and EX.isoformat() in res.json()["message"]
    assert Dividend.objects.count() == 1 and types(pos.id) == events_before


@pytest.mark.django_db
def test_another_owners_position_is_404(other_api, make_position):
    pos = make_position(qty="1", cash="1")
    assert announce(other_api, pos.id).status_code == 404
    assert other_api.get(f"/v1/positions/{pos.id}/dividends").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_concurrent_processors_apply_each_step_once(make_position):
    positions = [make_position(qty="100", cash="0", anchor_price="10") for _ in range(5)]
    for pos in positions:
        Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D("0.2"),
                                withholding_rate=D("0.5"))
    barrier = threading.Barrier(4)
    errors = []

    def run():
        try:
            barrier.wait()
            dividends_process(today=PAY)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for pos in Position.objects.filter(pk__in=[p.pk for p in positions]):
        # 100 x 0.2 = 20 gross, half withheld: 10 net, paid once
        assert pos.cash == D("10") and pos.dividend_receivable == 0
        assert pos.anchor_price == D("9.8")
        assert Event.objects.filter(position=pos, type="ex_div_effective").count() == 1
        assert Event.objects.filter(position=pos, type="dividend_cash_received").count() == 1
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_processed_late_the_anchor_of_a_later_trade_is_not_lowered(api, user, make_position,
                                                                    settings):
    """Two dividends processed together after a trade between their ex-dates: the first one
    finds an anchor priced after its ex-date (already ex-dividend) and keeps it; the second
    lowers it, as processing on time would have."""
    settings.VOLBAL_TRADING_TZ = "UTC"
    today = dt.date.today()
    first_ex, second_ex = today - dt.timedelta(days=2), today + dt.timedelta(days=3)
    pos = make_position(qty="100", cash="100000", anchor_price="50")
    announce(api, pos.id, ex_date=first_ex.isoformat(),
             pay_date=(first_ex + dt.timedelta(days=10)).isoformat(), dps=0.5,
             withholding_tax_rate=0)
    announce(api, pos.id, ex_date=second_ex.isoformat(),
             pay_date=(second_ex + dt.timedelta(days=1)).isoformat(), dps=0.3,
             withholding_tax_rate=0.1)
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="SELL", qty=D("3"),
                                idempotency_key="late")
    order_fill(owner=user, order_id=order.id, price=D("51"), filled_qty=D("3"), commission=D(0))
    pos.refresh_from_db()
    assert pos.anchor_price == D("51")

    dividends_process(today=today + dt.timedelta(days=20))  # nothing ran until then
    pos.refresh_from_db()
    first, second = Dividend.objects.order_by("ex_date")
    # first: 100 shares at the start of its ex-date (the sale came later) x 0.5 = 50, no
    # withholding; the anchor 51 is the sale's price, already ex-dividend: kept
    assert first.entitlement_qty == D("100") and first.net_amount == D("50")
    assert (first.anchor_before, first.anchor_after) == (D("51"), D("51"))
    # second: 97 shares x 0.3 = 29.1 gross, 10 % withheld -> 26.19; anchor 51 - 0.3
    assert second.entitlement_qty == D("97") and second.net_amount == D("26.19")
    assert (second.anchor_before, second.anchor_after) == (D("51"), D("50.7"))
    assert pos.anchor_price == D("50.7")
    assert pos.cash == D("100000") + 3 * 51 + D("50") + D("26.19")
    assert types(pos.id).count("anchor_adjusted_for_dividend") == 1
    effective = Event.objects.filter(position_id=pos.id, type="ex_div_effective").order_by("id")
    assert [e.outputs["anchor_adjusted"] for e in effective] == [False, True]
    assert "anchor 51 kept" in effective[0].message
