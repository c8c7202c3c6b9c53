"""What operators read on the admin's screens: the columns that matter, times in the trading
time zone, the position's recent orders and its picture."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from orders.models import Order
from orders.services import order_fill, order_submit_for
from positions.models import Price
from positions.picture import position_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def traded(user, make_position, settings):
    """A position with a partly filled order created at 2026-01-15 15:30 UTC (10:30 in New
    York, winter time)."""
    settings.VOLBAL_TRADING_TZ = "America/New_York"
    position = make_position(qty=0, cash=10000)
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("4"),
                                idempotency_key="k")
    order_fill(owner=user, order_id=order.pk, price=D("99.5"), filled_qty=D("1.5"))
    Order.objects.filter(pk=order.pk).update(
        created_at=dt.datetime(2026, 1, 15, 15, 30, tzinfo=dt.UTC))
    return position, Order.objects.get(pk=order.pk)


def headers(html: str) -> list[str]:
    """The list's column headers, without the sort markers."""
    texts = [" ".join(re.sub(r"<[^>]+>", " ", h).split()).lower()
             for h in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html, re.S)]
    return [re.sub(r"^\d+ ", "", t) for t in texts]


def test_the_order_list_shows_status_filled_quantity_and_local_times(admin_client, traded):
    _position, order = traded
    html = admin_client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert headers(html)[1:] == ["id", "ticker", "side", "qty", "filled qty", "status",
                                 "avg price", "created"]
    row = html[html.index(order.pk):]
    assert "<td class=\"field-filled_qty\">1.5</td>" in row and "Partially Filled" in row
    assert "2026-01-15 10:30 EST" in row  # the trading time zone, named


def test_the_event_list_shows_the_message_not_ids(admin_client, traded):
    position, order = traded
    html = admin_client.get(reverse("admin:events_event_changelist")).content.decode()
    assert headers(html) == ["id", "time", "type", "ticker", "actor", "message"]
    assert "BUY 1.5 ZIM at 99.5" in html
    table = html[html.index('id="result_list"'):]
    assert position.pk not in table  # the position is its ticker here, its id one click away
    assert table.count(order.pk) == 1  # only inside the submission's message


def test_the_position_page_lists_recent_orders_with_headers_and_filled_quantity(
        admin_client, traded):
    position, order = traded
    html = admin_client.get(reverse("admin:positions_position_change",
                                    args=[quote(position.pk)])).content.decode()
    recent = html[html.index("<th>order</th>"):]
    recent = recent[:recent.index("</table>")]
    assert re.findall(r"<th>(.*?)</th>", recent) == [
        "order", "side", "qty", "filled", "avg price", "status", "created"]
    assert re.search(rf"{order.pk}</a></td><td>BUY</td><td>4</td><td>1.5</td><td>99.50</td>"
                     r"<td>partially_filled</td><td><span[^>]*>2026-01-15 10:30:00 EST</span>",
                     recent)


def test_admin_forms_and_pages_use_the_trading_time_zone(admin_client, settings):
    settings.VOLBAL_TRADING_TZ = "America/New_York"
    response = admin_client.post(reverse("admin:positions_price_add"), {
        "ticker": "ZIM", "price": "10", "ts_0": "2026-01-15", "ts_1": "16:00:00"})
    assert response.status_code == 302
    # typed as New York's 16:00 close: 21:00 UTC
    assert Price.objects.get().ts == dt.datetime(2026, 1, 15, 21, tzinfo=dt.UTC)


def test_the_position_page_shows_its_picture(admin_client, traded, user):
    position, order = traded
    Price.objects.create(ticker="ZIM", price=D("101"), ts=dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    html = admin_client.get(reverse("admin:positions_position_change",
                                    args=[quote(position.pk)])).content.decode()
    src = re.search(r"<img src='([^']+picture\.png)'", html).group(1)
    picture = admin_client.get(src)
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG") and len(picture.content) > 5000

    history = position_history(position)
    assert [p for _, p in history["prices"]] == [D("101")]
    assert [(side, price) for _, side, price in history["fills"]] == [("BUY", D("99.5"))]
    assert [a for _, a in history["anchors"]] == [None, 99.5]  # opened unset; the fill's price

    # a staff user who may not view positions gets no picture
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user(username="ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(src).status_code == 403


def test_the_picture_is_drawn_by_the_backtest_reports_price_panel(monkeypatch, traded):
    """One drawing of price, trades and anchor: the backtest plot and the position's picture
    both call charts.draw_price_panel."""
    from positions.picture import position_picture_png
    from positions.strategy.export import charts

    position, _order = traded
    calls = []
    real = charts.draw_price_panel

    def spy(ax, times, prices, anchor_times, anchors, trades, **kw):
        calls.append(trades)
        return real(ax, times, prices, anchor_times, anchors, trades, **kw)

    monkeypatch.setattr(charts, "draw_price_panel", spy)
    assert position_picture_png(position).startswith(b"\x89PNG")
    assert [(side, price) for _, side, price in calls[0]] == [("BUY", D("99.5"))]
