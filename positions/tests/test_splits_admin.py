"""The operators' split screen and price confirmation: the same services, a permission, a
LogEntry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from events.models import Event
from positions.models import Position, Price, Split
from positions.tests.test_admin_permissions import post_action, staff_client
from volbal import clock

pytestmark = pytest.mark.django_db


def test_adding_a_split_applies_it_to_every_position_in_the_ticker(admin_client, make_position,
                                                                    other_user):
    a = make_position(qty="10", cash="0", anchor_price="8")
    b = make_position(owner=other_user, qty="4", cash="0", anchor_price="8")
    today = clock.trading_day().isoformat()
    res = admin_client.post(reverse("admin:positions_split_add"),
                            {"ticker": "zim", "ratio": "2", "effective_date": today},
                            follow=True)
    assert res.status_code == 200
    assert "Recorded on 2 position(s), applied on 2." in res.content.decode()
    assert [Position.objects.get(pk=p.pk).qty for p in (a, b)] == [D(20), D(8)]
    # the API's bounds: ratio 1 is refused on the form, nothing recorded
    res = admin_client.post(reverse("admin:positions_split_add"),
                            {"ticker": "ZIM", "ratio": "1", "effective_date": "2099-01-01"})
    assert "ratio 1 changes nothing" in res.content.decode()
    assert Split.objects.count() == 2


def test_confirming_a_price_needs_the_change_permission_and_is_logged(django_user_model,
                                                                      make_position):
    make_position(qty="10", cash="0")
    price = Price.objects.create(ticker="ZIM", price=D("30"),
                                 ts=clock.now() - dt.timedelta(minutes=1))
    viewer, _ = staff_client(django_user_model, "viewer", "view_price")
    post_action(viewer, "admin:positions_price_changelist", "confirm", [price.pk])
    assert Price.objects.get(pk=price.pk).confirmed_at is None
    operator, staff = staff_client(django_user_model, "operator", "view_price", "change_price")
    post_action(operator, "admin:positions_price_changelist", "confirm", [price.pk])
    price.refresh_from_db()
    assert price.confirmed_at is not None and price.confirmed_by == "operator"
    assert LogEntry.objects.get().user_id == staff.pk
    assert Event.objects.get(type="price_confirmed").actor_name == "operator"
