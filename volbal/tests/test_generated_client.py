"""A client generated from the live schema works (docs/api.md#conventions, "Generated clients"):
openapi-python-client (pinned in requirements.txt) generates a package from a real server's
``/v1/schema/`` into a temporary directory, and that package drives the seed's smoke (create,
submit, replay, mismatch, fill, the events paged to the end) plus evaluate, dividends, prices and
backtests against the same server, authenticated with a DRF token.

It fails on anything the generated code cannot parse: an undocumented status (the client is
told to raise), a missing or mistyped field (``from_dict`` raises), an unknown enum value (the
enum class raises), and a field the schema does not document (left in a model's
``additional_properties``). Generation itself must finish without a warning."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import attrs
import pytest

from volbal.tests.live_server import ROOT, live_server

pytestmark = [pytest.mark.system, pytest.mark.django_db]

PACKAGE = "volbal_generated_client"
# Models whose schema is a free-form object: their additional_properties are their content.
FREE_FORM = {"ErrorFields"}

CREATE_TOKEN = (  # alice, who may record prices, and her API token
    "from django.contrib.auth.models import Permission, User\n"
    "from rest_framework.authtoken.models import Token\n"
    "alice = User.objects.create_user('alice')\n"
    "alice.user_permissions.add(Permission.objects.get(codename='add_price'))\n"
    "print(Token.objects.create(user=alice).key)\n"
)


def generate(base: str, key: str, out: Path):
    """The package generated from the server's schema, imported."""
    schema = out / "schema.json"
    request = urllib.request.Request(f"{base}/v1/schema/?format=json",
                                     headers={"Authorization": f"Token {key}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        schema.write_bytes(response.read())
    bindir = Path(sys.executable).parent
    # The sweep files (PNG, CSV, xlsx) are bytes to a client: generated as binary responses.
    config = out / "config.json"
    config.write_text(json.dumps({"content_type_overrides": {
        "image/png": "application/octet-stream", "text/csv": "application/octet-stream",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
            "application/octet-stream"}}))
    result = subprocess.run(
        [str(bindir / "openapi-python-client"), "generate", "--path", str(schema),
         "--meta", "none", "--config", str(config), "--output-path", str(out / PACKAGE)],
        cwd=out, capture_output=True, text=True, timeout=300,
        # its post-generation hook runs ruff, which lives next to this interpreter
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Error" not in output, output
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))


def undocumented(value, where: str = "") -> list[str]:
    """Every field a parsed model did not know (kept aside in additional_properties)."""
    found = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += undocumented(item, f"{where}[{i}]")
    elif hasattr(value, "additional_properties") and hasattr(value, "to_dict"):
        name = type(value).__name__
        if name not in FREE_FORM and value.additional_properties:
            found.append(f"{where or name}: {sorted(value.additional_properties)}")
        for attr in attrs.fields(type(value)):
            if attr.name != "additional_properties":
                found += undocumented(getattr(value, attr.name), f"{where or name}.{attr.name}")
    return found


def parsed(response, status: int):
    assert response.status_code == status, response.content[:500]
    assert response.parsed is not None and not isinstance(response.parsed, str)
    problems = undocumented(response.parsed)
    assert not problems, problems
    return response.parsed


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("generated-client")
    token = {}

    def create_user(env):
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c", CREATE_TOKEN],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                                check=True)
        token["key"] = result.stdout.strip().splitlines()[-1]

    # DJANGO_DEBUG=0: no local-mode shortcut, the token is what lets the client in
    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "generated-client-test-" + "x" * 40,
           "DJANGO_SECURE_SSL_REDIRECT": "0"}
    with live_server(tmp_path, workers=1, env=env, before_start=create_user) as base:
        yield base, token["key"], tmp_path


