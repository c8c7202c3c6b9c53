"""GET /v1/positions/{id}/ladder: the rungs with their proposals, owner isolation, what blocks
now. Numbers by hand from docs/strategy.md#ladder (anchor 100, trigger 3 %: buy at 97, sell at
103)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import assert_error
from events.models import Event
from orders.services import order_submit

pytestmark = pytest.mark.django_db
D = Decimal


def test_ladder_answers_the_rungs_and_their_proposals(api, make_position):
    pos = make_position(qty="50", cash="5000", anchor_price="100")
    events_before = Event.objects.count()
    r = api.get(f"/v1/positions/{pos.id}/ladder")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["position_id"] == pos.id and body["blocked_by"] is None
    assert D(str(body["buy"]["price"])) == D(97) and D(str(body["sell"]["price"])) == D(103)
    sell = body["sell"]["proposal"]
    # |100/103 - 1| * 1.6667 * (50*103 + 5000) / 103, toward zero to 8 places
    raw = (D(3) / D(103)) * D("1.6667") * D(10150) / D(103)
    assert sell["side"] == "SELL" and sell["kind"] == "sell_trigger"
    assert D(str(sell["qty"])) == raw.quantize(D("0.00000001"), "ROUND_DOWN")
    assert body["buy"]["proposal"]["side"] == "BUY"
    assert "97" in body["message"] and "103" in body["message"]
    # A read: it records nothing.
    assert Event.objects.count() == events_before

    # What the ladder promises is what an evaluation at that price does.
    ev = api.post(f"/v1/positions/{pos.id}/evaluate", '{"price": 103}',
                  content_type="application/json").json()
    assert ev["proposals"][0]["qty"] == sell["qty"]
    ev = api.post(f"/v1/positions/{pos.id}/evaluate", '{"price": 102.999999}',
                  content_type="application/json").json()
    assert ev["proposals"] == [] and ev["reason"] == "no_trigger"


def test_ladder_of_another_owner_is_not_found(other_api, make_position):
    pos = make_position(qty="50", cash="5000", anchor_price="100")
    assert_error(other_api.get(f"/v1/positions/{pos.id}/ladder"), 404, "position_not_found")
    assert_error(other_api.get("/v1/positions/pos_nope/ladder"), 404, "position_not_found")


def test_ladder_names_an_open_order_as_a_block(api, make_position):
    pos = make_position(qty="50", cash="5000", anchor_price="100")
    order_submit(position=pos, side="BUY", qty=D(1))
    body = api.get(f"/v1/positions/{pos.id}/ladder").json()
    assert body["blocked_by"] == "open_order"
    assert D(str(body["sell"]["price"])) == D(103)  # the rung once the order is done
    assert "still open" in body["message"]


def test_ladder_without_shares_has_no_sell(api, make_position):
    pos = make_position(qty="0", cash="10000", anchor_price="100", guard_low="0")
    body = api.get(f"/v1/positions/{pos.id}/ladder").json()
    assert body["sell"] is None and "no price sells" in body["message"].lower()
    assert D(str(body["buy"]["price"])) == D(97)


def test_ladder_of_a_position_with_no_shares_says_it_buys_at_any_price(api, make_position):
    """No shares, no anchor, the default 25 % guardrail: the buy fires at every price up to
    ~2.5e11 (where 2,500 of cash is one 10^-8 share), a number that says nothing about the
    position: the rung is ``always`` with no price, and the message says why, without it."""
    pos = make_position(qty="0", cash="1000")
    response = api.get(f"/v1/positions/{pos.id}/ladder")
    assert response.status_code == 200
    body = response.json()
    assert body["buy"] == {"price": None, "always": True, "proposal": None}
    assert body["sell"] is None
    message = body["message"]
    assert "under its low guardrail at every price" in message
    assert "buys at any price (no shares: the guardrail buy fires" in message
    assert "fires at" not in message and "24999" not in message and "up to" not in message
    # Any price buys indeed, the current one and a far higher one (the first evaluation sets
    # the anchor 50, so the price-jump guard holds 10000 back: its buy is shown as blocked).
    for p, shown in ((50, "proposals"), (10000, "blocked")):
        ev = api.post(f"/v1/positions/{pos.id}/evaluate", {"price": p}, format="json").json()
        assert ev[shown][0]["side"] == "BUY", ev


def test_a_rung_at_a_trigger_is_not_always(api, make_position):
    pos = make_position(qty="50", cash="5000", anchor_price="100")
    body = api.get(f"/v1/positions/{pos.id}/ladder").json()
    assert body["buy"]["always"] is False and body["sell"]["always"] is False


def test_ladder_names_a_price_the_jump_guard_holds_as_a_block(api, make_position):
    """The ticker's latest price is a -40 % jump nobody confirmed: evaluation blocks its
    proposal (price_jump_unconfirmed), and so does the ladder; confirmed, the block lifts."""
    import datetime as dt

    from positions.services import prices_record
    from volbal import clock

    pos = make_position(qty="50", cash="5000", anchor_price="50")
    now = clock.now()
    prices_record(rows=[{"ticker": "ZIM", "price": D("50"), "ts": now - dt.timedelta(days=1)}])
    prices_record(rows=[{"ticker": "ZIM", "price": D("30"), "ts": now}])
    events_before = Event.objects.count()
    body = api.get(f"/v1/positions/{pos.id}/ladder").json()
    assert body["blocked_by"] == "price_jump_unconfirmed"
    assert "latest price 30 " in body["message"] and "unconfirmed jump" in body["message"]
    assert Event.objects.count() == events_before  # a read: the alert is the evaluation's
    ev = api.post(f"/v1/positions/{pos.id}/evaluate", {}, format="json").json()
    assert ev["blocked"][0]["blocked_by"] == "price_jump_unconfirmed"  # the same facts
    r = api.post("/v1/prices/confirm", {"ticker": "ZIM", "ts": now.isoformat()}, format="json")
    assert r.status_code == 200, r.content
    assert api.get(f"/v1/positions/{pos.id}/ladder").json()["blocked_by"] is None
