"""Resting orders (docs/strategy.md#resting-orders): the rungs a position with
``order_type: limit`` keeps resting, their prices on the exchange tick, and the fill rule of a
resting limit on a later bar."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy import rules
from positions.strategy.ladder import (
    first_side,
    ladder,
    limit_fill_price,
    limit_fill_qty,
    limit_price,
    resting,
)
from positions.strategy.tests.test_rules_properties import cases

D = Decimal
PROPS = settings(max_examples=150, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def test_limit_prices_on_the_tick_away_from_the_other_side():
    assert limit_price(D("97.004999"), "BUY") == D("97.00")
    assert limit_price(D("97.000001"), "SELL") == D("97.01")
    assert limit_price(D("103"), "SELL") == D("103.00")
    assert limit_price(D("0.123456"), "BUY") == D("0.1234")
    assert limit_price(D("0.123456"), "SELL") == D("0.1235")
    # Across 1: a sell just under 1 rounds up onto 1.0000, a buy just over 1 down onto 1.00.
    assert limit_price(D("0.999999"), "SELL") == D("1.0000")
    assert limit_price(D("1.009"), "BUY") == D("1.00")
    assert limit_price(D("0.00005"), "BUY") == 0


def test_rungs_rest_at_the_triggers_on_the_tick():
    """Anchor 100, trigger 3 %: the rungs are 97 and 103, already on the tick; their sizes are
    what evaluate proposes there."""
    state = rules.State(D(50), D(5000), D(0), D(100))
    cfg = rules.Config()
    pair = resting(state, cfg)
    assert (pair.buy.side, pair.buy.limit, pair.buy.kind) == ("BUY", D("97.00"), "buy_trigger")
    assert (pair.sell.side, pair.sell.limit, pair.sell.kind) == ("SELL", D("103.00"),
                                                                  "sell_trigger")
    assert pair.sell.qty == rules.evaluate(state, cfg, D(103)).proposal.qty
    assert pair.buy.qty == rules.evaluate(state, cfg, D(97)).proposal.qty


def test_off_tick_rung_rounds_outward():
    """Anchor 100.37, trigger 3 %: the ladder says 97.3589 and 103.3811; the limits are 97.35
    and 103.39, never inside the triggers."""
    state = rules.State(D(50), D(5000), D(0), D("100.37"))
    pair = resting(state, rules.Config())
    lad = ladder(state, rules.Config())
    assert pair.buy.limit == D("97.35") and pair.buy.rung == lad.buy.price
    assert pair.sell.limit == D("103.39") and pair.sell.rung == lad.sell.price


def test_always_cap_and_guard_rest_nothing():
    cfg = rules.Config()
    # No shares: the weight is 0 at every price, the buy is "always"; no sell either.
    pair = resting(rules.State(D(0), D(10000), D(0), None), cfg)
    assert pair.buy is None and pair.sell is None
    state = rules.State(D(50), D(5000), D(0), D(100))
    capped = resting(state, cfg, orders_today=cfg.max_orders_per_day)
    assert capped.buy is None and capped.sell is None
    assert resting(state, cfg, guard_blocked=True) == resting(state, cfg, has_open_order=True)
    assert resting(state, cfg, guard_blocked=True).buy is None


def test_fill_rule_hand_checked():
    # A bar that touches the buy limit exactly fills at the limit.
    assert limit_fill_price("BUY", D(97), open=D(99), low=D(97), high=D(100)) == D(97)
    # A bar that gaps through it fills at its open.
    assert limit_fill_price("BUY", D(97), open=D(95), low=D(94), high=D(98)) == D(95)
    assert limit_fill_price("BUY", D(97), open=D(99), low=D("97.01"), high=D(100)) is None
    assert limit_fill_price("SELL", D(103), open=D(101), low=D(100), high=D(103)) == D(103)
    assert limit_fill_price("SELL", D(103), open=D(105), low=D(102), high=D(106)) == D(105)
    # Closes only: the close is the open, the low and the high.
    assert limit_fill_price("BUY", D(97), open=D("96.5")) == D("96.5")
    assert limit_fill_price("SELL", D(103), open=D("102.99")) is None


def test_which_side_a_wide_bar_reaches_first():
    # Opens through the sell: the sell. Range reaching both: the nearer extreme first.
    assert first_side(D(97), D(103), open=D(104), low=D(96), high=D(105)) == "SELL"
    assert first_side(D(97), D(103), open=D(96), low=D(95), high=D(104)) == "BUY"
    assert first_side(D(97), D(103), open=D(102), low=D(96), high=D(104)) == "SELL"
    assert first_side(D(97), D(103), open=D(98), low=D(96), high=D(104)) == "BUY"
    assert first_side(None, D(103), open=D(98), low=D(96), high=D(104)) == "SELL"
    assert first_side(D(97), None, open=D(98), low=D(98), high=D(104)) is None


def test_fill_quantity_trimmed_to_the_cash():
    cfg = rules.Config(commission_rate=D(0))
    assert limit_fill_qty(cfg, "BUY", D(10), held=D(0), cash=D(500), price=D(97)) \
        == D("5.15463917")
    assert limit_fill_qty(cfg, "SELL", D(10), held=D(4), cash=D(0), price=D(97)) == D(4)


@PROPS
@given(cases(), st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_resting_order_never_fills_outside_its_trigger(case, u, v):
    """Every resting rung's limit is on the tick, on its trigger's side of the ladder price, and
    evaluate at the limit proposes exactly the resting order; a fill on any bar is at or better
    than the limit."""
    state, cfg, price = case
    cfg = dataclasses.replace(cfg, max_orders_per_day=100)
    pair = resting(state, cfg)
    for r in (pair.buy, pair.sell):
        if r is None:
            continue
        tick = D("0.01") if r.limit >= 1 else D("0.0001")
        assert r.limit % tick == 0
        if r.side == "BUY":
            assert 0 < r.limit <= r.rung
        else:
            assert r.limit >= r.rung
        d = rules.evaluate(state, cfg, r.limit)
        assert d.proposal is not None and d.proposal.side == r.side and d.proposal.qty == r.qty
        # A bar around the limit: open and low/high drawn from a range around it.
        o = r.limit * (D("0.9") + D(u) / 50_000)
        ext = r.limit * (D("0.9") + D(v) / 50_000)
        lo, hi = min(o, ext), max(o, ext)
        px = limit_fill_price(r.side, r.limit, open=o, low=lo, high=hi)
        if px is not None:
            assert (px <= r.limit) if r.side == "BUY" else (px >= r.limit)
            assert lo <= px <= hi
