"""docs/marketdata.md, "Prices and corporate actions from Alpaca", step by step, against the
replay of positions/workflows/tests/exchanges/docs_aapl.json served on 127.0.0.1 (a real HTTP
server that checks each request: nothing reaches Alpaca). When this test changes, that section
changes with it."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.models import Order
from positions.marketdata.tests.recorded import KEY_ID, SECRET, check, expect
from positions.models import Dividend, Position, Price, Split
from volbal import clock

pytestmark = pytest.mark.django_db
D = Decimal
HERE = Path(__file__).parent / "exchanges"
MONDAY_11 = dt.datetime(2020, 8, 31, 15, tzinfo=dt.UTC)  # 11:00 in New York


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def test_prices_and_corporate_actions_from_alpaca(settings, monkeypatch, httpserver,
                                                  make_position, tmp_path):
    # export VOLBAL_PRICE_FEED=alpaca ALPACA_API_KEY_ID=… ALPACA_API_SECRET_KEY=…
    # export ALPACA_DATA_URL=<the replay>
    settings.VOLBAL_PRICE_FEED = "alpaca"
    settings.ALPACA_DATA_URL = httpserver.url_for("")
    settings.VOLBAL_MARKETDATA_CACHE_DIR = tmp_path / "cache"
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    expect(httpserver, "docs_aapl", HERE)

    # 1. A paper position in AAPL opened on 2020-08-03: 10 shares, anchor 500, 5000 cash.
    pos = make_position(ticker="AAPL", qty="10", cash="5000", anchor_price="500",
                        broker="paper", auto_submit=True)
    Position.objects.filter(pk=pos.pk).update(
        created_at=dt.datetime(2020, 8, 3, 14, tzinfo=dt.UTC))
    monkeypatch.setattr(clock, "now", lambda: MONDAY_11)
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    said = run("trade")
    price = Price.objects.get(ticker="AAPL")
    assert (price.price, price.ts, price.source) == (
        D("129.04"), dt.datetime(2020, 8, 31, 14, 59, tzinfo=dt.UTC), "alpaca")
    dividend = Dividend.objects.get(position=pos)
    assert (dividend.ex_date, dividend.status) == (dt.date(2020, 8, 7), "paid")
    assert (dividend.gross_amount, dividend.net_amount) == (D("8.2"), D("6.15"))
    assert dividend.anchor_after == D("499.18")  # on the 10 shares held before the split
    split = Split.objects.get(position=pos)
    assert (split.ratio, split.status, split.effective_date) == (D(4), "applied",
                                                                 dt.date(2020, 8, 31))
    pos.refresh_from_db()
    assert (pos.qty, pos.anchor_price) == (D(40), D("124.795"))
    order = Order.objects.get(position=pos)  # 129.04 is 3.4% above 124.795: a sell
    assert order.side == "SELL" and order.status == "submitted" and order.routed_at
    assert "recorded from alpaca" in said

    # A minute later: the next trade only (corporate actions once per session), and the fill.
    monkeypatch.setattr(clock, "now", lambda: MONDAY_11 + dt.timedelta(minutes=1))
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too
    run("trade")
    order.refresh_from_db()
    assert order.status == "filled" and order.avg_fill_price == D("129.5")

    # 2. Applied once: the same actions fetched again record nothing.
    said = run("fetch_corporate_actions", "--start", "2020-08-03", "--end", "2020-08-31")
    assert "0 recorded, 2 already recorded" in said
    assert Split.objects.count() == 1 and Dividend.objects.count() == 1

    # 3. A backtest by ticker from the fetched history, then from the cache.
    said = run("backtest", "--ticker", "AAPL", "--start", "2020-08-27", "--end", "2020-09-01")
    assert "from alpaca: 4 daily bars, 1 splits, 0 dividends" in said
    check(httpserver)
    asked = len(httpserver.log)
    said = run("backtest", "--ticker", "AAPL", "--start", "2020-08-27", "--end", "2020-09-01")
    assert "from the cache" in said and len(httpserver.log) == asked
