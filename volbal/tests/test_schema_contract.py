"""The schema tells a client the truth: one tag per resource, enums
wherever the server has one, the Idempotent-Replayed header, bounds on price lists, no internal
names in descriptions, and every field of every answer documented with its type (a field the
schema lacks is dropped by a generated client's models)."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=io.StringIO())
    return yaml.safe_load(out.getvalue())


def operations(schema):
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            yield path, method, op


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def conforms(schema, value, node: dict, where: str) -> list[str]:
    """Why ``value`` does not match the OpenAPI 3.0 schema ``node``: strict about objects (a key
    the schema does not list is an error unless it allows additional properties)."""
    node = resolve(schema, node)
    if value is None:
        nullable = node.get("nullable") or any(
            resolve(schema, n).get("nullable") for n in node.get("allOf", []))
        return [] if nullable else [f"{where}: null but not nullable"]
    if "allOf" in node:
        return [p for part in node["allOf"] for p in conforms(schema, value, part, where)]
    if "oneOf" in node:
        results = [conforms(schema, value, part, where) for part in node["oneOf"]]
        return [] if any(not r for r in results) else [f"{where}: matches no oneOf"]
    problems = []
    if "enum" in node and value not in node["enum"]:
        problems.append(f"{where}: {value!r} not in {node['enum']}")
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key in node.get("required", []):
            if key not in value:
                problems.append(f"{where}.{key}: required, missing")
        for key, item in value.items():
            if key in props:
                problems += conforms(schema, item, props[key], f"{where}.{key}")
            elif extra is None or extra is False:
                problems.append(f"{where}.{key}: not in the schema")
            elif isinstance(extra, dict):
                problems += conforms(schema, item, extra, f"{where}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        for i, item in enumerate(value):
            problems += conforms(schema, item, node.get("items", {}), f"{where}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: not a string")
        elif node.get("format") == "date-time":
            dt.datetime.fromisoformat(value)
        elif node.get("format") == "date":
            dt.date.fromisoformat(value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: not a number")
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: not an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{where}: not a boolean")
    return problems


def test_every_field_of_every_answer_is_documented(api, schema, make_position):
    """A tour of every operation: each answer is checked against its documented schema, field by
    field (BacktestResult lacked ``metrics``: this fails on it)."""
    seen: set[tuple[str, str, int]] = set()

    def check(response, path: str, method: str):
        status = response.status_code
        documented = schema["paths"][path][method]["responses"]
        assert str(status) in documented, (path, method, status, response.content[:300])
        body = documented[str(status)]["content"]["application/json"]["schema"]
        problems = conforms(schema, response.json(), body, f"{method} {path} {status}")
        assert not problems, problems
        seen.add((path, method, status))
        return response.json()

    def call(method, url, path, body=None, **headers):
        response = getattr(api, method)(url, body, format="json", **headers) \
            if method != "get" else api.get(url, body or {})
        return check(response, path, method)

    check(api.get("/healthz"), "/healthz", "get")
    check(api.get("/v1/healthz"), "/v1/healthz", "get")
    check(api.get("/readyz"), "/readyz", "get")
    pos = call("post", "/v1/positions", "/v1/positions",
               {"ticker": "ZIM", "qty": 10, "cash": 10000})["id"]
    one = "/v1/positions/{id}"
    call("get", f"/v1/positions/{pos}", one)
    call("patch", f"/v1/positions/{pos}", one, {"trigger_pct": 0.05, "qty_step": None})
    call("get", "/v1/positions", "/v1/positions", {"limit": 1})
    call("post", "/v1/prices", "/v1/prices",
         {"ticker": "ZIM", "price": 100, "ts": "2026-01-02T15:00:00Z"})
    call("post", "/v1/prices", "/v1/prices",
         [{"ticker": "ZIM", "price": 101, "ts": "2026-01-02T16:00:00Z"}])
    orders = "/v1/positions/{id}/orders"
    order = call("post", f"/v1/positions/{pos}/orders", orders, {"side": "BUY", "qty": 2},
                 HTTP_IDEMPOTENCY_KEY="o1")["order_id"]
    call("post", f"/v1/positions/{pos}/orders", orders, {"side": "BUY", "qty": 2},
         HTTP_IDEMPOTENCY_KEY="o1")
    call("post", f"/v1/orders/{order}/fill", "/v1/orders/{id}/fill",
         {"price": 100, "filled_qty": 1})
    call("get", f"/v1/orders/{order}", "/v1/orders/{id}")
    call("post", f"/v1/orders/{order}/cancel", "/v1/orders/{id}/cancel")
    call("get", f"/v1/positions/{pos}/orders", orders)
    evaluate = "/v1/positions/{id}/evaluate"
    call("post", f"/v1/positions/{pos}/evaluate", evaluate, {"price": 80, "submit": True},
         HTTP_IDEMPOTENCY_KEY="e1")
    call("post", f"/v1/positions/{pos}/evaluate", evaluate, {"price": 80})  # blocked
    empty = make_position(ticker="NOPRICE")
    call("post", f"/v1/positions/{empty.id}/evaluate", evaluate, {})  # no price
    dividends = "/v1/positions/{id}/dividends"
    call("post", f"/v1/positions/{pos}/dividends", dividends,
         {"ex_date": "2030-01-02", "pay_date": "2030-01-09", "dps": 1})
    call("get", f"/v1/positions/{pos}/dividends", dividends)
    events = call("get", f"/v1/positions/{pos}/events", "/v1/positions/{id}/events",
                  {"limit": 2})
    call("get", f"/v1/positions/{pos}/events", "/v1/positions/{id}/events",
         {"cursor": events["next"]})
    result = call("post", "/v1/backtests", "/v1/backtests",
                  {"prices": [{"ts": f"2024-01-{d:02}", "price": p}
                              for d, p in ((2, 100), (3, 90), (4, 100), (5, 110))],
                   "min_notional": 0})
    assert result["metrics"] and result["buy_and_hold"] and result["orders"]
    call("post", "/v1/backtests", "/v1/backtests", {"sample": "IBM", "end": "2000-03-01"})
    portfolio = call("post", "/v1/backtests", "/v1/backtests", {
        "portfolio": {"holdings": [{"sample": "IBM", "weight": 0.5},
                                   {"sample": "MSFT", "weight": 0.4}], "rebalance": "monthly"},
        "start": "2012-06-01"})
    assert portfolio["holdings"] and portfolio["rebalances"]
    # errors are documented too
    call("get", "/v1/positions/pos_nothing", one)
    call("post", f"/v1/positions/{pos}/orders", orders, {"side": "SELL", "qty": 1000},
         HTTP_IDEMPOTENCY_KEY="o2")
    call("post", f"/v1/positions/{pos}/orders", orders, {"side": "BUY", "qty": 1})
    call("post", f"/v1/orders/{order}/fill", "/v1/orders/{id}/fill", {"price": 1, "qty": 1})
    assert {s for _, _, s in seen} >= {200, 201, 400, 404, 409}


def test_every_operation_has_one_tag_per_resource(schema):
    names = [tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]]
    assert [tag["name"] for tag in schema["tags"]] == names
    expected = {
        ("/v1/positions", "post"): "positions", ("/v1/positions/{id}/evaluate", "post"):
        "positions", ("/v1/positions/{id}/orders", "post"): "orders",
        ("/v1/orders/{id}/fill", "post"): "orders", ("/v1/positions/{id}/events", "get"):
        "events", ("/v1/positions/{id}/dividends", "post"): "dividends",
        ("/v1/prices", "post"): "prices", ("/v1/backtests", "post"): "backtests",
        ("/healthz", "get"): "health", ("/v1/healthz", "get"): "health",
    }
    for path, method, op in operations(schema):
        assert len(op["tags"]) == 1 and op["tags"][0] in names, (path, method, op["tags"])
        if (path, method) in expected:
            assert op["tags"] == [expected[(path, method)]], (path, method)


@pytest.mark.parametrize(("component", "field", "values"), [
    ("OrderSubmitRequest", "side", {"BUY", "SELL"}),
    ("OrderAccepted", "side", {"BUY", "SELL"}),
    ("Order", "side", {"BUY", "SELL"}),
    ("Proposal", "side", {"BUY", "SELL"}),
    ("BacktestOrder", "side", {"BUY", "SELL"}),
    ("Position", "sizing", {"proportional", "original", "fixed_fraction"}),
    ("Event", "type", {"position_created", "order_submitted", "evaluation"}),
    ("Proposal", "kind", {"buy_trigger", "sell_trigger", "guardrail_rebalance"}),
    ("BacktestOrder", "kind", {"opening", "buy_trigger", "sell_trigger", "guardrail_rebalance"}),
    ("Proposal", "trimmed_by", {"guardrail_high", "guardrail_low", "cash", "holdings"}),
    ("BlockedProposal", "blocked_by", {"below_min_notional", "daily_cap_reached",
                                       "open_order"}),
    ("Order", "status", {"submitted", "partially_filled", "filled", "cancelled"}),
    ("Dividend", "status", {"announced", "effective", "paid"}),
    ("Position", "price_source", {"stored", "fill", "none"}),
    ("Evaluation", "price_source", {"request", "stored", "fill", "none"}),
])
def test_enums_wherever_the_server_has_one(schema, component, field, values):
    node = schema["components"]["schemas"][component]["properties"][field]
    enum = set(resolve(schema, node.get("allOf", [node])[0]).get("enum", []))
    assert values <= enum, (component, field, enum)


def test_every_replayable_operation_documents_the_idempotent_replayed_header(schema):
    count = 0
    for path, method, op in operations(schema):
        if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])):
            headers = op["responses"]["200"].get("headers", {})
            assert headers["Idempotent-Replayed"]["schema"]["enum"] == ["true"], (path, method)
            count += 1
    assert count >= 7  # create, patch, submit, fill, cancel, evaluate, dividends, prices


def test_price_lists_have_their_bounds(schema):
    body = schema["paths"]["/v1/prices"]["post"]["requestBody"]["content"]["application/json"]
    one, many = resolve(schema, body["schema"])["oneOf"]
    assert resolve(schema, one)["properties"].keys() >= {"ticker", "price", "ts"}
    assert (many["type"], many["minItems"], many["maxItems"]) == ("array", 1, 10_000)


# A file or function the user does not have (manage.py is theirs: its commands are documented).
INTERNAL = re.compile(r"\b(?!manage\.py)\w+\.(py|md)\b"
                      r"|\b(rules|services|selectors|engine)\.\w|config_errors")


def test_no_description_names_internal_code(schema):
    texts = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "summary") and isinstance(value, str):
                    texts.append(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert texts
    leaks = [t for t in texts if INTERNAL.search(t)]
    assert not leaks, leaks
