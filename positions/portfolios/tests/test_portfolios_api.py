"""POST/GET/PATCH /v1/portfolios, positions joining them, and the cash movements: deposits,
withdrawals and transfers with their events, refusals and idempotency."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import assert_error
from events.models import Event
from positions.models import Portfolio, Position, Price

pytestmark = pytest.mark.django_db


def post(api, path, body, key=None):
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.post(path, body, format="json", **extra)


def new_portfolio(api, **body):
    response = post(api, "/v1/portfolios", {"name": "Core", "cash": 1000, **body})
    assert response.status_code == 201, response.content
    return response.json()


def new_position(api, **body):
    response = post(api, "/v1/positions", {"ticker": "ZIM", "qty": 0, "cash": 100, **body})
    assert response.status_code == 201, response.content
    return response.json()


def price(ticker, value):
    Price.objects.create(ticker=ticker, price=Decimal(value),
                         ts=timezone.now() - dt.timedelta(minutes=1))


def test_create_read_list_and_patch(api, user):
    body = new_portfolio(api, rebalance="band", rebalance_band=0.05)
    assert body["id"].startswith("pfl_")
    assert (body["name"], body["cash"], body["value"], body["rebalance"],
            body["rebalance_band"], body["positions"]) == ("Core", 1000, 1000, "band", 0.05, [])
    pid = body["id"]
    assert api.get(f"/v1/portfolios/{pid}").json()["cash"] == 1000
    assert [p["id"] for p in api.get("/v1/portfolios").json()["portfolios"]] == [pid]
    changed = api.patch(f"/v1/portfolios/{pid}", {"name": "Main", "rebalance": "quarterly"},
                        format="json")
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["rebalance"]) == ("Main", "quarterly")
    created, edited = Event.objects.filter(portfolio_id=pid).order_by("id")
    assert (created.type, edited.type) == ("portfolio_created", "portfolio_changed")
    assert created.position_id == "" and created.actor_user_id == user.pk
    assert edited.outputs["changed"]["rebalance"] == {"old": "band", "new": "quarterly"}


def test_band_without_its_band_and_bounds_are_refused(api):
    assert_error(post(api, "/v1/portfolios", {"name": "x", "rebalance": "band"}), 400,
                 "validation_error")
    assert_error(post(api, "/v1/portfolios", {"name": "x", "rebalance_band": 1.5}), 400,
                 "validation_error")
    assert_error(post(api, "/v1/portfolios", {"name": "x", "rebalance": "weekly"}), 400,
                 "validation_error")
    assert_error(post(api, "/v1/portfolios", {"name": "x", "cash": -1}), 400,
                 "validation_error")
    assert not Portfolio.objects.exists()


def test_another_owners_portfolio_is_not_found(api, other_api):
    pid = new_portfolio(api)["id"]
    assert_error(other_api.get(f"/v1/portfolios/{pid}"), 404, "portfolio_not_found")
    assert other_api.get("/v1/portfolios").json()["portfolios"] == []
    assert_error(post(other_api, f"/v1/portfolios/{pid}/cash", {"amount": 5}, "k1"), 404,
                 "portfolio_not_found")
    other_position = new_position(other_api)
    assert_error(other_api.patch(f"/v1/positions/{other_position['id']}",
                                 {"portfolio": pid}, format="json"), 404, "portfolio_not_found")
    assert Portfolio.objects.get().cash == 1000


def test_positions_join_with_weights_and_show_their_actual_weight(api):
    pid = new_portfolio(api)["id"]
    a = new_position(api, ticker="AAA", qty=10, cash=0, portfolio=pid, target_weight=0.5)
    b = new_position(api, ticker="BBB", cash=500)
    assert (a["portfolio"], a["target_weight"]) == (pid, 0.5)
    joined = api.patch(f"/v1/positions/{b['id']}", {"portfolio": pid, "target_weight": 0.25,
                                                    "trigger_pct": 0.05}, format="json")
    assert joined.status_code == 200
    assert (joined.json()["target_weight"], joined.json()["trigger_pct"]) == (0.25, 0.05)
    price("AAA", 50)  # A: 10 x 50 = 500; B: 500 cash; F: 1000 -> T = 2000
    body = api.get(f"/v1/portfolios/{pid}").json()
    assert (body["value"], body["cash"], body["positions_cash"],
            body["target_weight_total"]) == (2000, 1000, 500, 0.75)
    assert [(p["id"], p["value"], p["target_weight"], p["weight"]) for p in body["positions"]] \
        == [(a["id"], 500, 0.5, 0.25), (b["id"], 500, 0.25, 0.25)]
    event = Event.objects.filter(position_id=b["id"], type="config_changed",
                                 portfolio_id=pid).first()
    assert event.outputs["changed"]["portfolio"] == {"old": None, "new": pid}
    assert event.outputs["value"] == Decimal(500)


def test_weights_above_one_and_a_second_portfolio_are_refused(api):
    pid = new_portfolio(api)["id"]
    other = new_portfolio(api, name="Other")["id"]
    a = new_position(api, portfolio=pid, target_weight=0.7)
    b = new_position(api)
    assert_error(api.patch(f"/v1/positions/{b['id']}", {"portfolio": pid, "target_weight": 0.4},
                           format="json"), 409, "target_weights_exceed_one")
    assert_error(post(api, "/v1/positions", {"ticker": "X", "qty": 0, "cash": 1,
                                             "portfolio": pid, "target_weight": 0.31}),
                 409, "target_weights_exceed_one")
    assert Position.objects.count() == 2  # the refused creation left nothing
    assert_error(api.patch(f"/v1/positions/{a['id']}", {"portfolio": other}, format="json"),
                 409, "position_in_other_portfolio")
    left = api.patch(f"/v1/positions/{a['id']}", {"portfolio": None}, format="json")
    assert (left.json()["portfolio"], left.json()["target_weight"]) == (None, None)
    assert api.patch(f"/v1/positions/{b['id']}", {"portfolio": pid, "target_weight": 1},
                     format="json").status_code == 200
    assert_error(api.patch(f"/v1/positions/{a['id']}", {"target_weight": 0.1}, format="json"),
                 400, "validation_error")


def test_portfolio_deposit_and_withdrawal(api, user):
    pid = new_portfolio(api)["id"]
    deposit = post(api, f"/v1/portfolios/{pid}/cash", {"amount": 250.5}, "dep-1")
    assert deposit.status_code == 201
    assert deposit.json() == {"portfolio_id": pid, "position_id": None, "amount": 250.5,
                              "cash": 1250.5}
    withdrawal = post(api, f"/v1/portfolios/{pid}/cash", {"amount": -1000}, "wd-1")
    assert withdrawal.json()["cash"] == 250.5
    assert Portfolio.objects.get().cash == Decimal("250.5")
    events = list(Event.objects.filter(portfolio_id=pid, type__startswith="cash_"))
    assert [(e.type, e.position_id, e.inputs, e.outputs) for e in events] == [
        ("cash_deposited", "", {"amount": Decimal("250.5"), "from": None, "to": "portfolio",
                                "reason": "manual"},
         {"balances": {"portfolio": Decimal("1250.5")}}),
        ("cash_withdrawn", "", {"amount": Decimal(1000), "from": "portfolio", "to": None,
                                "reason": "manual"},
         {"balances": {"portfolio": Decimal("250.5")}}),
    ]
    assert {e.actor_user_id for e in events} == {user.pk}


def test_overdraw_is_refused_and_writes_nothing(api):
    pid = new_portfolio(api)["id"]
    body = assert_error(post(api, f"/v1/portfolios/{pid}/cash", {"amount": -1000.000001}, "k"),
                        409, "insufficient_cash")
    assert "less than zero" in body["message"]
    assert Portfolio.objects.get().cash == 1000
    assert not Event.objects.filter(type="cash_withdrawn").exists()
    # the refusal is not remembered: the same key may be used again once it would succeed
    assert post(api, f"/v1/portfolios/{pid}/cash", {"amount": -1000}, "k").status_code == 201
    assert Portfolio.objects.get().cash == 0


def test_cash_movements_need_a_key_and_a_valid_amount(api):
    pid = new_portfolio(api)["id"]
    position = new_position(api)
    for path in (f"/v1/portfolios/{pid}/cash", f"/v1/positions/{position['id']}/cash"):
        assert_error(post(api, path, {"amount": 5}), 400, "missing_idempotency_key")
        assert_error(post(api, path, {"amount": 0}, "z"), 400, "invalid_amount")
        assert_error(post(api, path, {"amount": "5"}, "s"), 400, "validation_error")
        assert_error(post(api, path, {"amount": 0.0000001}, "p"), 400, "validation_error")
        assert_error(post(api, path, {"amount": 5, "qty": 1}, "u"), 400, "validation_error")
    assert_error(post(api, f"/v1/portfolios/{pid}/transfers",
                      {"from": "portfolio", "to": position["id"], "amount": 5}), 400,
                 "missing_idempotency_key")
    assert not Event.objects.filter(type__startswith="cash_").exists()


def test_same_key_replays_and_another_body_is_a_mismatch(api):
    pid = new_portfolio(api)["id"]
    first = post(api, f"/v1/portfolios/{pid}/cash", {"amount": 100}, "same")
    again = post(api, f"/v1/portfolios/{pid}/cash", {"amount": 100}, "same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert_error(post(api, f"/v1/portfolios/{pid}/cash", {"amount": 200}, "same"), 409,
                 "idempotency_signature_mismatch")
    assert Portfolio.objects.get().cash == 1100
    assert Event.objects.filter(type="cash_deposited").count() == 1


def test_position_cash_is_not_a_trade(api):
    position = new_position(api, qty=10, cash=100, anchor_price=20)
    pid = position["id"]
    deposit = post(api, f"/v1/positions/{pid}/cash", {"amount": 900}, "d")
    assert deposit.json() == {"portfolio_id": None, "position_id": pid, "amount": 900,
                              "cash": 1000}
    assert_error(post(api, f"/v1/positions/{pid}/cash", {"amount": -1000.01}, "w"), 409,
                 "insufficient_cash")
    after = api.get(f"/v1/positions/{pid}").json()
    assert (after["cash"], after["qty"], after["anchor_price"]) == (1000, 10, 20)
    assert [e.type for e in Event.objects.filter(position_id=pid)] == [
        "position_created", "cash_deposited"]


def test_patching_cash_points_to_the_cash_movements(api):
    position = new_position(api)
    body = assert_error(api.patch(f"/v1/positions/{position['id']}", {"cash": 5},
                                  format="json"), 400, "not_configurable")
    assert "/v1/positions/{id}/cash" in body["message"]


def test_transfers_between_the_portfolio_and_its_positions(api):
    pid = new_portfolio(api)["id"]
    a = new_position(api, portfolio=pid)["id"]
    b = new_position(api, portfolio=pid)["id"]
    out = post(api, f"/v1/portfolios/{pid}/transfers",
               {"from": "portfolio", "to": a, "amount": 400}, "t1")
    assert out.status_code == 201
    assert out.json()["balances"] == {"portfolio": 600, a: 500}
    assert out.json()["transfer_id"].startswith("trf_")
    between = post(api, f"/v1/portfolios/{pid}/transfers", {"from": a, "to": b, "amount": 50},
                   "t2").json()
    assert between["balances"] == {a: 450, b: 150}
    back = post(api, f"/v1/portfolios/{pid}/transfers", {"from": b, "to": "portfolio",
                                                          "amount": 150}, "t3").json()
    assert back["balances"] == {b: 0, "portfolio": 750}
    events = list(Event.objects.filter(type="cash_transferred"))
    # one event on the position of a transfer with F; one on each position between two
    assert [(e.position_id, e.inputs["from"], e.inputs["to"]) for e in events] == [
        (a, "portfolio", a), (a, a, b), (b, a, b), (b, b, "portfolio")]
    assert events[1].inputs["transfer_id"] == events[2].inputs["transfer_id"]
    assert {e.portfolio_id for e in events} == {pid}
    assert {e.inputs["reason"] for e in events} == {"manual"}
    assert (Portfolio.objects.get().cash, Position.objects.get(pk=a).cash,
            Position.objects.get(pk=b).cash) == (750, 450, 0)


def test_transfer_refusals(api):
    pid = new_portfolio(api)["id"]
    inside = new_position(api, portfolio=pid)["id"]
    outside = new_position(api)["id"]
    path = f"/v1/portfolios/{pid}/transfers"
    assert_error(post(api, path, {"from": "portfolio", "to": outside, "amount": 1}, "r1"), 409,
                 "position_not_in_portfolio")
    assert_error(post(api, path, {"from": inside, "to": inside, "amount": 1}, "r2"), 400,
                 "same_account")
    assert_error(post(api, path, {"from": inside, "to": "portfolio", "amount": 100.01}, "r3"),
                 409, "insufficient_cash")
    assert_error(post(api, path, {"from": "portfolio", "to": inside, "amount": -1}, "r4"),
                 400, "validation_error")
    assert_error(post(api, path, {"from": "portfolio", "to": "pos_nope", "amount": 1}, "r5"),
                 404, "position_not_found")
    assert (Portfolio.objects.get().cash, Position.objects.get(pk=inside).cash) == (1000, 100)
    assert not Event.objects.filter(type="cash_transferred").exists()


def test_schema_documents_the_cash_endpoints(api):
    schema = api.get("/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/v1/portfolios", "/v1/portfolios/{id}", "/v1/portfolios/{id}/cash",
                 "/v1/portfolios/{id}/transfers", "/v1/positions/{id}/cash"):
        assert path in schema["paths"], path
    cash = schema["paths"]["/v1/portfolios/{id}/cash"]["post"]
    assert "insufficient_cash" in cash["responses"]["409"]["description"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in cash["parameters"])
    transfer = schema["components"]["schemas"]["TransferRequest"]
    assert set(transfer["required"]) == {"from", "to", "amount"}


def test_the_portfolios_events_list_its_movements_and_its_positions(api, other_api):
    pid = new_portfolio(api)["id"]
    a = new_position(api, portfolio=pid)["id"]
    post(api, f"/v1/portfolios/{pid}/cash", {"amount": 5}, "e1")
    post(api, f"/v1/portfolios/{pid}/transfers", {"from": "portfolio", "to": a, "amount": 5},
         "e2")
    new_position(api, ticker="OUT")  # in no portfolio: not listed
    body = api.get(f"/v1/portfolios/{pid}/events").json()
    assert body["portfolio_id"] == pid
    assert [(e["type"], e["position_id"]) for e in body["events"]] == [
        ("portfolio_created", ""), ("config_changed", a), ("cash_deposited", ""),
        ("cash_transferred", a)]
    assert {e["portfolio_id"] for e in body["events"]} == {pid}
    only = api.get(f"/v1/portfolios/{pid}/events", {"type": "cash_transferred"}).json()
    assert [e["type"] for e in only["events"]] == ["cash_transferred"]
    assert_error(other_api.get(f"/v1/portfolios/{pid}/events"), 404, "portfolio_not_found")


@pytest.mark.parametrize("name", [5, 5.5, True, ["Core"], "Pay\u202eroll", "Core\u2066x",
                                  "Core\x07", "Core\nTwo", "\u200fCore"])
def test_a_name_is_a_string_without_control_or_bidi_characters(api, name):
    # issue 22 (F8): the number 5 was taken as "5"; control characters and bidi overrides
    # made a name display other than it is
    body = assert_error(post(api, "/v1/portfolios", {"name": name, "cash": 1}), 400,
                        "validation_error")
    assert "name" in body["fields"]
    pid = new_portfolio(api)["id"]
    body = assert_error(api.patch(f"/v1/portfolios/{pid}", {"name": name}, format="json"), 400,
                        "validation_error")
    assert "name" in body["fields"]
    assert Portfolio.objects.get(pk=pid).name == "Core"
    assert new_portfolio(api, name="Épargne 2026 — 股票")["name"] == "Épargne 2026 — 股票"
