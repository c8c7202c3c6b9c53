"""``POST /v1/backtests``: the command's backtest over a posted series or a bundled sample."""

from __future__ import annotations

import json

import pytest
from django.urls import resolve

from positions.research.api import MAX_BARS, BacktestView
from positions.strategy.backtest import metrics

URL = "/v1/backtests"


def points(prices, start="2024-01-01"):
    import numpy as np

    day0 = np.datetime64(start, "D")
    return [{"ts": str(day0 + i), "price": p} for i, p in enumerate(prices)]


def post(api, body):
    return api.post(URL, data=json.dumps(body), content_type="application/json")


pytestmark = pytest.mark.django_db


def test_posted_series(api):
    body = {"prices": points([100, 110, 100, 95]), "trigger_pct": 0.05,
            "sizing": "fixed_fraction", "fixed_fraction": 1, "guard_low": 0, "guard_high": 1,
            "min_notional": 0, "commission_rate": 0}
    r = post(api, body)
    assert r.status_code == 200, r.content
    doc = r.json()
    assert set(doc) == {"metrics", "buy_and_hold", "benchmarks", "attribution", "notes",
                        "orders"}
    assert list(doc["metrics"]) == list(metrics.METRIC_NAMES)
    assert list(doc["benchmarks"]) == ["held_mix", "stock_held", "fixed_mix"]
    assert [(o["date"], o["side"], o["qty"], o["price"], o["kind"]) for o in doc["orders"]] == [
        ("2024-01-01", "BUY", 50, 100, "opening"),
        ("2024-01-02", "SELL", 50, 110, "sell_trigger"),
        ("2024-01-03", "BUY", 105, 100, "buy_trigger"),
    ]
    assert doc["metrics"]["final_value"] == 9975
    assert doc["buy_and_hold"]["total_return"] == pytest.approx(-0.025)
    # Held mix: 50 shares and 5000 cash -> 9750; stock held: 100 shares -> 9500; no month
    # starts inside the series, so the fixed mix is the held mix.
    bench = doc["benchmarks"]
    assert bench["held_mix"] == doc["buy_and_hold"]
    assert bench["stock_held"]["total_return"] == pytest.approx(-0.05)
    assert bench["fixed_mix"]["final_value"] == 9750
    att = doc["attribution"]
    assert att["excess_over_held_mix"] == pytest.approx(-0.0025 + 0.025)
    assert att["rebalancing_premium"] == 0
    assert att["trigger_timing"] == pytest.approx(0.0225)
    # Four bars over three days: nothing annualised, and the note says why.
    for m in (doc["metrics"], *bench.values()):
        assert [m[k] for k in metrics.ANNUALISED] == [None] * 5
    (note,) = doc["notes"]
    assert "3 calendar days and 4 bars" in note and "at least 60 days and 20 bars" in note


def test_sample_with_range_matches_the_command(api):
    import io

    from django.core.management import call_command

    r = post(api, {"sample": "IBM", "start": "2005-01-01", "end": "2006-12-31",
                   "trigger_pct": 0.04, "cash": 50000, "slippage_bps": 2})
    assert r.status_code == 200, r.content
    out = io.StringIO()
    call_command("backtest", "--sample", "IBM", "--start", "2005-01-01", "--end", "2006-12-31",
                 "--trigger-pct", "0.04", "--cash", "50000", "--slippage-bps", "2", "--json",
                 stdout=out)
    assert r.json() == json.loads(out.getvalue())


def test_posted_dividends_replace_the_sample_ones(api):
    r = post(api, {"sample": "IBM", "start": "2010-01-01", "end": "2010-03-31",
                   "dividends": [{"ex_date": "2010-02-08", "pay_date": "2010-03-10",
                                  "dps": 1}]})
    assert r.status_code == 200, r.content
    held = r.json()["buy_and_hold"]
    assert held["dividends"] == pytest.approx(round(held["final_qty"] * 0.75, 6), abs=1e-6)


