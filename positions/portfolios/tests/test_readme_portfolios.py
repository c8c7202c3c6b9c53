"""README's "Portfolios" walk-through, run as written (bash, curl, manage.py) against a real
gunicorn on a scratch database: the deposits, the refused overdraw, the transfer, the
rebalance to 40/30/20 % with 10 % unallocated, the returns, and a clean ledger."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from volbal.tests.live_server import ROOT, live_server

pytestmark = [pytest.mark.system, pytest.mark.django_db]


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Portfolios"):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("```", start)]


def test_the_readme_portfolios_section_runs_as_written(tmp_path):
    envs = {}
    with live_server(tmp_path, before_start=envs.update) as base:
        script = (readme_block().replace("http://localhost:8000", base)
                  .replace(".venv/bin/python", sys.executable))
        done = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=envs,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    answers = [json.loads(line) for line in lines if line.startswith("{")]
    deposit, replay, withdrawal, overdraw, transfer, own = answers[1:7]
    assert (deposit["cash"], replay["cash"], withdrawal["cash"]) == (15000, 15000, 14000)
    assert overdraw["detail"] == "insufficient_cash"
    assert transfer["balances"]["portfolio"] == 13000 and own["cash"] == 250
    assert any("rebalanced, 3 move(s)" in line for line in lines), lines
    portfolio = answers[7]
    assert (portfolio["value"], portfolio["cash"]) == (14250, 1425)
    assert [p["weight"] for p in portfolio["positions"]] == [0.4, 0.3, 0.2]
    # its returns (docs/returns.md): cash only, so nothing earned; the deposit, the withdrawal
    # and MSFT's own deposit are flows, the transfer and the rebalance are not
    performance, ibm = answers[8:10]
    assert (performance["net_flows"], performance["end_value"]) == (4250, 14250)
    assert performance["time_weighted_return"] == 0 == performance["money_weighted_return"]
    assert ibm["time_weighted_return"] == 0 and ibm["end_value"] == 5700
    assert any(line.startswith("ledger ok") for line in lines), lines
