"""The money arithmetic of the rules where bench/mutation.py found changes no test noticed:
the float path of the default commission (the backtest and the sweeps run on floats), the
slipped fill price, the fill's rounding, boundaries and refusal sentences.

Every expected number is worked out by hand in the comments from the formulas of
docs/strategy.md#evaluation, #fills and #dividends."""

from __future__ import annotations

from decimal import Decimal

import pytest

from positions.strategy.rules import (
    BUY,
    SELL,
    Config,
    RuleError,
    apply_fill,
    cash_after_buy,
    default_commission,
    dividend_amounts,
    slipped_price,
)

D = Decimal


# The default commission c*q*P (docs/strategy.md#fills) -----------------------------------------


def test_the_float_commission_is_rate_times_quantity_times_price_to_six_places():
    # 0.0001 * 1 * 1234.5678 = 0.12345678 -> 0.123457 (6 places, not 7: 0.1234568)
    k = default_commission(0.0001, 1.0, 1234.5678)
    assert type(k) is float and k == 0.123457
    # 0.0002 * 2.5 * 40.0 = 0.02
    assert default_commission(0.0002, 2.5, 40.0) == 0.02


@pytest.mark.parametrize(("qty", "price"), [(2.5, D(40)), (D("2.5"), 40.0)])
def test_one_float_among_quantity_and_price_takes_the_float_path(qty, price):
    # 0.0002 * 2.5 * 40 = 0.02, as a float (a Decimal times a float would raise)
    k = default_commission(D("0.0002"), qty, price)
    assert type(k) is float and k == 0.02


def test_the_commission_rate_comes_from_the_config():
    # c = 0.003: 0.003 * 10 * 12.5 = 0.375
    assert default_commission(Config(commission_rate=D("0.003")), 10.0, 12.5) == 0.375
    assert default_commission(Config(commission_rate=D("0.003")), D(10), D("12.5")) == D(
        "0.375000")


def test_the_decimal_commission_rounds_half_even_to_six_places():
    # 0.0001 * 1 * 0.125 = 0.0000125 -> 0.000012 (half-even), 0.0001 * 3 * 0.125 = 0.0000375
    # -> 0.000038
    assert default_commission(D("0.0001"), D(1), D("0.125")) == D("0.000012")
    assert default_commission(D("0.0001"), D(3), D("0.125")) == D("0.000038")


# The cash a buy leaves --------------------------------------------------------------------


def test_cash_after_buy_subtracts_the_cost_and_the_commission_to_six_places():
    # 1000 - 3 * 33.3333333 - 0.01 = 1000 - 99.9999999 - 0.01 = 899.9900001 -> 899.990000
    assert cash_after_buy(cash=D(1000), qty=D(3), price=D("33.3333333"),
                          commission=D("0.01")) == D("899.990000")
    assert cash_after_buy(cash=100.0, qty=2.0, price=49.5, commission=0.5) == 0.5


# The slipped fill price (docs/strategy.md#next-bar-fills) -----------------------------------


def test_slippage_raises_a_buy_price_and_lowers_a_sell_price_by_the_basis_points():
    # 25 bps of 100: 100 * 1.0025 = 100.25 for a buy, 100 * 0.9975 = 99.75 for a sell
    assert slipped_price(D(100), BUY, 25) == D("100.250000")
    assert slipped_price(D(100), SELL, 25) == D("99.750000")
    # 1 bp of 33.333333 = 33.3366663333 -> 33.336666 (6 places)
    assert slipped_price(D("33.333333"), BUY, D(1)) == D("33.336666")


def test_a_float_price_is_slipped_from_its_shortest_text():
    # 10.1 (not 10.0999999999999996447...) * 1.001 = 10.1101
    assert slipped_price(10.1, BUY, 10) == D("10.110100")


def test_no_slippage_leaves_the_price_as_a_decimal():
    assert slipped_price(10.1, SELL, 0) == D("10.1")
    assert type(slipped_price(10.1, SELL, 0)) is Decimal
    assert slipped_price(D("99.5"), BUY, D(0)) == D("99.5")


def test_slippage_rounds_half_even_to_six_places():
    # 2.5 bps of 1.0002 for a buy: 1.0002 * 1.00025 = 1.00045005 -> 1.000450 (half-even)
    assert slipped_price(D("1.0002"), BUY, D("2.5")) == D("1.000450")


