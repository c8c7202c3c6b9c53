"""One decision, three doors: the API's evaluation, the admin's preview and the cron command
say the same side, quantity, reason and sentence for the same position state and price."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.urls import reverse

from positions.models import Price
from positions.services import position_create
from positions.workflows.evaluation import position_decide

pytestmark = pytest.mark.django_db


T0 = dt.datetime(2024, 3, 1, 21, tzinfo=dt.UTC)

SCENARIOS = {
    "all cash: rebalance up to the low guardrail": (
        {"qty": 0, "cash": 10000}, "97", ("BUY", "guardrail_rebalance")),
    "buy trigger": (
        {"qty": 50, "cash": 5000, "anchor_price": 100}, "97", ("BUY", "buy_trigger")),
    "sell trigger": (
        {"qty": 50, "cash": 5000, "anchor_price": 94}, "97", ("SELL", "sell_trigger")),
    "trigger trimmed by the guardrail": (
        {"qty": 50, "cash": 5000, "anchor_price": 100, "sizing": "original"}, "97",
        ("BUY", "buy_trigger")),
    "all stock: sell down to the high guardrail": (
        {"qty": 100, "cash": 0, "anchor_price": 97}, "97", ("SELL", "guardrail_rebalance")),
    # buy_to(0.25) = 0.25*V / (97 * 1.000025): 25.77 shares of 10 000, 51.55 of 20 000
    "whole shares": (
        {"qty": 0, "cash": 20000, "fractional": False}, "97", ("BUY", "guardrail_rebalance", 51)),
    "lots of 5": (
        {"qty": 0, "cash": 20000, "qty_step": 5}, "97", ("BUY", "guardrail_rebalance", 50)),
    "below the minimum notional": (
        {"qty": 0, "cash": 300}, "97", ("BUY", "below_min_notional")),
    "no trigger": (
        {"qty": 50, "cash": 5000, "anchor_price": 98}, "97", (None, "no_trigger")),
}


def via_api(api, position) -> tuple:
    response = api.post(f"/v1/positions/{position.id}/evaluate", {}, format="json")
    assert response.status_code == 200
    body = json.loads(response.content, parse_float=Decimal)
    shown = (body["proposals"] or body["blocked"] or [None])[0]
    if shown is None:
        return None, None, body["reason"], body["message"]
    return shown["side"], Decimal(str(shown["qty"])), body["reason"], body["message"]


def via_admin(admin_client, position) -> tuple:
    decision = position_decide(position=position, price=Price.objects.get(
        ticker=position.ticker).price)
    shown = decision.proposal or decision.blocked
    direct = (shown.side if shown else None, shown.qty if shown else None, decision.reason,
              decision.message)

    page = admin_client.get(reverse("admin:positions_position_change",
                                    args=[quote(position.pk)]))
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    preview = re.search(r"<b>(would (BUY|SELL) (\S+) \(notional [^)]*\)|(BUY|SELL) (\S+) blocked "
                        r"by \w+|nothing to do)</b> \[(\w+)\]<br>([^<]*)<", text)
    assert preview, "no decision preview on the position page"
    side = preview.group(2) or preview.group(4)
    qty = preview.group(3) or preview.group(5)
    shown_on_page = (side, Decimal(qty) if qty else None, preview.group(6), preview.group(7))
    assert shown_on_page == direct
    return direct


def via_command(position) -> tuple:
    out = StringIO()
    call_command("evaluate_positions", "--ticker", position.ticker, stdout=out)
    line = out.getvalue().splitlines()[0]
    match = re.fullmatch(rf"{position.id} {position.ticker} @ \S+: (\w+)(?: (BUY|SELL) (\S+))? "
                         r"— (.*)", line)
    assert match, line
    reason, side, qty, message = match.groups()
    return side, Decimal(qty) if qty else None, reason, message


@pytest.mark.parametrize("state, price, expected", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_api_admin_and_command_decide_the_same(api, admin_client, user, state, price, expected):
    results = {}
    for surface, ticker in (("api", "APIX"), ("admin", "ADMX"), ("command", "CMDX")):
        Price.objects.create(ticker=ticker, price=Decimal(price), ts=T0)
        position = position_create(owner=user, ticker=ticker, **{
            k: v if isinstance(v, (bool, str)) else Decimal(v) for k, v in state.items()})
        if surface == "api":
            results[surface] = via_api(api, position)
        elif surface == "admin":
            results[surface] = via_admin(admin_client, position)
        else:
            results[surface] = via_command(position)
    assert results["api"] == results["admin"] == results["command"]
    side, qty, reason, message = results["api"]
    assert (side, reason) == expected[:2]
    if len(expected) > 2:
        assert qty == expected[2]
    assert (qty is None) == (side is None) and (qty is None or qty > 0)
    assert message
