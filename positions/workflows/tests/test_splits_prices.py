"""Prices across a split (docs/splits-and-guard.md#prices-across-a-split): a price stored before a
split took effect is used split-adjusted (÷ k) by evaluation (API and the trade cycle's batch),
value and weight, and the price-jump guard; a split that would drop the anchor is refused;
apply_split names a ticker no position holds. Hand-computed numbers."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from conftest import assert_error
from events.models import Event
from orders.models import Order
from positions.models import Position, Price, Split
from positions.workflows.evaluation import positions_evaluate_claimed
from volbal import clock

_keys = itertools.count()


def yesterday_close(ticker, price):
    """A price stored with the time of the day before today (before a split effective today)."""
    ts = clock.start_of_trading_day(clock.trading_day()) - dt.timedelta(hours=2)
    return Price.objects.create(ticker=ticker, price=D(price), ts=ts)


def evaluate(api, pid, body):
    res = api.post(f"/v1/positions/{pid}/evaluate", body, format="json",
                   HTTP_IDEMPOTENCY_KEY=f"split-price-eval-{next(_keys)}")
    assert res.status_code == 200, res.content
    return res.json()


def split_today(ticker, ratio):
    out, err = StringIO(), StringIO()
    call_command("apply_split", ticker, ratio, "--date", clock.trading_day().isoformat(),
                 stdout=out, stderr=err)
    return out.getvalue()


@pytest.mark.django_db
def test_a_reverse_split_does_not_trade_on_the_pre_split_close(api, make_position):
    # 105 whole shares, 1-for-10 effective today, the latest price yesterday's close of 4:
    # 10.5 -> 10 shares, half a share paid at 4 / 0.1 = 40: 20 cash in lieu; anchor 4 -> 40
    pos = make_position(qty="105", cash="1000", anchor_price="4", fractional=False)
    yesterday_close("ZIM", "4")
    assert "1 applied" in split_today("ZIM", "0.1")
    pos.refresh_from_db()
    assert (pos.qty, pos.cash, pos.anchor_price) == (D(10), D(1020), D(40))
    out = evaluate(api, pos.id, {"submit": True})
    # the close of 4 is 40 in the new shares: at the anchor, nothing to do
    assert out["price"] == 40 and out["anchor_price"] == 40, out
    assert out["reason"] == "no_trigger" and out["proposals"] == [] and out["blocked"] == []
    assert out["value"] == 1420  # 10 x 40 + 1020
    assert Order.objects.count() == 0
    assert not Event.objects.filter(position_id=pos.pk, type="price_jump_unconfirmed").exists()


@pytest.mark.django_db
def test_the_trade_cycles_batch_uses_the_split_adjusted_price(make_position):
    pos = make_position(qty="105", cash="1000", anchor_price="4", fractional=False,
                        auto_submit=True)
    yesterday_close("ZIM", "4")
    split_today("ZIM", "0.1")
    result = positions_evaluate_claimed([pos.id], submit_ids={pos.id}, source="cycle")[pos.id]
    assert result.decision.price == D(40) and result.reason == "no_trigger", result
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_value_and_weight_after_a_split_use_the_adjusted_price(api, make_position):
    fwd = make_position(qty="100", cash="10000", anchor_price="100")
    yesterday_close("ZIM", "100")
    rev = make_position(ticker="RSQ", qty="100", cash="1000", anchor_price="5")
    yesterday_close("RSQ", "5")
    split_today("ZIM", "2")
    split_today("RSQ", "0.1")
    body = api.get(f"/v1/positions/{fwd.id}").json()
    # 200 shares at 100 / 2 = 50: 10000 + 10000 = 20000 (not 30000), weight 0.5
    assert (body["qty"], body["price"], body["value"], body["weight"]) == (200, 50, 20000, 0.5)
    body = api.get(f"/v1/positions/{rev.id}").json()
    # 10 shares at 5 / 0.1 = 50: 500 + 1000 = 1500 (not 1050), weight 500 / 1500
    assert (body["qty"], body["price"], body["value"]) == (10, 50, 1500)
    assert body["weight"] == 0.333333
    listed = {p["id"]: p for p in api.get("/v1/positions").json()["positions"]}
    assert listed[fwd.id]["value"] == 20000 and listed[rev.id]["value"] == 1500
    # a price stored after the split is used as it is
    Price.objects.create(ticker="ZIM", price=D("60"), ts=clock.now())
    assert api.get(f"/v1/positions/{fwd.id}").json()["value"] == 22000  # 200 x 60 + 10000


@pytest.mark.django_db
def test_a_split_recorded_the_same_day_explains_the_move(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    Price.objects.create(ticker="ZIM", price=D("100"), ts=clock.now())  # before the split
    split_today("ZIM", "2")
    Price.objects.create(ticker="ZIM", price=D("50.2"), ts=clock.now())
    out = evaluate(api, pos.id, {"submit": True})
    # 50.2 against 100 / 2 = 50: +0.4 %, and against the anchor 50 no trigger
    assert out["blocked"] == [] and out["reason"] == "no_trigger", out
    assert not Event.objects.filter(position_id=pos.pk, type="price_jump_unconfirmed").exists()


@pytest.mark.django_db
def test_a_move_the_same_day_split_does_not_explain_still_alerts(api, make_position):
    pos = make_position(qty="100", cash="10000", anchor_price="100")
    Price.objects.create(ticker="ZIM", price=D("100"), ts=clock.now())
    split_today("ZIM", "2")
    Price.objects.create(ticker="ZIM", price=D("30"), ts=clock.now())  # -40 % from 50
    out = evaluate(api, pos.id, {"submit": True})
    assert [b["blocked_by"] for b in out["blocked"]] == ["price_jump_unconfirmed"], out
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_split_that_would_drop_the_anchor_is_refused(api, make_position):
    pos = make_position(qty="1", cash="0", anchor_price="0.0001")  # 0.0001 / 1000 < 0.000001
    res = api.post(f"/v1/positions/{pos.id}/splits",
                   {"ratio": 1000, "effective_date": clock.trading_day().isoformat()},
                   format="json")
    body = assert_error(res, 409, "split_out_of_range")
    assert "anchor" in body["message"]
    pos.refresh_from_db()
    assert (pos.qty, pos.anchor_price) == (D(1), D("0.0001")) and Split.objects.count() == 0
    assert not Event.objects.filter(position_id=pos.pk, type__startswith="split").exists()


@pytest.mark.django_db
def test_apply_split_names_a_ticker_no_position_holds(make_position):
    make_position(qty="10")
    err = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("apply_split", "NOSUCH", "2", "--date", clock.trading_day().isoformat(),
                     stdout=StringIO(), stderr=err)
    assert exit_.value.code == 1
    assert "No position holds NOSUCH" in err.getvalue()
    assert Split.objects.count() == 0


@pytest.mark.django_db
def test_apply_split_refused_by_one_position_changes_nothing_there(make_position):
    tiny = make_position(qty="1", cash="0", anchor_price="0.0001")
    fine = make_position(qty="1", cash="0", anchor_price="10")
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("apply_split", "ZIM", "1000", "--date", clock.trading_day().isoformat(),
                     stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert "1 recorded" in out.getvalue() and "1 applied" in out.getvalue()
    assert f"{tiny.id}: not applied:" in err.getvalue() and "anchor" in err.getvalue()
    tiny.refresh_from_db()
    fine.refresh_from_db()
    assert (tiny.qty, tiny.anchor_price) == (D(1), D("0.0001"))
    assert (fine.qty, fine.anchor_price) == (D(1000), D("0.01"))  # 10 / 1000
    assert list(Split.objects.values_list("position_id", flat=True)) == [fine.id]
    assert not Event.objects.filter(position_id=tiny.pk, type__startswith="split").exists()


@pytest.mark.django_db
def test_the_admin_values_the_position_at_the_adjusted_price(admin_client, make_position):
    from django.urls import reverse

    pos = make_position(qty="100", cash="10000", anchor_price="100")
    yesterday_close("ZIM", "100")
    split_today("ZIM", "2")
    page = admin_client.get(reverse("admin:positions_position_change", args=[pos.id]))
    assert page.status_code == 200
    html = page.content.decode()
    # 200 x 100 / 2 + 10000, not 30000.00 at 100
    assert "20000.00</span><br><small style='white-space:nowrap'>at 50.00" in html
    assert "nothing to do" in html  # the preview at 50 = the anchor 50


@pytest.mark.django_db
def test_the_trade_cycle_after_a_split_at_the_open_trades_nothing(make_position, monkeypatch):
    from positions.models import TradeCycle
    from positions.workflows.cycle import trade_cycle

    session = dt.datetime(2024, 7, 5, 15, tzinfo=dt.UTC)  # Friday 11:00 in New York
    monkeypatch.setattr(clock, "now", lambda: session)
    pos = make_position(ticker="RSQ", qty="105", cash="1000", anchor_price="4",
                        fractional=False, broker="paper", auto_submit=True)
    Position.objects.filter(pk=pos.pk).update(created_at=dt.datetime(2024, 7, 1, tzinfo=dt.UTC))
    # the latest price: Wednesday's close (Thursday 4 July is a holiday), before the split
    Price.objects.create(ticker="RSQ", price=D(4), ts=dt.datetime(2024, 7, 3, 20, tzinfo=dt.UTC))
    call_command("apply_split", "RSQ", "0.1", "--date", "2024-07-05", stdout=StringIO())
    trade_cycle()
    assert TradeCycle.objects.get().evaluated == 1
    ev = Event.objects.get(position_id=pos.pk, type="evaluation")
    # 4 in the old shares is 40 in the new: the anchor 4 / 0.1 = 40, no trigger, no order
    assert ev.outputs["price"] == 40 and ev.outputs["anchor_price"] == 40, ev.message
    assert ev.outputs["reason"] == "no_trigger" and ev.inputs["price"] == 40
    assert not Order.objects.filter(position=pos).exists()
