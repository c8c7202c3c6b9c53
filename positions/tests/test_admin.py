"""The operator screens: the decision preview, the evaluate actions, the configuration form and
the read-only audit log."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from events.models import Event
from orders.models import Order
from positions.models import STRATEGY_FIELDS, Position, Price

pytestmark = pytest.mark.django_db


T0 = dt.datetime(2024, 3, 1, 21, tzinfo=dt.UTC)


def change_url(position) -> str:
    return reverse("admin:positions_position_change", args=[quote(position.pk)])


def types(position) -> list[str]:
    return list(Event.objects.filter(position_id=position.pk).values_list("type", flat=True))


def strategy_form(position, **changes) -> dict:
    data = {}
    for name in STRATEGY_FIELDS:
        value = getattr(position, name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else str(value)
    for name, value in changes.items():
        data[name] = value
    return data


def test_the_changelist_shows_positions_with_their_value(admin_client, make_position):
    pos = make_position(qty=10, cash=1000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    response = admin_client.get(reverse("admin:positions_position_changelist"))
    assert response.status_code == 200
    text = response.content.decode()
    assert pos.pk in text
    assert "2000.00</span><br><small style='white-space:nowrap'>at 100.00, stored" in text
    # value 10*100 + 1000, money to 2 places at least
    assert "0.5000" in text  # weight


def test_the_change_page_previews_the_decision_at_the_latest_price(admin_client, make_position):
    pos = make_position(qty=0, cash=10000)
    response = admin_client.get(change_url(pos))
    assert response.status_code == 200
    assert "No stored price for this ticker yet" in response.content.decode()

    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    response = admin_client.get(change_url(pos))
    assert response.status_code == 200
    text = response.content.decode()
    assert "decision at the latest price" in text.lower()
    assert "would BUY 24.99937501 (notional 2499.937501)" in text
    assert "[guardrail_rebalance]" in text
    assert ("Anchor set to price 100.00; weight 0.0 % is below the 25 % guardrail: buy "
            "24.99937501 shares to rebalance") in text
    # a preview records nothing and changes nothing
    assert types(pos) == ["position_created"]
    pos.refresh_from_db()
    assert pos.anchor_price is None


def test_the_preview_shows_a_blocked_proposal(admin_client, make_position):
    pos = make_position(qty=0, cash=300)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    text = admin_client.get(change_url(pos)).content.decode()
    assert "BUY 0.74998125 blocked by below_min_notional" in text
    assert "[below_min_notional]" in text


def run_action(admin_client, action: str, positions):
    return admin_client.post(
        reverse("admin:positions_position_changelist"),
        {"action": action, "_selected_action": [p.pk for p in positions]},
        follow=True,
    )


def test_the_evaluate_action_records_the_decision(admin_client, make_position):
    buyer = make_position(qty=0, cash=10000)
    quiet = make_position(qty=50, cash=5000, anchor_price=100)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    response = run_action(admin_client, "evaluate_now", [buyer, quiet])
    assert response.status_code == 200
    assert types(buyer) == ["position_created", "anchor_set", "evaluation"]
    assert types(quiet) == ["position_created", "evaluation"]
    event = Event.objects.get(position_id=buyer.pk, type="evaluation")
    assert event.inputs["source"] == "admin" and event.inputs["submit"] is False
    assert not Order.objects.exists()
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.startswith(f"Position {buyer.pk}: Anchor set to price 100.00")
               for m in messages)
    assert all(".." not in m for m in messages)


def test_the_evaluate_and_submit_action_places_the_order(admin_client, make_position):
    buyer = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    response = run_action(admin_client, "evaluate_and_submit", [buyer])
    assert response.status_code == 200
    order = Order.objects.get()
    assert (order.position_id, order.side, order.qty, order.source) == (
        buyer.pk, "BUY", Decimal("24.99937501"), "evaluation")
    assert types(buyer) == ["position_created", "anchor_set", "order_submitted", "evaluation"]
    messages = [str(m) for m in response.context["messages"]]
    assert any(f"Order {order.pk} submitted." in m for m in messages)


def test_the_evaluate_action_without_a_price_says_so(admin_client, make_position):
    pos = make_position(qty=0, cash=10000)
    response = run_action(admin_client, "evaluate_now", [pos])
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [f"Position {pos.pk}: No price to evaluate ZIM at: none was given and "
                        "none is stored (POST /v1/prices)."]
    assert types(pos) == ["position_created", "evaluation"]


def test_the_configuration_form_refuses_an_invalid_config(admin_client, make_position):
    pos = make_position(qty=0, cash=10000)
    before = Position.objects.values().get(pk=pos.pk)
    response = admin_client.post(change_url(pos), strategy_form(pos, guard_low="0.8"))
    assert response.status_code == 200  # the form again, with the error
    errors = response.context["adminform"].form.errors
    assert "guard_low" in errors and "guard_high" in errors
    assert "must be less than guard_high" in response.content.decode()
    assert Position.objects.values().get(pk=pos.pk) == before
    assert types(pos) == ["position_created"]


@pytest.mark.parametrize("field, value", [("trigger_pct", "1"), ("trigger_pct", "0"),
                                          ("commission_rate", "0.05"), ("fixed_fraction", "0"),
                                          ("rebalance_ratio", "-1"), ("qty_step", "0")])
def test_the_configuration_form_refuses_out_of_range_values(admin_client, make_position, field,
                                                            value):
    pos = make_position(qty=0, cash=10000)
    response = admin_client.post(change_url(pos), strategy_form(pos, **{field: value}))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert types(pos) == ["position_created"]


def test_a_valid_configuration_change_is_recorded(admin_client, make_position):
    pos = make_position(qty=0, cash=10000)
    response = admin_client.post(change_url(pos), strategy_form(pos, trigger_pct="0.05",
                                                                guard_high="0.8"))
    assert response.status_code == 302
    pos.refresh_from_db()
    assert (pos.trigger_pct, pos.guard_high) == (Decimal("0.05"), Decimal("0.8"))
    assert types(pos) == ["position_created", "config_changed"]
    event = Event.objects.get(position_id=pos.pk, type="config_changed")
    assert set(event.outputs["changed"]) == {"trigger_pct", "guard_high"}


def test_adding_a_position_through_the_admin_records_its_creation(admin_client, user):
    data = strategy_form(Position(), guard_low="0.3")
    data.update(owner=str(user.pk), ticker="brk.b", qty="10", cash="5000", anchor_price="")
    response = admin_client.post(reverse("admin:positions_position_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    pos = Position.objects.get()
    assert (pos.owner, pos.ticker, pos.qty, pos.cash) == (user, "BRK.B", 10, 5000)
    assert pos.guard_low == Decimal("0.3") and pos.anchor_price is None
    assert types(pos) == ["position_created"]
    assert (pos.opening_qty, pos.opening_cash) == (10, 5000)


def test_adding_an_invalid_position_through_the_admin_creates_nothing(admin_client, user):
    data = strategy_form(Position(), guard_low="0.8")
    data.update(owner=str(user.pk), ticker="ZIM", qty="10", cash="5000", anchor_price="")
    response = admin_client.post(reverse("admin:positions_position_add"), data)
    assert response.status_code == 200
    data.update(guard_low="0.25", ticker="1ZIM")
    response = admin_client.post(reverse("admin:positions_position_add"), data)
    assert response.status_code == 200
    assert "ticker" in response.context["adminform"].form.errors
    assert not Position.objects.exists() and not Event.objects.exists()


def test_a_position_cannot_be_deleted(admin_client, make_position):
    pos = make_position()
    url = reverse("admin:positions_position_delete", args=[quote(pos.pk)])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Position.objects.filter(pk=pos.pk).exists()


def test_the_event_admin_is_read_only(admin_client, make_position):
    pos = make_position()
    event = Event.objects.get(position_id=pos.pk)
    listing = admin_client.get(reverse("admin:events_event_changelist"))
    assert listing.status_code == 200 and "position_created" in listing.content.decode()
    change = reverse("admin:events_event_change", args=[event.pk])
    assert admin_client.get(change).status_code == 200  # view only
    response = admin_client.post(change, {"type": "evaluation", "message": "rewritten"})
    assert response.status_code == 403
    assert admin_client.get(reverse("admin:events_event_add")).status_code == 403
    delete = reverse("admin:events_event_delete", args=[event.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert (event.type, event.message) == ("position_created",
                                          "Position opened in ZIM with 0 shares and 10000 cash.")
    # no bulk delete action either
    response = admin_client.post(reverse("admin:events_event_changelist"),
                                 {"action": "delete_selected", "_selected_action": [event.pk],
                                  "post": "yes"})
    assert Event.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize("field, value", [("qty", "-1"), ("cash", "-0.01"), ("anchor_price", "0"),
                                          ("anchor_price", "-5")])
def test_adding_a_position_with_a_negative_balance_is_a_form_error(admin_client, user, field,
                                                                   value):
    data = strategy_form(Position())
    data.update(owner=str(user.pk), ticker="ZIM", qty="10", cash="5000", anchor_price="")
    data[field] = value
    response = admin_client.post(reverse("admin:positions_position_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Position.objects.exists() and not Event.objects.exists()


def test_the_change_page_links_to_the_positions_recent_orders(admin_client, make_position):
    pos = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    run_action(admin_client, "evaluate_and_submit", [pos])
    order = Order.objects.get()
    text = admin_client.get(change_url(pos)).content.decode()
    link = re.search(r"href='(/admin/orders/order/[^']+/change/)'", text).group(1)
    page = admin_client.get(link)
    assert page.status_code == 200 and order.pk in page.content.decode()
    # the timeline lists the position's events, latest first
    assert text.index("<b>evaluation</b>") < text.index("<b>position_created</b>")


def test_a_position_the_rules_cannot_evaluate_keeps_its_page_and_the_others_run(
        admin_client, make_position, monkeypatch):
    from positions.workflows import evaluation

    broken = make_position(qty=0, cash=10000)
    fine = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    real_decide = evaluation.position_decide

    def decide(*, position, price, **facts):
        if position.pk == broken.pk:
            raise ArithmeticError("overflow")
        return real_decide(position=position, price=price, **facts)

    monkeypatch.setattr(evaluation, "position_decide", decide)
    page = admin_client.get(change_url(broken))
    assert page.status_code == 200
    assert "No preview at 100" in page.content.decode()

    response = run_action(admin_client, "evaluate_now", [broken, fine])
    messages = [str(m) for m in response.context["messages"]]
    assert f"Position {broken.pk}: not evaluated: ArithmeticError: overflow" in messages
    assert types(fine) == ["position_created", "anchor_set", "evaluation"]
    assert types(broken) == ["position_created"]


def test_the_admin_refuses_a_price_time_in_the_future(admin_client):
    response = admin_client.post(reverse("admin:positions_price_add"), {
        "ticker": "ZIM", "price": "100", "ts_0": "2099-01-02", "ts_1": "16:00:00"})
    assert response.status_code == 200  # the form again, with the error
    assert "is in the future" in response.content.decode()
    assert not Price.objects.exists()


def test_an_actions_message_keeps_the_id_verbatim(admin_client, make_position):
    """The admin capitalises the first letter of a message: an id first became "Pos_…", which
    neither search nor the URL finds."""
    pos = make_position(qty=0, cash=10000)
    page = run_action(admin_client, "evaluate_now", [pos]).content.decode()
    assert f"Position {pos.pk}: No price" in page
    assert pos.pk.capitalize() not in page
