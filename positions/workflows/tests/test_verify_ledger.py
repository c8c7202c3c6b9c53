"""manage.py verify_ledger: silent agreement on honest books (however fractional), loud on each
thing it claims to check when that thing is tampered with behind the services' back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import call_command

from events.services import event_record
from orders.models import Fill, Order
from orders.services import order_fill, order_submit_for
from positions.dividends import dividend_announce
from positions.models import Dividend, Position, Split
from positions.splits import split_record
from positions.strategy import rules
from positions.workflows.corporate_actions import dividends_process


def opened_on(pos, day: dt.date) -> None:
    """The position was opened on ``day`` (before the dividends these tests announce)."""
    Position.objects.filter(pk=pos.pk).update(
        created_at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC))


def books(user, make_position):
    pos = make_position(qty="10", cash="5000", anchor_price="100")
    opened_on(pos, dt.date(2025, 12, 1))
    buy, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("5"),
                              idempotency_key="b")
    order_fill(owner=user, order_id=buy.id, price=D("100"), filled_qty=D("2"))
    order_fill(owner=user, order_id=buy.id, price=D("101.5"), filled_qty=D("3"),
               commission=D("0.5"))
    sell, _ = order_submit_for(owner=user, position_id=pos.id, side="SELL", qty=D("4"),
                               idempotency_key="s")
    order_fill(owner=user, order_id=sell.id, price=D("99"), filled_qty=D("4"))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2026, 1, 5),
                      pay_date=dt.date(2026, 1, 20), dps=D("1"))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2026, 2, 5),
                      pay_date=dt.date(2026, 2, 20), dps=D("1"))
    dividends_process(today=dt.date(2026, 2, 10))  # one paid, one receivable
    return pos


def verify() -> tuple[int, list[str]]:
    """(exit code, the DIFFERENCE lines) of ``manage.py verify_ledger``."""
    out = StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=StringIO())
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, [line for line in out.getvalue().splitlines() if line.startswith("DIFFERENCE")]


@pytest.mark.django_db
def test_honest_books_verify(user, make_position):
    pos = books(user, make_position)
    pos.refresh_from_db()
    # 10 + 5 - 4 shares now; on both ex-dates (before today's fills) 10 were held:
    # 10 x 1 x 0.75 = 7.50 per dividend
    assert pos.qty == D("11") and pos.dividend_receivable == D("7.5")
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "ledger ok: 1 position, 2 orders, 3 fills, 2 dividends checked" in out.getvalue()


@pytest.mark.django_db
def test_a_fractional_fill_rounded_to_the_cent_millionth_is_no_difference(user, make_position):
    # The reproduction: 1.23456789 x 1.5 = 1.851851835, stored as 998.148148 (6 dp).
    pos = make_position(ticker="RND", qty="0", cash="1000")
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY",
                                qty=D("1.23456789"), idempotency_key="k")
    order_fill(owner=user, order_id=order.id, price=D("1.5"), filled_qty=D("1.23456789"),
               commission=D(0))
    pos.refresh_from_db()
    assert pos.cash == D("998.148148")
    assert verify() == (0, [])


# One test per thing the check claims to verify: each tampering must be named, and exit 1.


def one_difference(pos, field: str, stored: str) -> None:
    code, lines = verify()
    assert code == 1
    assert lines == [line for line in lines if line.startswith(f"DIFFERENCE {pos.id} {field}:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"DIFFERENCE {pos.id} {field}: stored {stored}, expected ")


@pytest.mark.django_db
def test_a_tampered_cash_balance_is_named(user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(cash=D("1"))
    one_difference(pos, "cash", "1.000000")


@pytest.mark.django_db
def test_a_tampered_share_count_is_named(user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(qty=D("11.00000001"))
    one_difference(pos, "qty", "11.00000001")


@pytest.mark.django_db
def test_a_tampered_dividend_receivable_is_named(user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(dividend_receivable=D("7.500001"))
    one_difference(pos, "dividend_receivable", "7.500001")


@pytest.mark.django_db
def test_a_tampered_entitlement_gross_or_net_amount_is_named(user, make_position):
    pos = books(user, make_position)
    div = Dividend.objects.get(position=pos, status="effective")
    Dividend.objects.filter(pk=div.pk).update(entitlement_qty=D("11"))
    one_difference(pos, f"dividend {div.id} entitlement_qty", "11.00000000")
    Dividend.objects.filter(pk=div.pk).update(entitlement_qty=D("10"), gross_amount=D("10.1"))
    one_difference(pos, f"dividend {div.id} gross_amount", "10.100000")
    Dividend.objects.filter(pk=div.pk).update(gross_amount=D("10"), net_amount=D("7"))
    one_difference(pos, f"dividend {div.id} net_amount", "7.000000")


def partly_filled(user, make_position):
    pos = make_position(qty="3", cash="100")
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="SELL", qty=D("2.5"),
                                idempotency_key="p")
    order_fill(owner=user, order_id=order.id, price=D("10.333333"), filled_qty=D("1.23456789"),
               commission=D("0.01"))
    return pos, order


@pytest.mark.django_db
def test_a_tampered_filled_quantity_of_an_order_is_named(user, make_position):
    pos, order = partly_filled(user, make_position)
    Order.objects.filter(pk=order.pk).update(filled_qty=D("1.2345679"))
    one_difference(pos, f"order {order.id} filled_qty", "1.23456790")


@pytest.mark.django_db
def test_a_tampered_commission_of_an_order_is_named(user, make_position):
    pos, order = partly_filled(user, make_position)
    Order.objects.filter(pk=order.pk).update(commission_paid=D("0.02"))
    one_difference(pos, f"order {order.id} commission_paid", "0.020000")


@pytest.mark.django_db
def test_a_fill_written_without_its_event_is_named(user, make_position):
    # A fill row, its order's progress and the balances agree with each other, but no event
    # records the fill: the replay (from the events) does not count it, and names the gap.
    pos, order = partly_filled(user, make_position)
    pos.refresh_from_db()
    order.refresh_from_db()
    q, price, k = D("0.5"), D("10"), D(0)
    Fill.objects.create(order=order, qty=q, price=price, commission=k)
    Order.objects.filter(pk=order.pk).update(filled_qty=order.filled_qty + q)
    new_qty, new_cash = rules.apply_fill(qty=pos.qty, cash=pos.cash, side="SELL", fill_qty=q,
                                         price=price, commission=k)
    Position.objects.filter(pk=pos.pk).update(qty=new_qty, cash=new_cash)
    code, lines = verify()
    assert code == 1
    assert f"DIFFERENCE {pos.id} order {order.id} fill events: stored 1, expected 2" in lines
    assert {line.split(": stored")[0] for line in lines} == {
        f"DIFFERENCE {pos.id} {name}" for name in (
            "qty", "cash", f"order {order.id} filled_qty", f"order {order.id} fill events")}


@pytest.mark.django_db
def test_an_order_written_without_its_submitted_event_is_named(user, make_position):
    pos, _ = partly_filled(user, make_position)
    ghost = Order.objects.create(position=pos, side="BUY", qty=D("1"),
                                 trading_day=dt.date(2026, 1, 2))
    one_difference(pos, f"order {ghost.id} order_submitted event", "False")


@pytest.mark.django_db
def test_a_fill_the_rules_would_have_refused_is_named(user, make_position):
    pos = make_position(qty="0", cash="100")
    order, _ = order_submit_for(owner=user, position_id=pos.id, side="BUY", qty=D("1"),
                                idempotency_key="k")
    _, _, fill = order_fill(owner=user, order_id=order.id, price=D("90"), filled_qty=D("1"),
                            commission=D(0))
    Fill.objects.filter(pk=fill.pk).update(price=D("200"))  # 200 > the 100 cash there was
    code, lines = verify()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"DIFFERENCE {pos.id} fill {fill.id}: stored recorded, "
                               "expected refused (insufficient_cash: ")


# The replay starts from the append-only events, not from the mutable opening columns
# (docs/strategy.md#events): changing a column together with its opening value is still named.


@pytest.mark.django_db
def test_opening_cash_and_cash_raised_together_are_named(user, make_position):
    pos = books(user, make_position)
    pos.refresh_from_db()
    Position.objects.filter(pk=pos.pk).update(opening_cash=pos.opening_cash + 1_000_000,
                                              cash=pos.cash + 1_000_000)
    code, lines = verify()
    assert code == 1
    assert [line.split(": stored")[0] for line in lines] == [
        f"DIFFERENCE {pos.id} opening_cash", f"DIFFERENCE {pos.id} cash"]
    assert lines[0].endswith("expected 5000")


@pytest.mark.django_db
def test_opening_qty_and_qty_raised_together_are_named(user, make_position):
    pos = books(user, make_position)
    pos.refresh_from_db()
    Position.objects.filter(pk=pos.pk).update(opening_qty=pos.opening_qty + 5,
                                              qty=pos.qty + 5)
    code, lines = verify()
    assert code == 1
    assert [line.split(": stored")[0] for line in lines] == [
        f"DIFFERENCE {pos.id} opening_qty", f"DIFFERENCE {pos.id} qty"]


@pytest.mark.django_db
def test_a_position_given_to_another_owner_is_named(user, other_user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(owner=other_user)
    one_difference(pos, "owner_id", str(other_user.pk))


@pytest.mark.django_db
def test_a_tampered_anchor_is_named(user, make_position):
    pos = books(user, make_position)
    Position.objects.filter(pk=pos.pk).update(anchor_price=D("150"))
    one_difference(pos, "anchor_price", "150.000000")


@pytest.mark.django_db
def test_a_tampered_order_status_or_average_price_is_named(user, make_position):
    pos = books(user, make_position)
    order = Order.objects.get(position=pos, side="BUY")
    Order.objects.filter(pk=order.pk).update(avg_fill_price=D("100"))
    one_difference(pos, f"order {order.id} avg_fill_price", "100.000000")
    Order.objects.filter(pk=order.pk).update(avg_fill_price=D("100.9"),
                                             status="partially_filled")
    one_difference(pos, f"order {order.id} status", "partially_filled")


@pytest.mark.django_db
def test_a_position_opened_with_an_anchor_and_nothing_else_verifies(make_position):
    """The opening anchor is the replay's too (no evaluation or fill has moved it)."""
    make_position(qty="10", cash="5000", anchor_price="100")
    assert verify() == (0, [])