@pytest.mark.django_db(transaction=True)
def test_a_generated_client_drives_the_smoke_and_every_resource(served):
    base, key, tmp_path = served
    gen = generate(base, key, tmp_path)
    api = importlib.import_module(f"{PACKAGE}.api")  # noqa: F841 (the package imports)
    from volbal_generated_client import AuthenticatedClient, models
    from volbal_generated_client.api.backtests import backtest_run
    from volbal_generated_client.api.dividends import (
        v1_positions_dividends_create,
        v1_positions_dividends_retrieve,
    )
    from volbal_generated_client.api.events import v1_positions_events_retrieve
    from volbal_generated_client.api.health import v1_healthz_retrieve
    from volbal_generated_client.api.orders import (
        v1_orders_fill_create,
        v1_orders_retrieve,
        v1_positions_orders_create,
    )
    from volbal_generated_client.api.positions import (
        v1_positions_create,
        v1_positions_evaluate_create,
        v1_positions_retrieve,
    )
    from volbal_generated_client.api.prices import v1_prices_create

    assert gen.__name__ == PACKAGE
    client = AuthenticatedClient(base_url=base, token=key, prefix="Token",
                                 raise_on_unexpected_status=True)
    health = parsed(v1_healthz_retrieve.sync_detailed(client=client), 200)
    assert (health.status, health.version) == ("ok", "v1")

    # The seed's smoke
    position = parsed(v1_positions_create.sync_detailed(
        client=client, body=models.PositionCreateRequest(ticker="ZIM", qty=0, cash=10000)), 201)
    assert position.ticker == "ZIM" and position.price_source.value == "none"
    pid = position.id
    buy = models.OrderSubmitRequest(side=models.SideEnum.BUY, qty=1.5)
    first = v1_positions_orders_create.sync_detailed(pid, client=client, body=buy,
                                                     idempotency_key="k1")
    accepted = parsed(first, 201)
    assert accepted.accepted is True and accepted.position_id == pid
    assert "Idempotent-Replayed" not in first.headers
    replay = v1_positions_orders_create.sync_detailed(pid, client=client, body=buy,
                                                      idempotency_key="k1")
    assert parsed(replay, 200).order_id == accepted.order_id
    assert replay.headers["Idempotent-Replayed"] == "true"
    mismatch = v1_positions_orders_create.sync_detailed(
        pid, client=client, body=models.OrderSubmitRequest(side=models.SideEnum.SELL, qty=2.0),
        idempotency_key="k1")
    assert parsed(mismatch, 409).detail == "idempotency_signature_mismatch"
    filled = parsed(v1_orders_fill_create.sync_detailed(
        accepted.order_id, client=client,
        body=models.FillRequestRequest(price=100, filled_qty=1.5, commission=0)), 200)
    assert (filled.status.value, filled.position_qty, filled.position_cash) == (
        "filled", 1.5, 9850)
    assert filled.fill.filled_qty == 1.5
    order = parsed(v1_orders_retrieve.sync_detailed(accepted.order_id, client=client), 200)
    assert [f.filled_qty for f in order.fills] == [1.5]
    shown = parsed(v1_positions_retrieve.sync_detailed(pid, client=client), 200)
    assert (shown.price, shown.price_source.value) == (100, "fill")

    # Refusals parse as errors
    refused = v1_positions_orders_create.sync_detailed(
        pid, client=client, body=models.OrderSubmitRequest(side=models.SideEnum.SELL, qty=1000),
        idempotency_key="k2")
    assert parsed(refused, 409).detail == "insufficient_qty"

    # Prices, one and many
    recorded = parsed(v1_prices_create.sync_detailed(client=client, body=[
        models.PriceInRequest(ticker="ZIM", price=90, ts=_ts("2026-01-02T15:00:00Z")),
        models.PriceInRequest(ticker="ZIM", price=91, ts=_ts("2026-01-02T16:00:00Z"))]), 201)
    assert recorded.recorded == 2

    # Evaluate: a look, then a submission under a key
    look = parsed(v1_positions_evaluate_create.sync_detailed(
        pid, client=client, body=models.EvaluateRequestRequest(price=80)), 200)
    assert look.price_source.value == "request" and look.proposals
    assert look.proposals[0].kind.value in ("buy_trigger", "guardrail_rebalance")
    placed = parsed(v1_positions_evaluate_create.sync_detailed(
        pid, client=client, body=models.EvaluateRequestRequest(price=80, submit=True),
        idempotency_key="e1"), 200)
    assert placed.order_id

    # Dividends
    announced = parsed(v1_positions_dividends_create.sync_detailed(
        pid, client=client, body=models.DividendAnnounceRequest(
            ex_date=_date("2030-01-02"), pay_date=_date("2030-01-09"), dps=0.5,
            withholding_tax_rate=0.15)), 201)
    assert announced.status.value == "announced" and announced.withholding_tax_rate == 0.15
    listed = parsed(v1_positions_dividends_retrieve.sync_detailed(pid, client=client), 200)
    assert [d.id for d in listed.dividends] == [announced.id]

    # The events, two at a time, to the end
    types, cursor, pages = [], None, 0
    while True:
        kwargs = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = parsed(v1_positions_events_retrieve.sync_detailed(pid, client=client, **kwargs),
                      200)
        types += [e.type_.value for e in page.events]
        pages += 1
        if page.next_ is None:
            break
        cursor = page.next_
        assert pages < 50
    assert pages > 2 and types[0] == "position_created"
    assert {"order_submitted", "order_filled", "evaluation", "ex_div_announced"} <= set(types)

    # Backtests: a posted series and a bundled sample
    series = [models.PricePointRequest(ts=f"2024-01-{d:02}", price=p)
              for d, p in ((2, 100), (3, 90), (4, 100), (5, 110))]
    run = parsed(backtest_run.sync_detailed(client=client, body=models.BacktestOnPricesRequest(
        prices=series, min_notional=0)), 200)
    assert run.metrics.buys >= 1 and run.buy_and_hold.final_value > 0
    assert run.orders[0].kind.value == "opening"
    sample = parsed(backtest_run.sync_detailed(client=client, body=models.BacktestOnSampleRequest(
        sample=models.SampleEnum.IBM, end="2001-12-31")), 200)
    assert sample.metrics.final_value > 0


def _ts(text: str):
    import datetime as dt

    return dt.datetime.fromisoformat(text)


def _date(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text)
