"""GET /v1/positions/{id}/performance (docs/returns.md): the returns read back from the log,
at the prices known at each instant; the daily series at each session's close."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from conftest import assert_error
from orders.services import order_fill, order_submit_for
from positions.services import prices_record

pytestmark = pytest.mark.django_db
D = Decimal
# Monday 5 January 2026, 10:00 in New York: inside a session
T0 = dt.datetime(2026, 1, 5, 15, 0, tzinfo=dt.UTC)


def at(days: float, hours: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=days, hours=hours)


def price(clock_at, moment, value):
    clock_at(moment)
    prices_record(rows=[{"ticker": "ZIM", "price": D(value), "ts": moment}])


def url(position, **query):
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/v1/positions/{position.id}/performance" + (f"?{q}" if q else "")


def test_a_year_without_flows_both_returns_are_the_price_change(api, clock_at, make_position):
    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    position = make_position(qty="10", cash="0")
    price(clock_at, at(365), "110")
    clock_at(at(365, 1))
    body = api.get(url(position, until=at(365).isoformat().replace("+00:00", "Z"))).json()
    assert body["position_id"] == position.id
    assert D(str(body["start_value"])) == 1000 and D(str(body["end_value"])) == 1100
    assert D(str(body["net_flows"])) == 0
    assert D(str(body["time_weighted_return"])) == D("0.1")
    assert D(str(body["money_weighted_return"])) == D("0.1")
    assert body["reasons"] == {} and body["note"] is None
    # one row per session from the opening to until: the XNYS sessions of the year
    sessions = [d["session"] for d in body["daily"]]
    assert sessions[0] == "2026-01-05" and len(sessions) == len(set(sessions))
    assert 249 <= len(sessions) <= 252
    assert D(str(body["daily"][0]["value"])) == 1000
    # until falls inside the session of 5 January 2027: the series ends at the close before,
    # still at 100; the end value is at until, at the new price
    assert sessions[-1] == "2027-01-02" or sessions[-1] == "2027-01-04"
    assert D(str(body["daily"][-1]["value"])) == 1000


def bought(user, position, *, qty: str, price: str) -> None:
    """A BUY of ``qty`` submitted and filled whole at ``price``, without commission."""
    order, _ = order_submit_for(owner=user, position_id=position.id, side="BUY", qty=D(qty),
                                idempotency_key=None)
    order_fill(owner=user, order_id=order.id, price=D(price), filled_qty=D(qty),
               commission=D("0"))


def test_a_fill_is_not_a_flow(user, api, clock_at, make_position):
    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    position = make_position(qty="10", cash="1000")
    clock_at(at(1))
    bought(user, position, qty="5", price="100")
    price(clock_at, at(2), "120")
    clock_at(at(3))
    body = api.get(url(position)).json()
    # 15 shares at 120 + 500 cash = 2300 from 2000: 15 %, no flow
    assert D(str(body["end_value"])) == 2300 and D(str(body["net_flows"])) == 0
    assert D(str(body["time_weighted_return"])) == D("0.15")
    # the daily series values the session of the fill at the fill's price, the next at 120
    values = {d["session"]: D(str(d["value"])) for d in body["daily"]}
    assert values["2026-01-06"] == 2000 and values["2026-01-07"] == 2300


def test_since_inside_the_span_starts_from_the_value_then(api, clock_at, make_position):
    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    position = make_position(qty="10", cash="0")
    price(clock_at, at(10), "125")
    price(clock_at, at(20), "150")
    clock_at(at(21))
    body = api.get(url(position, since="2026-01-16")).json()  # after the day-10 price
    assert D(str(body["start_value"])) == 1250 and D(str(body["end_value"])) == 1500
    assert D(str(body["time_weighted_return"])) == D("0.2")
    assert body["daily"][0]["session"] == "2026-01-16"


def test_an_opening_inside_the_span_is_a_flow(api, clock_at, make_position):
    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    position = make_position(qty="10", cash="0")
    price(clock_at, at(5), "110")
    clock_at(at(6))
    body = api.get(url(position, since="2026-01-01")).json()
    assert D(str(body["start_value"])) == 0 and D(str(body["net_flows"])) == 1000
    assert D(str(body["time_weighted_return"])) == D("0.1")


def test_bad_dates_and_spans_are_400_with_codes(api, clock_at, make_position):
    clock_at(at(0))
    position = make_position(qty="0", cash="100")
    clock_at(at(3))
    body = assert_error(api.get(url(position, since="yesterday")), 400, "invalid_query")
    assert "since" in body["fields"]
    assert_error(api.get(url(position, until="2026-01-05T10:00:00")), 400, "invalid_query")
    assert_error(api.get(url(position, since="")), 400, "invalid_query")
    body = assert_error(api.get(url(position, since="2026-01-07", until="2026-01-06")), 400,
                        "invalid_span")
    assert "since" in body["fields"]


def test_another_owners_position_is_404(other_api, clock_at, make_position):
    clock_at(at(0))
    position = make_position(qty="0", cash="100")
    clock_at(at(1))
    assert_error(other_api.get(url(position)), 404, "position_not_found")


def test_shares_without_a_known_price_are_409(api, clock_at, make_position):
    clock_at(at(0))
    position = make_position(qty="10", cash="0", ticker="NOPX")
    clock_at(at(1))
    assert_error(api.get(url(position)), 409, "price_unknown")


def test_cash_only_position_earns_nothing_and_says_so(api, clock_at, make_position):
    clock_at(at(0))
    position = make_position(qty="0", cash="500")
    clock_at(at(30))
    body = api.get(url(position)).json()
    assert D(str(body["time_weighted_return"])) == 0
    assert D(str(body["money_weighted_return"])) == 0


def test_the_admin_shows_the_figures_with_an_xlsx_and_a_picture(admin_client, clock_at,
                                                                make_position):
    import io
    import re

    from django.contrib.admin.utils import quote
    from django.urls import reverse
    from openpyxl import load_workbook

    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    position = make_position(qty="10", cash="0")
    price(clock_at, at(7), "104")
    clock_at(at(8))
    html = admin_client.get(reverse("admin:positions_position_change",
                                    args=[quote(position.pk)])).content.decode()
    assert "<th>Time-weighted return</th><td>4 %</td>" in html
    xlsx = re.search(r"<a href='([^']+performance\.xlsx)'", html).group(1)
    png = re.search(r"<img src='([^']+performance\.png)'", html).group(1)
    book = admin_client.get(xlsx)
    assert book.status_code == 200 and book["Content-Type"].endswith("spreadsheetml.sheet")
    wb = load_workbook(io.BytesIO(book.content))
    summary = {row[0]: row[1] for row in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Time-weighted return"] == pytest.approx(0.04)
    assert summary["End value"] == pytest.approx(1040)
    daily = list(wb["Daily"].iter_rows(min_row=2, values_only=True))
    assert len(daily) == 6  # the sessions of 5-9 and 12 January closed by the 13th
    assert daily[-1][1] == pytest.approx(1040) and daily[-1][3] == pytest.approx(0.04)
    picture = admin_client.get(png)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


# --- With deposits, withdrawals and transfers (docs/returns.md) -------------------------------


def post(api, path, body, key):
    response = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    return response.json()


def figures(body) -> dict:
    return {k: None if body[k] is None else D(str(body[k])) for k in (
        "start_value", "end_value", "net_flows", "time_weighted_return",
        "money_weighted_return")}


def test_the_worked_example_through_the_api(api, clock_at, make_position):
    """docs/returns.md#a-worked-example with real prices and cash movements: 10 shares at 100;
    day 30 at 110, 500 deposited; day 60 at 102 (1520 with the cash), 200 withdrawn; day 90
    at 108.6 (1386)."""
    price(clock_at, at(0), "100")
    position = make_position(qty="10", cash="0")
    price(clock_at, at(30), "110")
    post(api, f"/v1/positions/{position.id}/cash", {"amount": 500}, "d1")
    price(clock_at, at(60), "102")
    post(api, f"/v1/positions/{position.id}/cash", {"amount": -200}, "w1")
    price(clock_at, at(90), "108.6")
    clock_at(at(91))
    body = api.get(url(position, until=at(90).isoformat().replace("+00:00", "Z"))).json()
    assert figures(body) == {"start_value": 1000, "end_value": 1386, "net_flows": 300,
                             "time_weighted_return": D("0.09725"),
                             "money_weighted_return": D("0.3058538432")}
    # the daily series: a deposit lifts the value, not the return
    day30 = next(d for d in body["daily"] if d["session"] == "2026-02-04")
    assert D(str(day30["flows"])) == 500 and D(str(day30["value"])) == 1600
    assert D(str(day30["time_weighted_return"])) == D("0.1")


def portfolio_story(api, clock_at):
    """Portfolio P opens with 1000 unallocated; position A (10 ZIM at 100) opens in it. Day
    10: 500 moves from P's cash to A (inside P: a flow of A only). Day 20, ZIM at 120: 300
    deposited on A (a flow of both). Day 30, ZIM at 90: A leaves P (P's value goes out with
    it). Day 40: the end."""
    price(clock_at, at(0), "100")
    pid = post(api, "/v1/portfolios", {"name": "Core", "cash": 1000}, "p")["id"]
    a = post(api, "/v1/positions", {"ticker": "ZIM", "qty": 10, "cash": 0, "portfolio": pid,
                                    "target_weight": 0.5}, "a")["id"]
    clock_at(at(10))
    post(api, f"/v1/portfolios/{pid}/transfers", {"from": "portfolio", "to": a, "amount": 500},
         "t")
    price(clock_at, at(20), "120")
    post(api, f"/v1/positions/{a}/cash", {"amount": 300}, "d")
    price(clock_at, at(30), "90")
    left = api.patch(f"/v1/positions/{a}", {"portfolio": None}, format="json")
    assert left.status_code == 200, left.content
    clock_at(at(40))
    return pid, a


def test_a_portfolios_flows_are_money_in_and_out_not_transfers(api, clock_at):
    pid, a = portfolio_story(api, clock_at)
    body = api.get(f"/v1/portfolios/{pid}/performance").json()
    assert body["portfolio_id"] == pid
    # 2000 at the start; 2200 before the deposit (500 + 1700); 2200 before A leaves
    # (500 + 900 + 800); 500 after: 1.1 × 2200/2500 × 500/500 − 1
    assert figures(body)["start_value"] == 2000 and figures(body)["end_value"] == 500
    assert figures(body)["net_flows"] == 300 - 1700
    assert figures(body)["time_weighted_return"] == D("-0.032")
    # the same money in and out of one account: the position's own view
    mine = api.get(f"/v1/positions/{a}/performance").json()
    assert figures(mine)["net_flows"] == 500 + 300
    assert figures(mine)["end_value"] == 1700
    expect = (D(1700) / D(1500)) * (D(1700) / D(2000)) - 1
    assert figures(mine)["time_weighted_return"] == expect.quantize(D("1e-10"))


def test_another_owners_portfolio_performance_is_404(api, other_api, clock_at):
    price(clock_at, at(0), "100")
    pid = post(api, "/v1/portfolios", {"name": "Core", "cash": 1000}, "p")["id"]
    clock_at(at(1))
    assert_error(other_api.get(f"/v1/portfolios/{pid}/performance"), 404,
                 "portfolio_not_found")
    assert_error(api.get(f"/v1/portfolios/{pid}/performance?until=nope"), 400,
                 "invalid_query")
    body = api.get(f"/v1/portfolios/{pid}/performance").json()
    assert figures(body)["time_weighted_return"] == 0


def test_a_split_and_a_dividend_are_not_flows_and_keep_the_value_whole(user, api, clock_at,
                                                                       make_position):
    from positions.dividends import dividend_announce
    from positions.workflows.corporate_actions import dividends_process, split_announce

    price(clock_at, at(0), "100")
    position = make_position(qty="10", cash="0", withholding_tax_rate="0")
    dividend_announce(owner=user, position_id=position.id, ex_date=dt.date(2026, 1, 7),
                      pay_date=dt.date(2026, 1, 9), dps=D("1"))
    clock_at(at(2))  # Wednesday 7 January: ex-date, the price drops by the dividend
    dividends_process()
    price(clock_at, at(2, 1), "99")
    clock_at(at(3))  # Thursday 8 January: a 2-for-1 split, no price since
    split_announce(owner=user, position_id=position.id, ratio="2:1",
                   effective_date=dt.date(2026, 1, 8))
    clock_at(at(4))  # Friday: the dividend is paid
    dividends_process()
    price(clock_at, at(4, 1), "55")
    clock_at(at(5))
    body = api.get(url(position)).json()
    values = {d["session"]: D(str(d["value"])) for d in body["daily"]}
    # 10 × 99 + 10 receivable; 20 × 99/2 + 10; 20 × 55 + 10 cash
    assert values == {"2026-01-05": 1000, "2026-01-06": 1000, "2026-01-07": 1000,
                      "2026-01-08": 1000, "2026-01-09": 1110}
    assert figures(body)["net_flows"] == 0
    assert figures(body)["time_weighted_return"] == D("0.11")


@pytest.mark.parametrize("query", ["since=0001-01-01", "since=0001-01-01T00:00:00%2B14:00",
                                   "until=9999-12-31", "until=9999-12-31T23:59:59-14:00",
                                   "since=1900-01-01&until=2026-01-06"])
def test_extreme_dates_answer_without_a_fault(api, clock_at, make_position, query):
    price(clock_at, at(0), "100")
    position = make_position(qty="10", cash="0")
    price(clock_at, at(3), "110")
    clock_at(at(4))
    response = api.get(f"/v1/positions/{position.id}/performance?{query}")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json()["detail"] == "invalid_query"
    else:
        body = response.json()
        assert len(body["daily"]) <= 5  # the series starts at the opening, not at since


def test_the_portfolio_admin_page_shows_its_returns(api, admin_client, clock_at):
    import re

    from django.contrib.admin.utils import quote
    from django.urls import reverse

    pid, _a = portfolio_story(api, clock_at)
    html = admin_client.get(reverse("admin:positions_portfolio_change",
                                    args=[quote(pid)])).content.decode()
    assert "<th>Time-weighted return</th><td>-3.2 %</td>" in html
    assert "<th>Net flows</th><td>-1400.00</td>" in html
    xlsx = re.search(r"<a href='([^']+performance\.xlsx)'", html).group(1)
    png = re.search(r"<img src='([^']+performance\.png)'", html).group(1)
    assert admin_client.get(xlsx).content.startswith(b"PK")  # a zip: the workbook
    assert admin_client.get(png).content.startswith(b"\x89PNG")


def test_the_api_serves_the_workbook_and_the_picture(api, other_api, clock_at):
    import io

    from openpyxl import load_workbook

    pid, a = portfolio_story(api, clock_at)
    for path in (f"/v1/portfolios/{pid}/performance", f"/v1/positions/{a}/performance"):
        book = api.get(f"{path}.xlsx?since=2026-01-05")
        assert book.status_code == 200, book.content
        assert book["Content-Disposition"].endswith('-performance.xlsx"')
        summary = dict(load_workbook(io.BytesIO(book.content))["Summary"].iter_rows(
            min_row=2, values_only=True))
        figures_now = api.get(f"{path}?since=2026-01-05").json()
        assert summary["Net flows"] == pytest.approx(float(figures_now["net_flows"]))
        picture = api.get(f"{path}.png")
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
        assert other_api.get(f"{path}.png").status_code == 404
        assert_error(api.get(f"{path}.xlsx?until=soon"), 400, "invalid_query")


def test_a_position_joining_later_brings_its_value_in(api, clock_at):
    price(clock_at, at(0), "100")
    pid = post(api, "/v1/portfolios", {"name": "Core", "cash": 1000}, "p")["id"]
    b = post(api, "/v1/positions", {"ticker": "ZIM", "qty": 5, "cash": 0}, "b")["id"]
    price(clock_at, at(5), "110")
    joined = api.patch(f"/v1/positions/{b}", {"portfolio": pid}, format="json")
    assert joined.status_code == 200, joined.content
    price(clock_at, at(10), "121")
    clock_at(at(11))
    body = figures(api.get(f"/v1/portfolios/{pid}/performance").json())
    # 1000 unallocated earns nothing; B comes in at 5 × 110 = 550 and ends at 605
    assert body["net_flows"] == 550 and body["end_value"] == 1605
    assert body["time_weighted_return"] == (D(1605) / D(1550) - 1).quantize(D("1e-10"))


def test_the_admin_pictures_need_the_permission_to_view(api, clock_at, django_user_model):
    from django.contrib.admin.utils import quote
    from django.test import Client
    from django.urls import reverse

    pid, a = portfolio_story(api, clock_at)
    staff = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    for name, pk in (("positions_portfolio_allocation", pid),
                     ("positions_portfolio_performance_png", pid),
                     ("positions_portfolio_performance_xlsx", pid),
                     ("positions_position_performance_png", a),
                     ("positions_position_performance_xlsx", a)):
        assert client.get(reverse(f"admin:{name}", args=[quote(pk)])).status_code == 403, name
    client.force_login(django_user_model.objects.create_superuser(username="root",
                                                                  password="pw"))
    missing = reverse("admin:positions_portfolio_performance_png", args=["pfl_nope"])
    assert client.get(missing).status_code == 404


@pytest.mark.parametrize("until", ["9999-12-31", "9999-12-31T23:59:59-14:00"])
def test_an_until_past_the_last_day_is_now(api, clock_at, make_position, until):
    # issue 22 (F4): the end of 9999-12-31 overflowed into 400 invalid_query; a later until
    # counts as now (docs/returns.md#the-span)
    price(clock_at, at(0), "100")
    position = make_position(qty="10", cash="0")
    clock_at(at(4))
    response = api.get(url(position, until=until))
    assert response.status_code == 200, response.content
    assert response.json()["until"].replace("Z", "+00:00") == at(4).isoformat()


def many_members(user, clock_at, n: int, tickers: int = 3, prefix: str = "Q") -> str:
    """A portfolio with ``n`` positions over ``tickers`` tickers, each joining at its opening
    and receiving a deposit on day 5 (a flow of the portfolio), with a price per ticker each
    day for ten days; the clock at day 10. Returns the portfolio's id."""
    from positions.portfolios.services import (
        portfolio_create,
        position_cash_move,
        position_open,
    )

    names = [f"{prefix}{chr(65 + k)}" for k in range(tickers)]
    clock_at(at(0))
    prices_record(rows=[{"ticker": t, "price": D(100), "ts": at(0)} for t in names])
    pid = portfolio_create(owner=user, name="Many", cash=D(1000)).id
    ids = [position_open(owner=user, portfolio=pid, ticker=names[k % tickers], qty=D(10),
                         cash=D(100)).id for k in range(n)]
    for d in range(1, 10):
        clock_at(at(d))
        prices_record(rows=[{"ticker": t, "price": D(100 + d), "ts": at(d)} for t in names])
        if d == 5:
            for position_id in ids:
                position_cash_move(owner=user, position_id=position_id, amount=D(10))
    clock_at(at(10))
    return pid