@pytest.mark.django_db
def test_a_position_row_without_its_creation_event_is_named(user):
    """A position written behind the services' back has no position_created event."""
    pos = Position.objects.create(owner=user, ticker="ZIM", qty=D("10"), cash=D("5000"),
                                  opening_qty=D("10"), opening_cash=D("5000"))
    code, lines = verify()
    assert code == 1
    assert lines == [f"DIFFERENCE {pos.id} position_created event: stored missing, "
                     f"expected recorded"]


@pytest.mark.django_db
def test_a_dividend_marked_effective_without_its_step_is_named(user, make_position):
    pos = make_position(qty="10", cash="5000", anchor_price="100")
    opened_on(pos, dt.date(2025, 12, 1))
    dividend_announce(owner=user, position_id=pos.id, ex_date=dt.date(2099, 1, 5),
                      pay_date=dt.date(2099, 1, 20), dps=D("1"))
    div = Dividend.objects.get(position=pos)
    Dividend.objects.filter(pk=div.pk).update(status="effective", entitlement_qty=D("10"),
                                              gross_amount=D("10"), net_amount=D("7.5"))
    one_difference(pos, f"dividend {div.id} status", "effective")


@pytest.mark.django_db
def test_a_split_marked_applied_without_its_event_is_named(user, make_position):
    pos = make_position(qty="10", cash="5000", anchor_price="100")
    opened_on(pos, dt.date(2025, 12, 1))
    split = split_record(Position.objects.select_for_update().get(pk=pos.pk),
                         rules.split_ratio("2:1"), dt.date(2099, 1, 5))
    Split.objects.filter(pk=split.pk).update(status="applied", applied_at=split.created_at,
                                             qty_after=D("20"), cash_in_lieu=D("0"),
                                             step=D("0.00000001"))
    code, lines = verify()
    assert code == 1
    assert f"DIFFERENCE {pos.id} split {split.id} status: stored applied, expected " in \
        "\n".join(lines)


@pytest.mark.django_db
def test_a_fill_event_without_its_fill_row_is_named(make_position):
    pos = make_position(qty="10", cash="5000", anchor_price="100")
    event = event_record(position_id=pos.id, type="order_filled", message="a forged fill",
                         inputs={}, outputs={"fill_id": "fil_forged"})
    code, lines = verify()
    assert code == 1
    assert lines == [f"DIFFERENCE {pos.id} order None fill event {event.pk}: stored recorded, "
                     f"expected a fill row and an order_submitted event"]
