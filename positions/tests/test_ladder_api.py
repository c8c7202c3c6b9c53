"""GET /v1/positions/{id}/ladder: the rungs with their proposals, owner isolation, what blocks
now. Numbers by hand from strategy.md (anchor 100, trigger 3 %: buy at 97, sell at 103)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import assert_error
from events.models import Event
from orders.services import order_submit

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
    """No shares, the default 25 % guardrail: the buy fires at every price up to ~2.5e11 (one
    10^-8 share of the 2,500 target); the message says so instead of naming it a trigger."""
    pos = make_position(qty="0", cash="10000", anchor_price="100")
    response = api.get(f"/v1/positions/{pos.id}/ladder")
    assert response.status_code == 200
    body = response.json()
    assert D("2.49e11") < D(str(body["buy"]["price"])) < D("2.5e11")
    assert body["buy"]["proposal"]["kind"] == "guardrail_rebalance"
    assert "under its low guardrail at every price" in body["message"]
    assert "at any price up to" in body["message"] and "fires at" not in body["message"]