def test_a_portfolios_performance_reads_the_same_statements_for_any_number_of_positions(
        api, user, clock_at):
    # issue 22 (F1): three statements per position made 1600 positions 4803 statements; the
    # history is now one read of the events and one of the prices for all the members
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts, bodies = [], []
    for n in (2, 8):
        pid = many_members(user, clock_at, n, prefix="QR"[n > 2])
        with CaptureQueriesContext(connection) as ctx:
            response = api.get(f"/v1/portfolios/{pid}/performance")
        assert response.status_code == 200, response.content
        counts.append(len(ctx.captured_queries))
        bodies.append(response.json())
    assert counts[0] == counts[1], counts
    # the values are the members' at the day's price: 1000 + n × (10 × P + 100), + n × 10 after
    # the deposits of day 5
    for n, body in zip((2, 8), bodies, strict=True):
        assert figures(body)["start_value"] == 1000 + n * 1100
        assert figures(body)["net_flows"] == n * 10
        assert figures(body)["end_value"] == 1000 + n * (10 * 109 + 110)


def test_a_portfolios_running_total_agrees_with_its_members_own_values(api, user, clock_at,
                                                                       make_position):
    # issue 22 (F1): the running total values a member at its own fill until the ticker's
    # next price (then at that price), as the member's own performance does, session by session
    from positions.portfolios.services import portfolio_create, position_membership_set

    price(clock_at, at(0, -1), "100")
    clock_at(at(0))
    pid = portfolio_create(owner=user, name="Two", cash=D(300)).id
    a = make_position(qty="10", cash="1000")
    b = make_position(qty="4", cash="50")
    for p in (a, b):
        position_membership_set(owner=user, position_id=p.id, changes={"portfolio": pid})
    clock_at(at(1))
    bought(user, a, qty="5", price="104")
    price(clock_at, at(2), "120")
    clock_at(at(3, 2))
    whole = api.get(f"/v1/portfolios/{pid}/performance?since=2026-01-05").json()
    parts = [api.get(url(p, since="2026-01-05")).json() for p in (a, b)]
    daily = {row["session"]: D(str(row["value"])) for row in whole["daily"]}
    for session, value in daily.items():
        own = [next(D(str(r["value"])) for r in part["daily"] if r["session"] == session)
               for part in parts]
        assert value == 300 + sum(own), session
    assert daily["2026-01-06"] == 300 + (15 * 104 + 480) + (4 * 100 + 50)  # at a's own fill
    assert daily["2026-01-07"] == 300 + (15 * 120 + 480) + (4 * 120 + 50)


