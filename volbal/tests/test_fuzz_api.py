"""Fuzzing: schemathesis, generated from the API's own /v1/schema/, against a real gunicorn on a
scratch database, every operation, bounded in time.

Four checks, none loosened: no 5xx (``not_a_server_error``), every status documented
(``status_code_conformance``), every content type documented (``content_type_conformance``),
every body valid against its documented schema (``response_schema_conformance``).

Local mode (DEBUG on), so anonymous requests act as the local user and reach the real logic;
schemathesis is told not to invent credentials (they would only ever earn a 401). NUL characters
are not generated inside strings: the API refuses them in any JSON body (400 ``malformed_json``).

``VOLBAL_FUZZ_SECONDS`` (default 100) is the time budget of the run; ``VOLBAL_FUZZ_SEED``
replays a run (the seed is printed with every failure)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from volbal.tests.live_server import live_server

pytestmark = pytest.mark.system

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def schemathesis_command(base: str, budget: int) -> list[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/v1/schema/",
        "--url", base,
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", "50",
        "--max-time", str(budget),
        "--continue-on-failure",
        "--generation-with-security-parameters", "false",
        "--generation-allow-x00", "false",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--no-color",
        "--output-truncate", "false",
    ]
    seed = os.environ.get("VOLBAL_FUZZ_SEED")
    if seed:
        command += ["--seed", seed]
    return command


@pytest.mark.postgres
@pytest.mark.django_db
def test_schemathesis_finds_nothing_on_any_operation(tmp_path):
    budget = int(os.environ.get("VOLBAL_FUZZ_SECONDS", "100"))
    with live_server(tmp_path, workers=2) as base:
        result = subprocess.run(
            schemathesis_command(base, budget), cwd=tmp_path, capture_output=True, text=True,
            timeout=budget + 180,
        )
    output = result.stdout + result.stderr
    report = output[-30000:]
    assert result.returncode == 0, report

    # Every operation of the schema was selected and tested, and cases were really sent.
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert selected and tested and cases, report
    assert selected.group(1) == selected.group(2) == tested.group(1), report
    assert int(selected.group(1)) >= 16, report
    assert int(cases.group(1)) == int(cases.group(2)) >= 500, report

    # The server's own request log agrees: not one 5xx answer.
    server_log = (tmp_path / "gunicorn.log").read_text()
    assert not re.search(r'"status": 5\d\d', server_log), server_log[-20000:]


# --- What the fuzzer found, pinned (fast, no server) ---

def _schema(client) -> dict:
    response = client.get("/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_time_filters_with_any_utc_offset_python_accepts(api, make_position):
    """PostgreSQL refuses offsets beyond ±15:59 ("time zone displacement out of range"): the
    filters convert to UTC first, and a time that leaves years 1-9999 in UTC is a 400."""
    position = make_position()
    assert api.get("/v1/positions", {"created_after": "2000-01-01T09:19:00.140-23:56"}) \
        .status_code == 200
    assert api.get(f"/v1/positions/{position.id}/events",
                   {"since": "0847-09-27T03:36:37.0+23:18",
                    "until": "2999-01-01T00:00:00-23:59"}).json()["events"]
    response = api.get("/v1/positions", {"created_before": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400 and response.json()["detail"] == "invalid_query"


@pytest.mark.django_db
def test_a_forged_cursor_is_a_400_or_a_page_never_a_500(api, make_position):
    from volbal.api import encode_cursor

    make_position()
    odd_offset = encode_cursor(["2000-01-01T00:00:00+23:59", "pos_x"])
    assert api.get("/v1/positions", {"cursor": odd_offset}).status_code == 200
    for values in (["2000-01-01T00:00:00", "pos_x"], ["0001-01-01T00:00:00+01:00", "pos_x"]):
        response = api.get("/v1/positions", {"cursor": encode_cursor(values)})
        assert response.status_code == 400 and response.json()["detail"] == "invalid_query"


@pytest.mark.django_db
def test_schema_documents_what_the_api_answers(client):
    schema = _schema(client)
    paths, components = schema["paths"], schema["components"]["schemas"]
    # A list endpoint answers one page object, not an array of pages.
    page = paths["/v1/positions"]["get"]["responses"]["200"]["content"]["application/json"]
    assert page["schema"] == {"$ref": "#/components/schemas/PositionPage"}
    # A replay of a first 201 answers 200; the same key with another body 409.
    assert {"200", "201", "409"} <= set(paths["/v1/prices"]["post"]["responses"])
    # Strict bodies refuse unknown fields; bounds and decimal places are documented.
    create = components["PositionCreateRequest"]
    assert create["additionalProperties"] is False
    trigger = create["properties"]["trigger_pct"]
    assert (trigger["minimum"], trigger["maximum"], trigger["multipleOf"]) == (0, 1, 1e-08)
    assert trigger["exclusiveMinimum"] is trigger["exclusiveMaximum"] is True
    assert create["properties"]["ticker"]["pattern"] == r"^[A-Za-z][A-Za-z0-9.\-]{0,15}$"
    key = next(p for p in paths["/v1/positions/{id}/orders"]["post"]["parameters"]
               if p["name"] == "Idempotency-Key")
    assert key["required"] is True and key["schema"]["maxLength"] == 255
