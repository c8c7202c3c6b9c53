"""The admin's "record a fill" form on a manual order (docs/admin.md#recording-a-fill): the
API's service and checks, the admin user as the actor, refusals shown and changing nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse

from events.models import Event, EventType
from orders.models import Fill, Order
from orders.services import order_submit_for
from positions.models import Position

pytestmark = pytest.mark.django_db


@pytest.fixture
def manual_order(user, make_position):
    position = make_position(qty=0, cash=1000)
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("4"),
                                idempotency_key="k")
    return order


def fill_url(order):
    return reverse("admin:orders_order_fill", args=[quote(order.pk)])


def shown_messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_order_page_offers_the_form_and_the_form_records_the_fill(admin_client,
                                                                     admin_user, manual_order):
    page = admin_client.get(reverse("admin:orders_order_change", args=[quote(manual_order.pk)]))
    assert f'href="{fill_url(manual_order)}">Record a fill' in page.content.decode()
    form = admin_client.get(fill_url(manual_order))
    assert form.status_code == 200 and "4 left" in form.content.decode()

    response = admin_client.post(fill_url(manual_order),
                                 {"price": "99.5", "filled_qty": "1.5", "commission": "0.25"})
    assert response.status_code == 302
    order = Order.objects.get(pk=manual_order.pk)
    assert (order.filled_qty, order.avg_fill_price, order.status) == (D("1.5"), D("99.5"),
                                                                      "partially_filled")
    fill = Fill.objects.get(order=order)
    assert (fill.qty, fill.price, fill.commission) == (D("1.5"), D("99.5"), D("0.25"))
    position = Position.objects.get(pk=order.position_id)
    assert position.qty == D("1.5") and position.cash == D("1000") - D("149.25") - D("0.25")
    event = Event.objects.get(order_id=order.pk, type=EventType.ORDER_PARTIALLY_FILLED)
    assert (event.actor_source, event.actor_name, event.actor_user_id) == (
        "admin", admin_user.username, admin_user.pk)
    assert any("recorded: 1.5 at 99.50" in m for m in shown_messages(response))


def test_a_refused_fill_changes_nothing_and_says_why(admin_client, manual_order):
    before = Position.objects.get(pk=manual_order.position_id)
    response = admin_client.post(fill_url(manual_order), {"price": "99.5", "filled_qty": "5"})
    assert response.status_code == 200  # the form again, with the reason on its field
    html = response.content.decode()
    assert "exceeds the 4 the order has left" in html
    assert any(m.startswith("Fill refused (fill_exceeds_order), filled_qty: A fill of 5 "
                            "exceeds") for m in shown_messages(response))
    order = Order.objects.get(pk=manual_order.pk)
    assert order.filled_qty == 0 and order.status == "submitted"
    assert not Fill.objects.exists()
    after = Position.objects.get(pk=manual_order.position_id)
    assert (after.qty, after.cash, after.anchor_price) == (before.qty, before.cash,
                                                           before.anchor_price)
    # the API's own checks, named on their field: a price of 0 never reaches the service
    response = admin_client.post(fill_url(manual_order), {"price": "0", "filled_qty": "1"})
    assert response.status_code == 200
    assert "Ensure this value is greater than or equal to 0.000001." in response.content.decode()
    assert not Fill.objects.exists()


def test_no_form_for_an_order_a_broker_holds_or_a_user_who_may_only_view(
        admin_client, user, make_position, django_user_model):
    position = make_position(qty=0, cash=1000, broker="paper")
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("1"),
                                idempotency_key="p")
    assert order.broker == "paper"
    page = admin_client.get(reverse("admin:orders_order_change", args=[quote(order.pk)]))
    assert "Record a fill" not in page.content.decode()
    response = admin_client.post(fill_url(order), {"price": "1", "filled_qty": "1"})
    assert response.status_code == 302 and not Fill.objects.exists()
    assert "its broker (paper) fills it" in shown_messages(response)[0]

    from django.contrib.auth.models import Permission
    from django.test import Client

    viewer = django_user_model.objects.create_user(username="viewer", password="pw",
                                                   is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client = Client()
    client.force_login(viewer)
    assert client.post(fill_url(order), {"price": "1", "filled_qty": "1"}).status_code == 403