def test_a_picture_of_a_span_without_a_closed_session_is_refused(api, admin_client, clock_at,
                                                                make_position):
    # issue 22 (F8): it drew empty axes dated 1970; now 409 no_session_closed, and the figures
    # still answer for that span
    from django.contrib.admin.utils import quote
    from django.urls import reverse

    price(clock_at, at(0), "100")
    position = make_position(qty="10", cash="0")
    clock_at(at(0, 2))  # the same session, still open
    body = assert_error(api.get(f"/v1/positions/{position.id}/performance.png"), 409,
                        "no_session_closed")
    assert "session" in body["message"]
    assert api.get(url(position)).status_code == 200
    page = reverse("admin:positions_position_change", args=[quote(position.pk)])
    refused = admin_client.get(page.replace("change/", "performance.png"))
    assert refused.status_code == 409 and b"No exchange session closed" in refused.content
    # the change page says so in place of the picture, not behind an image that cannot load
    shown = admin_client.get(page).content.decode()
    assert "No exchange session closed" in shown and "performance.png" not in shown
    assert "performance.xlsx" in shown  # the workbook answers for any span
    clock_at(at(1))  # one close later: a picture
    assert api.get(f"/v1/positions/{position.id}/performance.png").content.startswith(
        b"\x89PNG")
    shown = admin_client.get(page).content.decode()
    assert "performance.png" in shown and "No exchange session closed" not in shown
