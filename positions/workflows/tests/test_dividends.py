"""Dividends (docs/strategy.md#dividends): announce, ex-date, pay-date, exactly once, with
hand-computed amounts."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from conftest import assert_error
from events.models import Event
from orders.models import Order
from orders.services import order_fill, order_submit_for
from positions.models import Dividend, Position
from positions.workflows.corporate_actions import dividends_process
from volbal import clock

EX = dt.date(2026, 3, 10)
PAY = dt.date(2026, 3, 24)


def announce(api, pid, **body):
    payload = {"ex_date": EX.isoformat(), "pay_date": PAY.isoformat(), "dps": 0.5, **body}
    return api.post(f"/v1/positions/{pid}/dividends", payload, format="json")


OPENED = dt.datetime(2026, 1, 2, 15, tzinfo=dt.UTC)


@pytest.fixture
def make_position(make_position):
    """Positions opened on 2 January 2026, before the ex-dates these tests announce (an ex-date
    before the position was opened is refused)."""

    def make(**kw):
        pos = make_position(**kw)
        Position.objects.filter(pk=pos.pk).update(created_at=OPENED)
        pos.refresh_from_db()
        return pos

    return make


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
        assert Event.objects.filter(position_id=pos.pk, type="ex_div_effective").count() == 1
        assert Event.objects.filter(position_id=pos.pk, type="dividend_cash_received").count() == 1
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


@pytest.mark.django_db
def test_a_dividend_too_large_to_store_is_refused_at_announcement(api, make_position):
    # 100 000 000 shares x 1 000 000 000 = 1e17: no money column holds it (less than 1e16).
    pos = make_position(qty="100000000", cash="0")
    res = announce(api, pos.id, dps=1000000000, withholding_tax_rate=0)
    body = assert_error(res, 400, "validation_error")
    assert list(body["fields"]) == ["dps"]
    assert "could not hold it" in body["fields"]["dps"]
    assert not Dividend.objects.exists() and "ex_div_announced" not in types(pos.id)
    # just under the limit: accepted
    assert announce(api, pos.id, dps=99999999, withholding_tax_rate=0).status_code == 201


def stuck_and_sound(make_position):
    """A dividend no run can apply (a row from before the announcement check: its entitlement
    overflows the columns), due before a sound one on another position."""
    stuck_pos = make_position(qty="100000000", cash="0")
    stuck = Dividend.objects.create(position=stuck_pos, ex_date=EX - dt.timedelta(days=1),
                                    pay_date=PAY, dps=D("1000000000"), withholding_rate=D(0))
    sound_pos = make_position(qty="10", cash="0")
    sound = Dividend.objects.create(position=sound_pos, ex_date=EX, pay_date=PAY, dps=D("0.5"),
                                    withholding_rate=D(0))
    return stuck, sound


@pytest.mark.django_db
def test_a_failing_dividend_step_is_reported_and_the_others_proceed(make_position):
    stuck, sound = stuck_and_sound(make_position)
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("process_dividends", "--date", PAY.isoformat(), stdout=out, stderr=err)
    assert exit_info.value.code == 1
    sound.refresh_from_db()
    stuck.refresh_from_db()
    assert sound.status == "paid" and sound.position.cash == D("5")  # 10 x 0.5
    assert stuck.status == "announced" and stuck.position.dividend_receivable == 0
    assert f"{stuck.id} ({stuck.position_id}): ex-date step FAILED: The dividend gross amount " \
           "would exceed what it can hold" in err.getvalue()
    assert "1 dividends became effective, 1 were paid, 1 steps FAILED." in out.getvalue()
    failed = Event.objects.get(position_id=stuck.position_id, type="dividend_step_failed")
    assert failed.inputs["dividend_id"] == stuck.id and failed.inputs["step"] == "ex-date"
    assert "would exceed what it can hold" in failed.message
    assert failed.message.startswith(f"Alert: dividend {stuck.id}: the ex-date step failed and "
                                     "is tried again on every run")


@pytest.mark.django_db
def test_a_step_failing_again_the_same_way_is_reported_but_alerted_once(make_position):
    stuck, _sound = stuck_and_sound(make_position)
    for _ in range(3):  # the trade cycle tries every minute
        report = dividends_process(today=PAY)
        assert [f.dividend_id for f in report.failed] == [stuck.id]
    assert types(stuck.position_id).count("dividend_step_failed") == 1


@pytest.mark.django_db
def test_the_admin_process_due_action_isolates_a_failing_step(admin_client, make_position):
    stuck, sound = stuck_and_sound(make_position)
    response = admin_client.post(reverse("admin:positions_dividend_changelist"),
                                 {"action": "process_due", "_selected_action": [sound.pk]},
                                 follow=True)
    assert response.status_code == 200
    text = response.content.decode()
    assert "1 became effective, 1 were paid." in text
    # (the admin capitalises the first letter of a message)
    assert f"{stuck.id} ({stuck.position_id}): ex-date step failed" in text.lower()
    sound.refresh_from_db()
    stuck.refresh_from_db()
    assert (sound.status, stuck.status) == ("paid", "announced")
    assert types(stuck.position_id).count("dividend_step_failed") == 1


@pytest.mark.django_db
def test_an_ex_date_before_the_position_was_opened_is_refused(api, make_position):
    pos = make_position(qty="10", cash="0")  # opened 2026-01-02
    res = announce(api, pos.id, ex_date="2026-01-01", pay_date="2026-01-10")
    body = assert_error(res, 400, "validation_error")
    assert list(body["fields"]) == ["ex_date"]
    assert "before the position was opened (2026-01-02)" in body["fields"]["ex_date"]
    assert not Dividend.objects.exists()
    # the opening day itself: the opening shares count as held at its start
    assert announce(api, pos.id, ex_date="2026-01-02", pay_date="2026-01-10").status_code == 201


@pytest.mark.django_db
def test_process_dividends_refuses_a_date_after_today(make_position):
    pos = make_position(qty="10", cash="0")
    tomorrow = clock.trading_day() + dt.timedelta(days=1)
    Dividend.objects.create(position=pos, ex_date=tomorrow, pay_date=tomorrow, dps=D("1"),
                            withholding_rate=D(0))
    with pytest.raises(CommandError, match=f"--date {tomorrow} is after today"):
        call_command("process_dividends", "--date", tomorrow.isoformat())
    assert Dividend.objects.get().status == "announced"
    pos.refresh_from_db()
    assert pos.cash == 0
    call_command("process_dividends", "--date", clock.trading_day().isoformat(),
                 stdout=StringIO())  # today is fine (nothing due yet)
    assert Dividend.objects.get().status == "announced"


@pytest.mark.django_db
def test_a_fill_at_exactly_the_start_of_the_ex_date_is_not_entitled(user, make_position):
    """docs/strategy.md#dividends: fills on or after the ex-date do not count. In the default
    trading time zone (America/New_York, EDT on 10 March 2026: the day starts at 04:00 UTC) a fill
    one microsecond before the ex-date counts, one at its first instant does not."""
    from orders.models import Fill

    start = clock.start_of_trading_day(EX)
    assert start == dt.datetime(2026, 3, 10, 4, tzinfo=dt.UTC)
    pos = make_position(qty="100", cash="100000")
    Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D("1"),
                            withholding_rate=D(0))
    for key, qty, at in (("before", "10", start - dt.timedelta(microseconds=1)),
                         ("at", "7", start)):
        order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D(qty),
                                    idempotency_key=key)
        _, _, fill = order_fill(owner=user, order_id=order.id, price=D("50"),
                                filled_qty=D(qty), commission=D(0))
        Fill.objects.filter(pk=fill.pk).update(created_at=at)
    dividends_process(today=EX)
    div = Dividend.objects.get()
    assert div.entitlement_qty == D("110")  # 100 + the 10 bought before; not the 7 at 04:00
    assert div.net_amount == D("110")
    out = StringIO()
    call_command("verify_ledger", stdout=out)  # the ledger draws the line at the same instant
    assert "ledger ok" in out.getvalue()


@pytest.mark.django_db
def test_a_pay_date_step_that_cannot_be_stored_leaves_the_dividend_receivable(make_position):
    # Cash one unit below what its column holds (less than 1e16; on SQLite, local mode, 15
    # significant digits): the 5 of net cannot be paid.
    cash = D("9999999999999999") if connection.vendor == "postgresql" else D("99999999999999.5")
    pos = make_position(qty="10", cash=cash)
    div = Dividend.objects.create(position=pos, ex_date=EX, pay_date=PAY, dps=D("0.5"),
                                  withholding_rate=D(0))
    report = dividends_process(today=PAY)
    assert report.effective == [div.id] and report.paid == []
    assert [(f.dividend_id, f.step) for f in report.failed] == [(div.id, "pay-date")]
    assert "The position cash would exceed what it can hold" in report.failed[0].reason
    pos.refresh_from_db()
    div.refresh_from_db()
    assert div.status == "effective" and pos.dividend_receivable == D("5")
    assert pos.cash == cash
    out = StringIO()
    call_command("verify_ledger", stdout=out)  # the books still agree
    assert "ledger ok" in out.getvalue()