def test_at_most_max_bars(api):
    import numpy as np

    t0 = np.datetime64("2020-01-01T09:30", "m")
    body = {"prices": [{"ts": str(t0 + i), "price": 100 + i % 7} for i in range(MAX_BARS)]}
    r = post(api, body)  # about 4.5 MB of JSON: more than Django's default 2.5 MB
    assert r.status_code == 200, r.content[:300]
    assert r.json()["orders"][0]["date"] == "2020-01-01T09:30:00"
    body["prices"].append({"ts": str(t0 + MAX_BARS), "price": 100})
    r = post(api, body)
    assert r.status_code == 413
    assert r.json()["detail"] == "series_too_large"


def test_huge_body_is_refused_unread(api):
    r = api.generic("POST", URL, data=b"x", content_type="application/json",
                    CONTENT_LENGTH=str(64 * 1024 * 1024))
    assert r.status_code == 413
    assert r.json()["detail"] == "request_too_large"


@pytest.mark.parametrize("body,field", [
    ({"prices": points([100, 100]), "sample": "IBM"}, "prices"),
    ({}, "prices"),
    ({"sample": "XYZ"}, "sample"),
    ({"prices": points([100, 0])}, "prices"),
    ({"prices": [{"ts": "2024-01-02", "price": 1}, {"ts": "2024-01-01", "price": 1}]}, "prices"),
    ({"prices": [{"ts": "2024-01-02", "price": 1}, {"ts": "2024-01-02", "price": 1}]}, "prices"),
    ({"prices": [{"ts": "yesterday", "price": 1}]}, "prices"),
    ({"prices": [{"ts": "2024-01-02", "price": "1"}]}, "prices"),
    ({"prices": [{"ts": "2024-01-02"}]}, "prices"),
    ({"prices": "lots"}, "prices"),
    ({"prices": points([100]), "trigger_pct": 2}, "trigger_pct"),
    ({"prices": points([100]), "guard_low": 0.9}, "guard_low"),
    ({"prices": points([100]), "sizing": "kelly"}, "sizing"),
    ({"prices": points([100]), "cash": 0}, "cash"),
    ({"prices": points([100]), "start_weight": 1.5}, "start_weight"),
    ({"prices": points([100]), "slippage_bps": -1}, "slippage_bps"),
    ({"prices": points([100]), "start": "2030-01-01"}, "start"),
    ({"prices": points([100]), "end": "soon"}, "end"),
    ({"prices": points([100]), "dividends": [{"ex_date": "2024-01-02", "dps": 0}]},
     "dividends"),
    ({"prices": points([100]), "colour": "red"}, "colour"),
])
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    r = post(api, body)
    assert r.status_code == 400, r.content
    err = r.json()
    assert err["detail"] == "validation_error"
    assert field in err["fields"]
    assert err["message"]


def test_not_json(api):
    r = api.post(URL, data="[1,", content_type="application/json")
    assert r.status_code == 400
    assert r.json()["detail"] == "malformed_json"
    r = post(api, [1, 2])
    assert r.status_code == 400 and r.json()["detail"] == "validation_error"


def test_the_project_routes_it():
    assert resolve(URL).func.view_class is BacktestView


