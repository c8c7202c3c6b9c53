"""The portfolios' admin: the list, a portfolio's page with its positions' target and actual
weights, its allocation picture, and the rebalance action (change permission only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from positions.models import Portfolio, Position, Price
from positions.portfolios.services import portfolio_create, position_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(user):
    portfolio = portfolio_create(owner=user, name="Core", cash=D(1000))
    a = position_open(owner=user, ticker="AAA", qty=D(10), cash=D(0), portfolio=portfolio.id,
                      target_weight=D("0.5"))
    b = position_open(owner=user, ticker="BBB", qty=D(0), cash=D(500), portfolio=portfolio.id,
                      target_weight=D("0.25"))
    Price.objects.create(ticker="AAA", price=D(50), ts=timezone.now() - dt.timedelta(minutes=1))
    return portfolio, a, b


def test_list_and_page_show_value_and_weights(admin_client, book):
    portfolio, a, b = book
    listing = admin_client.get(reverse("admin:positions_portfolio_changelist"))
    assert listing.status_code == 200
    assert portfolio.id in listing.content.decode()
    page = admin_client.get(reverse("admin:positions_portfolio_change", args=[portfolio.id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "2000.00" in html  # T = 1000 + 500 + 500
    for needle in (a.id, b.id, "0.5000", "0.2500", "allocation.png"):
        assert needle in html, needle


def test_the_list_values_its_page_in_the_same_statements_for_any_number_of_portfolios(
        admin_client, user):
    def listed(n_before: int) -> int:
        for i in range(n_before, n_before + 3):
            fund = portfolio_create(owner=user, name=f"P{i}", cash=D(100))
            position_open(owner=user, ticker=f"T{i}", qty=D(1), cash=D(0), portfolio=fund.id,
                          target_weight=D("0.5"))
            Price.objects.create(ticker=f"T{i}", price=D(10 + i),
                                 ts=timezone.now() - dt.timedelta(minutes=1))
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(reverse("admin:positions_portfolio_changelist"))
        assert response.status_code == 200
        html = response.content.decode()
        for i in range(n_before + 3):  # each row's value: F + S·P
            assert f"{110 + i}.00" in html, i
        return len(queries)

    assert listed(0) == listed(3)  # 3 portfolios, then 6: no statement a row


def test_allocation_picture_is_a_png(admin_client, book):
    portfolio, _a, _b = book
    response = admin_client.get(reverse("admin:positions_portfolio_allocation",
                                        args=[portfolio.id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
    missing = admin_client.get(reverse("admin:positions_portfolio_allocation",
                                       args=["pfl_nope"]))
    assert missing.status_code == 404


def test_rebalance_action_moves_cash_and_is_logged(admin_client, book):
    portfolio, a, b = book
    response = admin_client.post(reverse("admin:positions_portfolio_changelist"),
                                 {"action": "rebalance_now", "_selected_action": [portfolio.id]},
                                 follow=True)
    assert response.status_code == 200
    # T = 2000: A wants 1000 - 500 = 500 cash, B 500; f* = 0.25 x 2000 = 500
    assert [p.cash for p in Position.objects.order_by("ticker")] == [D(500), D(500)]
    assert Portfolio.objects.get().cash == D(500)
    assert "rebalanced, 1 move(s)" in LogEntry.objects.get().change_message


def test_a_view_only_staff_user_cannot_rebalance(django_user_model, book):
    portfolio, _a, _b = book
    staff = django_user_model.objects.create_user(username="viewer", password="pw",
                                                  is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_portfolio"))
    client = Client()
    client.force_login(staff)
    assert client.get(reverse("admin:positions_portfolio_change",
                              args=[portfolio.id])).status_code == 200
    client.post(reverse("admin:positions_portfolio_changelist"),
                {"action": "rebalance_now", "_selected_action": [portfolio.id]}, follow=True)
    assert Portfolio.objects.get().cash == D(1000)
    assert not LogEntry.objects.exists()
