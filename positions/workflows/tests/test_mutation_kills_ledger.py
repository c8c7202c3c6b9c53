"""The ledger check's replay (positions/ledger.py) where bench/mutation.py found changes no test
noticed, on a history built by hand: fills, an ex-date with a fill at its first instant, a
paid and an unpaid dividend, a split paying cash in lieu. Honest rows give no difference;
each tampered row gives exactly the difference ``manage.py verify_ledger`` prints.

Trading time zone America/New_York (the default): 10 and 18 March 2026 start at 04:00 UTC."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from positions.workflows.ledger import Difference, _Fill, _replay


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


PID = "pos_1"


def history(**tamper):
    """Opening 10 shares, 1000 cash.

    9 Mar 15:00  BUY 5 at 20, commission 0.5   -> 15 shares, 1000 - 100 - 0.5 = 899.5
    10 Mar 04:00 SELL 3 at 21 (the ex-date's first instant: not entitled) -> 12, 962.5
    10 Mar       ex-date of d1: 15 shares x 0.4 = 6 gross, 25 % withheld -> 4.5 receivable
    15 Mar       split 1.1, whole shares: 12 x 1.1 = 13.2 -> 13, 0.2 in lieu at 21 / 1.1:
                 4.2 / 1.1 = 3.8181818... -> 3.818182; cash 966.318182
    18 Mar       ex-date of d2: 13 shares (the split set them) x 0.1 = 1.3, nothing withheld
    20 Mar       d1 paid: cash 970.818182, receivable 1.3 (d2's)
    """
    fills = [_Fill(at(9, 15), "fil_1", "BUY", D("5"), D("20"), D("0.5")),
             _Fill(at(10, 4), "fil_2", "SELL", D("3"), D("21"), D("0"))]
    d1 = {"id": "div_1", "status": "paid", "ex_date": dt.date(2026, 3, 10), "dps": D("0.4"),
          "withholding_rate": D("0.25"), "entitlement_qty": D("15"), "gross_amount": D("6"),
          "net_amount": D("4.5"), "effective_at": at(10, 14), "paid_at": at(20, 14)}
    d2 = {"id": "div_2", "status": "effective", "ex_date": dt.date(2026, 3, 18),
          "dps": D("0.1"), "withholding_rate": D("0"), "entitlement_qty": D("13"),
          "gross_amount": D("1.3"), "net_amount": D("1.3"), "effective_at": at(18, 14),
          "paid_at": None}
    split = {"id": "spl_1", "ratio": D("1.1"), "step": D("1"), "price_before": D("21"),
             "qty_after": D("13"), "cash_in_lieu": D("3.818182"), "applied_at": at(15, 14)}
    pos = {"id": PID, "opening_qty": D("10"), "opening_cash": D("1000"), "qty": D("13"),
           "cash": D("970.818182"), "dividend_receivable": D("1.3")}
    for key, value in tamper.items():
        target, _, name = key.partition("__")
        {"pos": pos, "d1": d1, "d2": d2, "split": split}[target][name] = value
    return pos, fills, [d1, d2], [split]


def test_honest_rows_replay_without_a_difference():
    assert _replay(*history()) == []


@pytest.mark.parametrize(("tamper", "field", "stored", "expected"), [
    ({"pos__qty": D("14")}, "qty", D("14"), D("13")),
    ({"pos__cash": D("970.818181")}, "cash", D("970.818181"), D("970.818182")),
    ({"pos__dividend_receivable": D("0")}, "dividend_receivable", D("0"), D("1.3")),
    ({"d1__entitlement_qty": D("12")}, "dividend div_1 entitlement_qty", D("12"), D("15")),
    ({"d1__gross_amount": D("6.000001")}, "dividend div_1 gross_amount", D("6.000001"),
     D("6")),
    ({"d1__net_amount": D("6")}, "dividend div_1 net_amount", D("6"), D("4.5")),
    ({"d2__entitlement_qty": D("12")}, "dividend div_2 entitlement_qty", D("12"), D("13")),
    ({"split__cash_in_lieu": D("4")}, "split spl_1 cash_in_lieu", D("4"), D("3.818182")),
])
def test_each_tampered_row_is_one_difference(tamper, field, stored, expected):
    assert _replay(*history(**tamper)) == [Difference(PID, field, stored, expected)]


def test_a_tampered_split_is_named_and_later_ex_dates_count_the_shares_it_set():
    # d2's entitlement follows the split as it was applied (14 shares): 1.4 gross and net
    assert _replay(*history(split__qty_after=D("14"))) == [
        Difference(PID, "split spl_1 qty_after", D("14"), D("13")),
        Difference(PID, "dividend div_2 entitlement_qty", D("13"), D("14")),
        Difference(PID, "dividend div_2 gross_amount", D("1.3"), D("1.4")),
        Difference(PID, "dividend div_2 net_amount", D("1.3"), D("1.4")),
        Difference(PID, "dividend_receivable", D("1.3"), D("1.4"))]


def test_the_replay_uses_the_paid_net_and_the_opening_balances():
    # opening cash 1 higher than the rows were built from: only the cash disagrees, by 1
    assert _replay(*history(pos__opening_cash=D("1001"))) == [
        Difference(PID, "cash", D("970.818182"), D("971.818182"))]
    # opening shares 1 higher: 16 entitled to d1 (6.4 gross, 4.8 net), 12 + 1 = 13 x 1.1 =
    # 14.3 -> 14 after the split with 0.3 x 21 / 1.1 = 5.727273 in lieu; d2 counts the 13 the
    # split was applied with (its rows): cash 966.318182 + 0.3 + 1.909091 = 973.027273
    assert _replay(*history(pos__opening_qty=D("11"))) == [
        Difference(PID, "dividend div_1 entitlement_qty", D("15"), D("16")),
        Difference(PID, "dividend div_1 gross_amount", D("6"), D("6.4")),
        Difference(PID, "dividend div_1 net_amount", D("4.5"), D("4.8")),
        Difference(PID, "split spl_1 qty_after", D("13"), D("14")),
        Difference(PID, "split spl_1 cash_in_lieu", D("3.818182"), D("5.727273")),
        Difference(PID, "qty", D("13"), D("14")),
        Difference(PID, "cash", D("970.818182"), D("973.027273"))]


def test_an_unpaid_dividend_stays_receivable():
    pos, fills, (d1, d2), splits = history(pos__cash=D("966.318182"),
                                           pos__dividend_receivable=D("5.8"))
    d1["status"], d1["paid_at"] = "effective", None
    assert _replay(pos, fills, [d1, d2], splits) == []


def test_a_fill_the_rules_refuse_is_the_only_difference_named():
    pos, fills, dividends, splits = history()
    fills.append(_Fill(at(11, 15), "fil_3", "SELL", D("100"), D("21"), D("0")))
    assert _replay(pos, fills, dividends, splits) == [Difference(
        PID, "fill fil_3", "recorded",
        "refused (insufficient_qty: Cannot sell 100 shares: only 12 are held.)")]


def test_things_at_the_same_instant_replay_fill_then_ex_date_then_pay_date_then_split():
    # on 25 Mar 14:00 a buy of 1 at 10 (13 + 1 = 14 shares, cash 960.818182) and, at the
    # same instant, a 2-for-1 split (28 shares); d3 goes ex on 26 Mar on 28 x 0.5 = 14,
    # effective and paid at the same instant: cash 974.818182, receivable still d2's 1.3
    pos, fills, dividends, splits = history()
    fills.append(_Fill(at(25, 14), "fil_9", "BUY", D("1"), D("10"), D("0")))
    splits.append({"id": "spl_2", "ratio": D("2"), "step": D("1"), "price_before": None,
                   "qty_after": D("28"), "cash_in_lieu": D("0"), "applied_at": at(25, 14)})
    dividends.append({"id": "div_3", "status": "paid", "ex_date": dt.date(2026, 3, 26),
                      "dps": D("0.5"), "withholding_rate": D("0"),
                      "entitlement_qty": D("28"), "gross_amount": D("14"),
                      "net_amount": D("14"), "effective_at": at(26, 14),
                      "paid_at": at(26, 14)})
    pos.update(qty=D("28"), cash=D("974.818182"))
    assert _replay(pos, fills, dividends, splits) == []
