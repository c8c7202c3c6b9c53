"""``POST /v1/backtests`` with ``portfolio`` (docs/backtests.md#portfolio-backtests): the
command's portfolio backtest and JSON document over samples, posted series and tickers' history,
and its refusals with their codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from positions.marketdata.tests.recorded import check, expect
from positions.research.tests.test_history import alpaca  # noqa: F401 (the recorded feed)

URL = "/v1/backtests"
EXCHANGES = Path(__file__).parent / "exchanges"

pytestmark = pytest.mark.django_db


def post(api, body):
    return api.post(URL, data=json.dumps(body), content_type="application/json")


def test_samples_answer_the_commands_document(api):
    body = {"portfolio": {"holdings": [{"sample": "IBM", "weight": 0.4},
                                       {"sample": "MSFT", "weight": 0.4}],
                          "rebalance": "quarterly"},
            "cash": 100000, "start": "2011-01-01", "trigger_pct": 0.04}
    r = post(api, body)
    assert r.status_code == 200, r.content
    out = io.StringIO()
    call_command("backtest", "--portfolio", "IBM=0.4,MSFT=0.4", "--rebalance", "quarterly",
                 "--cash", "100000", "--start", "2011-01-01", "--trigger-pct", "0.04", "--json",
                 stdout=out, stderr=io.StringIO())
    assert r.json() == json.loads(out.getvalue())
    doc = r.json()
    assert doc["start"] == "2011-01-03" and doc["metrics"]["rebalances"] == 8
    assert [h["cash"] for h in doc["holdings"]] == [40000, 40000]


def test_a_ticker_and_a_posted_series(api, alpaca):  # noqa: F811 (the fixture)
    """AAPL's raw bars with its 4-for-1 split from the (recorded) feed beside a posted
    series; cut to the dates both have."""
    expect(alpaca, "history_aapl", EXCHANGES)
    series = [{"ts": d, "price": p} for d, p in (
        ("2020-08-26", 50), ("2020-08-27", 50), ("2020-08-28", 45), ("2020-08-31", 55),
        ("2020-09-01", 50))]
    r = post(api, {"portfolio": {"holdings": [
        {"ticker": "AAPL", "weight": 0.5}, {"series": series, "name": "mine", "weight": 0.5}],
        "rebalance": "band", "rebalance_band": 0.01},
        "start": "2020-08-27", "end": "2020-09-01", "min_notional": 0})
    check(alpaca)
    assert r.status_code == 200, r.content
    doc = r.json()
    assert (doc["start"], doc["end"], doc["bars"]) == ("2020-08-27", "2020-09-01", 4)
    assert [h["name"] for h in doc["holdings"]] == ["AAPL", "mine"]
    assert set(doc["benchmarks"]) == {"held", "fixed_mix"}
    for rb in doc["rebalances"]:
        assert set(rb["moves"]) == {"AAPL", "mine"}
    # four bars: the yearly figures are left out, as a single backtest leaves them
    assert doc["metrics"]["sharpe"] is doc["metrics"]["cagr"] is None
    assert doc["benchmarks"]["fixed_mix"]["volatility"] is None
    assert len(doc["notes"]) == 1 and "4 bars" in doc["notes"][0]


SAMPLE = {"sample": "IBM", "weight": 0.4}


@pytest.mark.parametrize("portfolio, extra, code, field", [
    ({"holdings": [SAMPLE, {"sample": "MSFT", "weight": 0.7}]}, {}, "invalid_weights",
     "portfolio"),
    ({"holdings": [{"sample": "IBM", "weight": 0}]}, {}, "invalid_weights",
     "portfolio.holdings[0].weight"),
    ({"holdings": [SAMPLE, {"sample": "ibm", "weight": 0.1}]}, {}, "duplicate_holding",
     "portfolio.holdings[1]"),
    ({"holdings": [{"sample": "NOPE", "weight": 0.1}]}, {}, "unknown_sample",
     "portfolio.holdings[0]"),
    ({"holdings": [{"ticker": "AAPL", "weight": 0.1}]}, {}, "validation_error", "start"),
    ({"holdings": [SAMPLE], "rebalance": "band"}, {}, "invalid_rebalance",
     "portfolio.rebalance_band"),
    ({"holdings": [SAMPLE], "rebalance": "weekly"}, {}, "invalid_rebalance",
     "portfolio.rebalance"),
    ({"holdings": [SAMPLE, {"sample": "MSFT", "ticker": "X", "weight": 0.1}]}, {},
     "validation_error", "portfolio.holdings[1]"),
    ({"holdings": []}, {}, "validation_error", "portfolio.holdings"),
    ({"holdings": [SAMPLE]}, {"sample": "IBM"}, "validation_error", "portfolio"),
    # weight x cash under one micro: nothing to fund the holding with
    ({"holdings": [SAMPLE, {"sample": "MSFT", "weight": "0.000000000001"}]}, {},
     "invalid_weights", "portfolio.holdings[1].weight"),
])
def test_refusals_name_their_code_and_field(api, portfolio, extra, code, field):
    r = post(api, {"portfolio": portfolio, **extra})
    assert r.status_code == 400, r.content
    assert r.json()["detail"] == code
    assert field in r.json()["fields"]


def test_above_the_synchronous_limit_is_refused(api, settings):
    settings.VOLBAL_BACKTEST_MAX_EVALUATIONS = 1000
    r = post(api, {"portfolio": {"holdings": [SAMPLE]}, "start": "2005-01-01"})
    assert r.status_code == 413 and r.json()["detail"] == "portfolio_too_large"



# Numbers past exact decimal arithmetic (28 significant digits): the single backtest's 400 (a
# posted series; a dividend so large that one holding's thread meets it beside one that does
# not), never a 500.
_TINY_HUGE = [{"ts": "2012-01-02", "price": 1e-6}, {"ts": "2012-01-03", "price": 1e15}]
_HUGE_DIVIDEND = [{"ex_date": "2012-02-01", "pay_date": "2012-02-10",
                   "dps": "999999999999999999"}]


@pytest.mark.parametrize("body, single", [
    ({"cash": 100000, "portfolio": {"holdings": [{"series": _TINY_HUGE, "weight": 0.3}]}},
     {"cash": 30000, "prices": _TINY_HUGE}),
    ({"cash": 10**9, "start": "2012-01-01", "portfolio": {"holdings": [
        {"sample": "MSFT", "weight": 0.3},
        {"sample": "IBM", "weight": 0.3, "dividends": _HUGE_DIVIDEND}], "rebalance": "monthly"}},
     {"cash": 3 * 10**8, "start": "2012-01-01", "sample": "IBM", "dividends": _HUGE_DIVIDEND}),
])
def test_numbers_past_exact_arithmetic_are_the_single_backtests_400(api, body, single):
    r = post(api, body)
    assert r.status_code == 400, r.content
    alone = post(api, single)
    assert alone.status_code == 400, alone.content
    assert r.json() == alone.json()
    assert r.json()["detail"] == "validation_error"
    assert "28 significant digits" in r.json()["fields"]["cash"]


def test_a_weight_too_small_for_the_cash_says_so(api):
    r = post(api, {"cash": 100, "portfolio": {"holdings": [{"sample": "IBM",
                                                            "weight": "0.000000001"}]}})
    assert r.status_code == 400, r.content
    assert r.json()["detail"] == "invalid_weights"
    assert r.json()["fields"]["portfolio.holdings[0].weight"] == (
        "portfolio.holdings[0].weight (IBM): weight × cash is 0.0000001; it must be at least "
        "0.000001 (one micro) to fund the holding.")
    # the same weight funds a larger cash
    r = post(api, {"cash": 1000, "start": "2013-01-01", "portfolio": {
        "holdings": [{"sample": "IBM", "weight": "0.000000001"}]}})
    assert r.status_code == 200, r.content
    assert r.json()["holdings"][0]["cash"] == 0.000001


_SERIES = [{"ts": "2012-01-02", "price": 1}, {"ts": "2012-01-03", "price": 2}]


@pytest.mark.parametrize("holding, field, why", [
    ({"sample": "MSFT", "weight": -0.1}, "portfolio.holdings[1].weight",
     "portfolio.holdings[1].weight must be between 0 and 1."),
    ({"sample": "MSFT", "weight": 1.5}, "portfolio.holdings[1].weight",
     "portfolio.holdings[1].weight must be between 0 and 1."),
    ({"sample": "MSFT"}, "portfolio.holdings[1].weight", "portfolio.holdings[1].weight is "
                                                         "required."),
    ({"series": [_SERIES[0], _SERIES[0]], "weight": 0.1}, "portfolio.holdings[1].series",
     "portfolio.holdings[1].series[1]: duplicate time 2012-01-02"),
    ({"series": [{"ts": "2012-01-02", "price": -1}], "weight": 0.1},
     "portfolio.holdings[1].series",
     "portfolio.holdings[1].series[0] (2012-01-02): the price must be a positive number, "
     "not -1"),
    ({"series": [{"ts": "2012-01-02"}], "weight": 0.1}, "portfolio.holdings[1].series",
     "portfolio.holdings[1].series[0] must be an object with exactly ts and price."),
])
def test_a_holdings_refusal_names_the_holding_and_says_its_own_words(api, holding, field, why):
    r = post(api, {"portfolio": {"holdings": [SAMPLE, holding]}})
    assert r.status_code == 400, r.content
    assert r.json()["fields"] == {field: why}


def test_a_holdings_series_too_long_is_413_under_its_series(api):
    r = post(api, {"portfolio": {"holdings": [
        {"series": [{"ts": "2012-01-02", "price": 1}] * 100_001, "weight": 0.1}]}})
    assert r.status_code == 413 and r.json()["detail"] == "series_too_large"
    assert r.json()["fields"] == {"portfolio.holdings[0].series": "At most 100,000 bars."}