# The fill's balance change (docs/strategy.md#fills) ------------------------------------------


def test_a_fill_quantity_finer_than_eight_places_is_cut_not_rounded():
    # 0.123456789 shares bought: 0.12345678 held (toward zero), cash 100 - 1.23456789 =
    # 98.76543211 -> 98.765432
    assert apply_fill(qty=D(0), cash=D(100), side=BUY, fill_qty=D("0.123456789"),
                      price=D(10), commission=D(0)) == (D("0.12345678"), D("98.765432"))


def test_a_float_fill_rounds_the_quantity_to_eight_places():
    qty, cash = apply_fill(qty=0.0, cash=100.0, side=BUY, fill_qty=0.123456789, price=10.0,
                           commission=0.0)
    assert qty == 0.12345679 and cash == 98.765432


def test_a_float_sell_moves_shares_and_cash():
    # S = 5 - 2 = 3; C = 10 + 2 * 7.25 - 0.5 = 24.0
    assert apply_fill(qty=5.0, cash=10.0, side=SELL, fill_qty=2.0, price=7.25,
                      commission=0.5) == (3.0, 24.0)


def test_a_sell_whose_commission_takes_exactly_the_proceeds_and_the_cash_leaves_zero():
    # 1 share at 1 = 1.00 proceeds, cash 0.50, commission 1.50: cash 0
    assert apply_fill(qty=D(1), cash=D("0.5"), side=SELL, fill_qty=D(1), price=D(1),
                      commission=D("1.5")) == (D("0E-8"), D("0.000000"))


def test_a_zero_commission_and_the_smallest_quantity_are_accepted():
    # 0.00000001 shares at 100: cost 0.000001
    assert apply_fill(qty=D(0), cash=D(1), side=BUY, fill_qty=D("0.00000001"), price=D(100),
                      commission=D(0)) == (D("0.00000001"), D("0.999999"))


@pytest.mark.parametrize(("kwargs", "code", "sentence"), [
    ({"side": "HOLD"}, "invalid_side", "side must be BUY or SELL, not 'HOLD'."),
    ({"fill_qty": D(0)}, "invalid_qty", "The fill quantity must be greater than zero, not 0."),
    ({"price": D(0)}, "invalid_price", "The fill price must be greater than zero, not 0."),
    ({"commission": D("-0.01")}, "invalid_commission",
     "The commission must be zero or more, not -0.01."),
    ({"fill_qty": D(10), "price": D(100), "commission": D("0.1")}, "insufficient_cash",
     "Buying 10 at 100.00 costs 1000.10 including commission, more than the cash 1000.00."),
    ({"side": SELL, "qty": D(10), "fill_qty": D("10.00000001")}, "insufficient_qty",
     "Cannot sell 10.00000001 shares: only 10 are held."),
    ({"side": SELL, "qty": D(1), "cash": D("0.5"), "fill_qty": D(1), "price": D(1),
      "commission": D(2)}, "insufficient_cash",
     "The commission 2.00 exceeds the proceeds 1.00 plus the cash 0.50."),
])
def test_a_refused_fill_says_why_with_a_code_and_a_sentence(kwargs, code, sentence):
    args = {"qty": D(0), "cash": D(1000), "side": BUY, "fill_qty": D(1), "price": D(10),
            "commission": D(0), **kwargs}
    with pytest.raises(RuleError) as exc:
        apply_fill(**args)
    assert (exc.value.code, exc.value.message) == (code, sentence)


# Dividends (docs/strategy.md#dividends) ----------------------------------------------------------


def test_the_net_dividend_is_taken_from_the_exact_gross():
    # 1 share x 0.0000025 = 0.0000025 gross -> 0.000002 (half-even); net at 40 %:
    # 0.0000025 * 0.6 = 0.0000015 -> 0.000002, not 0.000002 * 0.6 = 0.0000012 -> 0.000001
    assert dividend_amounts(dps=D("0.0000025"), shares=D(1), withholding_rate=D("0.4")) == (
        D("0.000002"), D("0.000002"))
    # a rate just below 1 is accepted: 100 x 1 = 100 gross, 0.01 net
    assert dividend_amounts(dps=D(1), shares=D(100), withholding_rate=D("0.9999")) == (
        D("100.000000"), D("0.010000"))
