"""Admin actions that write need the model's change permission and leave a LogEntry: a staff
user who may only view is refused, through the real admin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from events.models import Event
from orders.models import Order
from orders.services import order_submit_for
from positions.dividends import dividend_announce
from positions.models import Dividend, Position, Price

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 1, 21, tzinfo=dt.UTC)


def staff_client(django_user_model, username: str, *codenames: str) -> tuple[Client, object]:
    staff = django_user_model.objects.create_user(username=username, password="pw",
                                                  is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(staff)
    return client, staff


VIEW_ONLY = ("view_order", "view_position", "view_dividend")


def post_action(client, changelist: str, action: str, ids):
    return client.post(reverse(changelist), {"action": action, "_selected_action": list(ids)},
                       follow=True)


@pytest.fixture
def open_order(user, make_position):
    position = make_position(qty=0, cash=10000)
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("1"),
                                idempotency_key="k")
    return order


def test_a_view_only_staff_user_cannot_cancel_another_users_order(django_user_model,
                                                                  open_order):
    client, _ = staff_client(django_user_model, "viewer", *VIEW_ONLY)
    listing = client.get(reverse("admin:orders_order_changelist"))
    assert listing.status_code == 200 and open_order.pk in listing.content.decode()
    assert "cancel_orders" not in listing.content.decode()  # not offered

    post_action(client, "admin:orders_order_changelist", "cancel_orders", [open_order.pk])
    assert Order.objects.get(pk=open_order.pk).status == "submitted"
    assert not Event.objects.filter(type="order_cancelled").exists()
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("action", ["evaluate_now", "evaluate_and_submit"])
def test_a_view_only_staff_user_cannot_evaluate_or_submit(django_user_model, make_position,
                                                          action):
    position = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    client, _ = staff_client(django_user_model, "viewer", *VIEW_ONLY)
    post_action(client, "admin:positions_position_changelist", action, [position.pk])
    assert not Order.objects.exists()
    assert list(Event.objects.values_list("type", flat=True)) == ["position_created"]
    assert not LogEntry.objects.exists()


def test_a_view_only_staff_user_cannot_process_dividends(django_user_model, user,
                                                         make_position):
    position = make_position(qty=10, cash=0)
    Position.objects.filter(pk=position.pk).update(  # opened before the ex-date
        created_at=dt.datetime(2023, 12, 1, tzinfo=dt.UTC))
    dividend = dividend_announce(owner=user, position_id=position.pk,
                                 ex_date=dt.date(2024, 1, 5), pay_date=dt.date(2024, 1, 6),
                                 dps=D("1"))
    client, _ = staff_client(django_user_model, "viewer", *VIEW_ONLY)
    post_action(client, "admin:positions_dividend_changelist", "process_due", [dividend.pk])
    assert Dividend.objects.get(pk=dividend.pk).status == "announced"
    assert not LogEntry.objects.exists()


def test_the_change_permission_allows_a_cancel_and_logs_it(django_user_model, open_order):
    client, staff = staff_client(django_user_model, "operator", "view_order", "change_order")
    listing = client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "cancel_orders" in listing
    post_action(client, "admin:orders_order_changelist", "cancel_orders", [open_order.pk])
    assert Order.objects.get(pk=open_order.pk).status == "cancelled"
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id, entry.action_flag) == (staff.pk, open_order.pk,
                                                                   CHANGE)
    assert "cancel_orders" in entry.get_change_message()
    # the order's admin history lists it
    history = client.get(reverse("admin:orders_order_history", args=[open_order.pk]))
    assert "cancel_orders" in history.content.decode()


def test_evaluate_and_submit_logs_each_position(django_user_model, make_position):
    position = make_position(qty=0, cash=10000)
    Price.objects.create(ticker="ZIM", price=100, ts=T0)
    client, staff = staff_client(django_user_model, "operator", "view_position",
                                 "change_position")
    post_action(client, "admin:positions_position_changelist", "evaluate_and_submit",
                [position.pk])
    order = Order.objects.get()
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id) == (staff.pk, position.pk)
    assert f"Order {order.pk} submitted" in entry.get_change_message()


def test_process_due_logs_each_dividend_it_moved(django_user_model, user, make_position):
    position = make_position(qty=10, cash=0)
    Position.objects.filter(pk=position.pk).update(  # opened before the ex-date
        created_at=dt.datetime(2023, 12, 1, tzinfo=dt.UTC))
    dividend = dividend_announce(owner=user, position_id=position.pk,
                                 ex_date=dt.date(2024, 1, 5), pay_date=dt.date(2099, 1, 6),
                                 dps=D("1"))
    client, staff = staff_client(django_user_model, "operator", "view_dividend",
                                 "change_dividend")
    post_action(client, "admin:positions_dividend_changelist", "process_due", [dividend.pk])
    assert Dividend.objects.get(pk=dividend.pk).status == "effective"
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.object_id) == (staff.pk, dividend.pk)
    assert entry.get_change_message() == "Became effective (admin action process_due)."
