"""What the admin shows, as an operator reads it at 1366 px (docs/admin.md#how-values-are-shown,
docs/admin.md#the-position-picture): one valuation with the API, numbers without trailing
zeros, one time format with its zone, the newest rows first, the picture at market time."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from events.models import Event, EventType
from orders.models import Order
from orders.services import order_fill, order_submit_for
from positions import services
from positions.picture import position_history, position_picture_png
from positions.workflows.corporate_actions import split_announce_ticker

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 1, 15, 15, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _setup(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.VOLBAL_TRADING_TZ = "America/New_York"


def page(client, name, *args) -> str:
    response = client.get(reverse(f"admin:{name}", args=[quote(a) for a in args]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_admin_values_a_position_as_the_api_does_when_the_last_fill_is_newer(
        admin_client, api, user, make_position):
    position = make_position(qty=10, cash=10000)
    services.prices_record(rows=[{"ticker": "ZIM", "price": D("100"), "ts": T0}])
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("3"),
                                idempotency_key="k")
    order_fill(owner=user, order_id=order.pk, price=D("104.37"), filled_qty=D("3"))  # now

    shown = api.get(f"/v1/positions/{position.pk}").json()
    assert shown["price_source"] == "fill" and D(str(shown["price"])) == D("104.37")
    value = f'{D(str(shown["value"])):.2f}'  # to the cent
    expected = f"{value}</span><br><small style='white-space:nowrap'>at 104.37, fill"
    assert expected in page(admin_client, "positions_position_changelist")
    html = page(admin_client, "positions_position_change", position.pk)
    assert expected in html
    assert f"{D(str(shown['weight'])):.4f}" in html
    # the picture's price line ends at the price the position is valued at
    assert position_history(position)["prices"][-1][1] == D("104.37")


def test_numbers_without_trailing_zeros_and_times_in_one_format_with_their_zone(
        admin_client, user, make_position):
    position = make_position(qty=10, cash=10000, anchor_price="130.85", trigger_pct="0.03")
    services.prices_record(rows=[{"ticker": "ZIM", "price": D("130.85"), "ts": T0}])
    order, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("2"),
                                idempotency_key="k")
    Order.objects.filter(pk=order.pk).update(created_at=T0, trading_day=dt.date(2026, 1, 15))

    listed = page(admin_client, "positions_position_changelist")
    assert "130.85" in listed and "10000.00" in listed
    assert not re.search(r"\d\.\d*0000\b", listed)  # no 130.850000, no 10.00000000
    detail = page(admin_client, "positions_position_change", position.pk)
    assert 'value="0.03"' in detail  # an input too: trigger_pct, not 0.03000000
    assert not re.search(r">\s*\d+\.\d*0000\s*<", detail)
    created = timezone.localtime(position.created_at, dt.timezone(dt.timedelta(hours=-5)))
    assert created.strftime("%Y-%m-%d %H:%M:%S EST") in detail  # "Created at", not "Dec. 7"
    assert not re.search(r"[A-Z][a-z]{2}\. \d+, \d{4}", detail)

    shown = page(admin_client, "orders_order_change", order.pk)
    assert "2026-01-15 10:30:00 EST" in shown  # created at
    assert re.search(r">\s*2026-01-15\s*<", shown)  # the trading day, ISO
    assert f"{order.pk} BUY 2<" in shown  # its name too
    assert not re.search(r"[A-Z][a-z]{2}\. \d+, \d{4}", shown)
    assert not re.search(r">\s*\d+\.\d*0000\s*<", shown)

    prices = page(admin_client, "positions_price_changelist")
    assert "130.85" in prices and "130.850000" not in prices


def test_every_model_is_named_in_good_english(admin_client):
    index = page(admin_client, "index")
    assert "Webhook deliveries" in index and "deliverys" not in index


def test_events_orders_and_prices_are_listed_newest_first(admin_client, user, make_position):
    position = make_position(qty=0, cash=10000)
    services.prices_record(rows=[{"ticker": "ZIM", "price": D("10"), "ts": T0},
                                 {"ticker": "ZIM", "price": D("11"),
                                  "ts": T0 + dt.timedelta(days=1)}])
    first, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("1"),
                                idempotency_key="a")
    Order.objects.filter(pk=first.pk).update(created_at=T0)
    second, _ = order_submit_for(owner=user, position_id=position.pk, side="BUY", qty=D("2"),
                                 idempotency_key="b")

    def order_of(html, *needles):
        return sorted(needles, key=html.index)

    orders = page(admin_client, "orders_order_changelist")
    assert order_of(orders, first.pk, second.pk) == [second.pk, first.pk]
    prices = page(admin_client, "positions_price_changelist")
    assert order_of(prices, "2026-01-15 10:30", "2026-01-16 10:30") == [
        "2026-01-16 10:30", "2026-01-15 10:30"]
    events = page(admin_client, "events_event_changelist")
    newest, oldest = Event.objects.order_by("-id")[0], Event.objects.order_by("id")[0]
    assert order_of(events, newest.message, oldest.message) == [newest.message, oldest.message]


def test_the_positions_list_has_value_weight_and_created_columns(admin_client, make_position):
    make_position(qty=1, cash=100)
    html = page(admin_client, "positions_position_changelist")
    headers = [" ".join(re.sub(r"<[^>]+>", " ", h).split()).lower()
               for h in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html, re.S)]
    assert [re.sub(r"^\d+ ", "", h) for h in headers][-3:] == ["value", "weight", "created"]


def test_a_position_paper_traded_on_a_samples_history_has_its_price_line(user, make_position):
    """Prices dated 2010 recorded after the position opened, fills made now: the picture draws
    the 2010 prices, and each fill beside the price it was made at."""
    position = make_position(qty=10, cash=1000)
    closes = [D("130"), D("131.5"), D("129"), D("133")]
    days = [dt.datetime(2010, 1, 4 + i, 21, tzinfo=dt.UTC) for i in range(4)]
    for ts, close in zip(days, closes, strict=True):
        services.prices_record(rows=[{"ticker": "ZIM", "price": close, "ts": ts}])
        if ts == days[1]:  # a fill now, after the second day's price
            order, _ = order_submit_for(owner=user, position_id=position.pk, side="SELL",
                                        qty=D("1"), idempotency_key="s")
            order_fill(owner=user, order_id=order.pk, price=D("131.5"), filled_qty=D("1"))
    history = position_history(position)
    assert [p for _, p in history["prices"]] == closes
    (fill_time, side, price), = history["fills"]
    assert days[1] <= fill_time < days[1] + dt.timedelta(minutes=1)  # beside its price
    assert all(days[0] - dt.timedelta(minutes=1) <= t <= days[-1] for t, _ in
               history["anchors"])


def test_the_anchor_is_drawn_through_splits_and_dividends(user, make_position):
    position = make_position(qty=100, cash=1000, anchor_price="120")
    services.prices_record(rows=[{"ticker": "ZIM", "price": D("120"), "ts": timezone.now()}])
    from positions.dividends import dividend_announce
    from positions.workflows.corporate_actions import dividends_process
    from volbal import clock

    # the calendar date in the trading time zone, a day that has come: after the close,
    # session_day() is already the next session, whose actions are not applied yet
    today = clock.trading_day()
    dividend_announce(owner=user, position_id=position.pk, ex_date=today, pay_date=today,
                      dps=D("1"))
    dividends_process()
    split_announce_ticker(ticker="ZIM", ratio=D("2"), effective_date=today)
    anchors = [a for _, a in position_history(position)["anchors"]]
    position.refresh_from_db()
    assert anchors[0] == 120 and anchors[-1] == position.anchor_price
    # the dividend's step (119), the split's (119 / 2), then the split's correction of the
    # dividend's anchor step to 120 / 2 - 1 (a split counts before its ex-date's dividend)
    assert [D(str(a)) for a in anchors[-3:]] == [D("119"), D("59.5"), D("59")]
    assert EventType.SPLIT_APPLIED in Event.objects.filter(position_id=position.pk).values_list(
        "type", flat=True)


def test_the_pictures_time_axis_shows_dates_and_the_zone(monkeypatch, user, make_position):
    import matplotlib.figure

    figures = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return real(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    position = make_position(qty=10, cash=1000)
    services.prices_record(rows=[
        {"ticker": "ZIM", "price": D(100 + i), "ts": dt.datetime(2010, 1, 4 + i, 21,
                                                                   tzinfo=dt.UTC)}
        for i in range(5)])
    assert position_picture_png(position).startswith(b"\x89PNG")
    ax = figures[-1].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?|\d{2}:\d{2}(:\d{2})?", t)
                          for t in labels), labels
    offset = ax.xaxis.get_major_formatter().get_offset()
    assert "America/New_York" in ax.get_xlabel() and re.search(r"2010.*E[SD]T", offset)