def test_schema_documents_the_endpoint(api):
    import yaml

    schema = yaml.safe_load(api.get("/v1/schema/").content)
    op = schema["paths"]["/v1/backtests"]["post"]
    assert {"200", "400", "413"} <= set(op["responses"])
    components = schema["components"]["schemas"]

    def component(ref):
        return components[ref["$ref"].rsplit("/", 1)[1]]

    body = component(op["requestBody"]["content"]["application/json"]["schema"])
    # exactly one of a posted series, a sample, a ticker from the feed or a portfolio: four
    # bodies, each refusing the others' fields
    on_prices, on_sample, on_ticker, on_portfolio = (component(ref) for ref in body["oneOf"])
    assert "portfolio" in on_portfolio["required"] and "prices" not in on_portfolio["properties"]
    holding = component(component(on_portfolio["properties"]["portfolio"])["properties"]
                        ["holdings"]["items"])
    assert {"sample", "ticker", "series", "weight"} <= set(holding["properties"])
    answers = component(op["responses"]["200"]["content"]["application/json"]["schema"])
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in answers["oneOf"]] == [
        "BacktestResult", "PortfolioBacktestResult"]
    assert "prices" in on_prices["required"] and "sample" not in on_prices["properties"]
    assert "sample" in on_sample["required"] and "prices" not in on_sample["properties"]
    assert "ticker" in on_ticker["required"] and "prices" not in on_ticker["properties"]
    assert "ticker" not in on_prices["properties"] and "ticker" not in on_sample["properties"]
    assert on_prices["additionalProperties"] is False is on_sample["additionalProperties"]
    common = {"trigger_pct", "cash", "start_weight", "slippage_bps", "dividends"}
    assert common <= set(on_prices["properties"]) and common <= set(on_sample["properties"])
    prices = on_prices["properties"]["prices"]
    assert (prices["minItems"], prices["maxItems"]) == (1, 100_000)
    # the strategy fields carry the position's own bounds
    position = components["PositionCreateRequest"]["properties"]
    for name in ("trigger_pct", "guard_low", "commission_rate", "max_orders_per_day", "qty_step"):
        assert on_prices["properties"][name] == position[name], name


def test_schema_documents_the_benchmarks_and_the_attribution(api):
    import yaml

    schema = yaml.safe_load(api.get("/v1/schema/").content)
    comps = schema["components"]["schemas"]
    result = comps["BacktestResult"]["properties"]
    assert {"benchmarks", "attribution", "notes"} <= set(result)
    bench = comps["BacktestBenchmarks"]["properties"]
    assert list(bench) == ["held_mix", "stock_held", "fixed_mix"]
    for entry in bench.values():  # each one the full set of metrics
        ref = entry.get("$ref") or entry["allOf"][0]["$ref"]
        assert set(comps[ref.rsplit("/", 1)[1]]["properties"]) == set(metrics.METRIC_NAMES)
    att = comps["BacktestAttribution"]["properties"]
    assert {"excess_over_held_mix", "rebalancing_premium", "trigger_timing", "dividends",
            "commissions"} <= set(att)


def test_an_idempotency_key_replays_the_answer(api):
    """The key is honoured (a backtest above the synchronous limit creates a job, which a
    replay must not create twice): the same key and body replay the stored answer, another
    body with that key is a 409."""
    body = {"prices": points([100, 110, 100, 95]), "min_notional": 0}
    first = api.post(URL, data=json.dumps(body), content_type="application/json",
                     HTTP_IDEMPOTENCY_KEY="bt-1")
    again = api.post(URL, data=json.dumps(body), content_type="application/json",
                     HTTP_IDEMPOTENCY_KEY="bt-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == post(api, body).json()
    assert again["Idempotent-Replayed"] == "true"
    other = api.post(URL, data=json.dumps({**body, "min_notional": 1}),
                     content_type="application/json", HTTP_IDEMPOTENCY_KEY="bt-1")
    assert other.status_code == 409 and other.json()["detail"] == "idempotency_signature_mismatch"


def test_numbers_past_exact_arithmetic_are_a_400(api):
    r = post(api, {"prices": points([100, 1e22, 1e23])})
    assert r.status_code == 400, r.content
    assert r.json()["detail"] == "validation_error" and "cash" in r.json()["fields"]


def test_bars_a_second_apart_answer_with_the_annualised_figures_null(api):
    """Two bars a second apart annualised to a power past any float: it was a 500."""
    body = {"prices": [{"ts": "2020-01-02T10:00:00", "price": 100},
                       {"ts": "2020-01-02T10:00:01", "price": 110}]}
    r = post(api, body)
    assert r.status_code == 200, r.content
    metrics = r.json()["metrics"]
    assert metrics["cagr"] is None and metrics["sharpe"] is None
    assert r.json()["notes"]
