"""The ledger check's replay (positions/workflows/ledger.py) where bench/mutation.py found
changes no test noticed, on a history of events built by hand: fills, an ex-date with a fill at
its first instant, a paid and an unpaid dividend, a split paying cash in lieu. Honest rows give
no difference; each tampered row gives exactly the difference ``manage.py verify_ledger``
prints. No database: the events and rows are plain objects.

Trading time zone America/New_York (the default): 10 and 18 March 2026 start at 04:00 UTC."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from positions.workflows.ledger import Difference, _Book, _compare, _step


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC)


PID = "pos_1"


def ev(n, type, when, inputs=None, outputs=None, order_id=None):
    return SimpleNamespace(pk=n, type=type, created_at=when, inputs=inputs or {},
                           outputs=outputs or {}, order_id=order_id, actor_user_id=7)


def history(**tamper):
    """Opening 10 shares, 1000 cash, no anchor.

    9 Mar 15:00  BUY 5 at 20, commission 0.5   -> 15 shares, 1000 - 100 - 0.5 = 899.5
    10 Mar 04:00 SELL 3 at 21 (the ex-date's first instant: not entitled) -> 12, 962.5
    10 Mar       ex-date of d1: 15 shares x 0.4 = 6 gross, 25 % withheld -> 4.5 receivable;
                 the anchor 21 is a price of the ex-date: kept
    15 Mar       split 11:10, whole shares: 12 x 1.1 = 13.2 -> 13, 0.2 in lieu at 21 / 1.1:
                 4.2 / 1.1 = 3.8181818... -> 3.818182; cash 966.318182; anchor 19.090909
    18 Mar       ex-date of d2: 13 shares (the split set them) x 0.1 = 1.3, nothing withheld;
                 anchor 18.990909
    20 Mar       d1 paid: cash 970.818182, receivable 1.3 (d2's)
    """
    fills = {"fil_1": (at(9, 15), "ord_1", "BUY", D("5"), D("20"), D("0.5")),
             "fil_2": (at(10, 4), "ord_2", "SELL", D("3"), D("21"), D("0"))}
    d1 = {"id": "div_1", "position_id": PID, "status": "paid", "ex_date": dt.date(2026, 3, 10),
          "dps": D("0.4"), "withholding_rate": D("0.25"), "entitlement_qty": D("15"),
          "gross_amount": D("6"), "net_amount": D("4.5")}
    d2 = {"id": "div_2", "position_id": PID, "status": "effective",
          "ex_date": dt.date(2026, 3, 18), "dps": D("0.1"), "withholding_rate": D("0"),
          "entitlement_qty": D("13"), "gross_amount": D("1.3"), "net_amount": D("1.3")}
    split = {"id": "spl_1", "position_id": PID, "status": "applied",
             "effective_date": dt.date(2026, 3, 15), "step": D("1"), "price_before": D("21"),
             "qty_after": D("13"), "cash_in_lieu": D("3.818182"), "applied_at": at(15, 14)}
    pos = {"id": PID, "opening_qty": D("10"), "opening_cash": D("1000"), "qty": D("13"),
           "cash": D("970.818182"), "dividend_receivable": D("1.3"),
           "anchor_price": D("18.990909"), "owner_id": 7}
    orders = {"ord_1": {"id": "ord_1", "position_id": PID, "qty": D("5"), "filled_qty": D("5"),
                        "avg_fill_price": D("20"), "commission_paid": D("0.5"),
                        "status": "filled", "fill events": 1},
              "ord_2": {"id": "ord_2", "position_id": PID, "qty": D("3"), "filled_qty": D("3"),
                        "avg_fill_price": D("21"), "commission_paid": D("0"),
                        "status": "filled", "fill events": 1}}
    events = [
        ev(1, "position_created", at(9, 14), {"qty": D("10"), "cash": D("1000")}),
        ev(2, "order_submitted", at(9, 15), {"side": "BUY", "qty": D("5")}, order_id="ord_1"),
        ev(3, "order_filled", at(9, 15), outputs={"fill_id": "fil_1"}, order_id="ord_1"),
        ev(4, "order_submitted", at(10, 4), {"side": "SELL", "qty": D("3")}, order_id="ord_2"),
        ev(5, "order_filled", at(10, 4), outputs={"fill_id": "fil_2"}, order_id="ord_2"),
        ev(6, "ex_div_effective", at(10, 14), {"dividend_id": "div_1"}),
        ev(7, "split_applied", at(15, 14), {"split_id": "spl_1", "ratio": "11:10",
                                            "step": D("1"), "price_before": D("21")}),
        ev(8, "ex_div_effective", at(18, 14), {"dividend_id": "div_2"}),
        ev(9, "dividend_cash_received", at(20, 14), {"dividend_id": "div_1"}),
    ]
    for key, value in tamper.items():
        target, _, name = key.partition("__")
        {"pos": pos, "d1": d1, "d2": d2, "split": split, "ord_1": orders["ord_1"]}[target][
            name] = value
    return SimpleNamespace(pos=pos, fills=fills, dividends=[d1, d2], splits=[split],
                           orders=orders, events=events)


def replay(h) -> list[Difference]:
    of_position = defaultdict(list)
    for row in (*h.dividends, *h.splits):
        of_position[row["position_id"]].append(row)
    rows = SimpleNamespace(fills=h.fills, dividends={d["id"]: d for d in h.dividends},
                           splits={s["id"]: s for s in h.splits}, of_position=of_position)
    out: list[Difference] = []
    book = _Book()
    for event in h.events:
        if not book.broken:
            _step(book, event, rows, out, PID)
    _compare(PID, book, h.pos, rows, h.orders, out)
    return out


def test_honest_rows_replay_without_a_difference():
    assert replay(history()) == []


@pytest.mark.parametrize(("tamper", "field", "stored", "expected"), [
    ({"pos__qty": D("14")}, "qty", D("14"), D("13")),
    ({"pos__cash": D("970.818181")}, "cash", D("970.818181"), D("970.818182")),
    ({"pos__dividend_receivable": D("0")}, "dividend_receivable", D("0"), D("1.3")),
    ({"pos__anchor_price": D("19.090909")}, "anchor_price", D("19.090909"), D("18.990909")),
    ({"pos__opening_cash": D("1001")}, "opening_cash", D("1001"), D("1000")),
    ({"pos__opening_qty": D("11")}, "opening_qty", D("11"), D("10")),
    ({"pos__owner_id": 8}, "owner_id", 8, 7),
    ({"d1__entitlement_qty": D("12")}, "dividend div_1 entitlement_qty", D("12"), D("15")),
    ({"d1__gross_amount": D("6.000001")}, "dividend div_1 gross_amount", D("6.000001"),
     D("6")),
    ({"d1__net_amount": D("6")}, "dividend div_1 net_amount", D("6"), D("4.5")),
    ({"d1__status": "effective"}, "dividend div_1 status", "effective", "paid"),
    ({"d2__entitlement_qty": D("12")}, "dividend div_2 entitlement_qty", D("12"), D("13")),
    ({"split__cash_in_lieu": D("4")}, "split spl_1 cash_in_lieu", D("4"), D("3.818182")),
    ({"split__qty_after": D("14")}, "split spl_1 qty_after", D("14"), D("13")),
    ({"ord_1__avg_fill_price": D("19")}, "order ord_1 avg_fill_price", D("19"), D("20")),
    ({"ord_1__status": "partially_filled"}, "order ord_1 status", "partially_filled",
     "filled"),
    ({"ord_1__filled_qty": D("4")}, "order ord_1 filled_qty", D("4"), D("5")),
])
def test_each_tampered_row_is_one_difference(tamper, field, stored, expected):
    assert replay(history(**tamper)) == [Difference(PID, field, stored, expected)]


def test_opening_values_come_from_the_event_not_the_columns():
    # both opening_cash and cash raised by 1,000,000: the event still says 1000
    h = history(pos__opening_cash=D("1001000"), pos__cash=D("1000970.818182"))
    assert replay(h) == [Difference(PID, "cash", D("1000970.818182"), D("970.818182")),
                         Difference(PID, "opening_cash", D("1001000"), D("1000"))][::-1]


def test_an_unpaid_dividend_stays_receivable():
    h = history(pos__cash=D("966.318182"), pos__dividend_receivable=D("5.8"))
    h.dividends[0]["status"] = "effective"
    h.events.pop()
    assert replay(h) == []


def test_a_fill_the_rules_refuse_is_the_only_difference_named():
    h = history()
    h.fills["fil_3"] = (at(11, 15), "ord_3", "SELL", D("100"), D("21"), D("0"))
    h.events.insert(6, ev(20, "order_submitted", at(11, 15), {"side": "SELL", "qty": D("100")},
                          order_id="ord_3"))
    h.events.insert(7, ev(21, "order_filled", at(11, 15), outputs={"fill_id": "fil_3"},
                          order_id="ord_3"))
    assert replay(h) == [Difference(
        PID, "fill fil_3", "recorded",
        "refused (insufficient_qty: Cannot sell 100 shares: only 12 are held.)")]


def test_a_late_split_s_correction_moves_the_paid_dividend_s_cash():
    # A 2:1 split effective 10 Mar applied on 21 Mar, after d1 was paid and d2 went ex: it
    # counts for both. d1: 15 x 2 = 30 shares -> 12 gross, 9 net, 4.5 more cash; d2: 13 x 2 =
    # 26 -> 2.6, 1.3 more receivable. Shares 13 x 2 = 26, anchor 18.990909 / 2 = 9.495454.
    h = history()
    h.splits.append({"id": "spl_2", "position_id": PID, "status": "applied",
                     "effective_date": dt.date(2026, 3, 10), "step": D("1"),
                     "price_before": None, "qty_after": D("26"), "cash_in_lieu": D("0"),
                     "applied_at": at(21, 14)})
    h.events += [ev(10, "split_applied", at(21, 14), {"split_id": "spl_2", "ratio": "2:1",
                                                      "step": D("1"), "price_before": None}),
                 ev(11, "dividend_entitlement_corrected", at(21, 14),
                    {"dividend_id": "div_1"}),
                 ev(12, "dividend_entitlement_corrected", at(21, 14),
                    {"dividend_id": "div_2"})]
    h.dividends[0].update(entitlement_qty=D("30"), gross_amount=D("12"), net_amount=D("9"))
    h.dividends[1].update(entitlement_qty=D("26"), gross_amount=D("2.6"), net_amount=D("2.6"))
    h.pos.update(qty=D("26"), cash=D("975.318182"), anchor_price=D("9.495454"),
                 dividend_receivable=D("2.6"))
    assert replay(h) == []
