"""``manage.py sweep`` (docs/strategy.md#research): its table, the files it writes, its JSON,
its one-line errors and the Dask cluster named by the environment."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from positions.strategy.research import sweep
from positions.strategy.tests.test_research_sweep import wave

# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@pytest.fixture
def two_csvs(tmp_path):
    paths = []
    for it in (wave(name="a"), wave(name="b", amp=0.2, period=5.0)):
        p = tmp_path / f"{it.name}.csv"
        s = it.series
        p.write_text("Date,Close\n" + "".join(f"{s.label(i)},{s.prices[i]}\n"
                                              for i in range(len(s))))
        paths.append(p)
    return paths


def sweep_cmd(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("sweep", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_writes_every_cell_and_series(tmp_path, two_csvs):
    png, cells, xlsx, js = (tmp_path / n for n in ("h.png", "c.csv", "s.xlsx", "s.json"))
    out, err = sweep_cmd("--csv", str(two_csvs[0]), "--csv", str(two_csvs[1]),
                         "--grid", "trigger_pct=0.02:0.06:0.02", "--grid", "guard_low=0.1,0.3",
                         "--min-notional", "0", "--top", "3", "--jobs", "1",
                         "--heatmap", str(png), "--out-csv", str(cells), "--xlsx", str(xlsx),
                         "--json-file", str(js))
    assert out.startswith("Sweep of 6 cells over 2 series (a.csv, b.csv)")
    assert "Best cell: trigger_pct=" in out and "stability" in out
    assert "Benchmarks on a.csv: held mix sharpe" in out
    # the progress bar: 6 cells + 3 exact re-runs, and it says which is which
    assert "9/9" in err and "cells 6/6, exact re-runs 3/3" in err
    with open(cells, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * 2 + 3 * 2  # every cell on both series, then the exact top 3
    assert {r["mode"] for r in rows[:12]} == {"float"} and {r["mode"] for r in rows[12:]} == {
        "exact"}
    assert set(sweep.CELL_METRICS) <= set(rows[0])
    doc = json.loads(js.read_text())
    assert doc["grid"] == {"trigger_pct": [0.02, 0.04, 0.06], "guard_low": [0.1, 0.3]}
    assert len(doc["results"]) == 12 and len(doc["top"]) == 3
    assert doc["best"] == doc["top"][0]
    assert set(doc["benchmarks"]) == {"a.csv", "b.csv"}
    from matplotlib import image

    assert image.imread(png).shape[1] > 600
    from openpyxl import load_workbook

    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["Top", "Cells", "Benchmarks", "About"]
    assert wb["Cells"].max_row == 1 + 18 and wb["Cells"].auto_filter.ref
    assert wb["Top"].freeze_panes == "A2"


def test_command_json_on_stdout(two_csvs):
    out, _err = sweep_cmd("--csv", str(two_csvs[0]), "--grid", "trigger_pct=0.03,0.05",
                          "--json", "--jobs", "1", "--no-progress", "--exact")
    doc = json.loads(out)
    assert doc["exact"] is True and [t["params"]["trigger_pct"] for t in doc["top"]] in (
        [0.03, 0.05], [0.05, 0.03])


@pytest.mark.parametrize("args, message", [
    (("--grid", "trigger=0.1"), "--grid: 'trigger' is not a strategy field"),
    (("--grid", "trigger_pct=0.1", "--metric", "calmar"), "--metric: 'calmar' is not a metric"),
    (("--grid", "trigger_pct=0.1,0.2", "--heatmap", "x.png"),
     "--heatmap: a heatmap needs a grid over two parameters"),
    (("--grid", "trigger_pct=0.1,0.2", "--guard-low", "2"), "--guard-low:"),
    (("--grid", "trigger_pct=0:1:1e-999999999"),  # was decimal.Overflow's traceback
     "--grid: 'trigger_pct=0:1:1e-999999999': the start, stop or step is too large"),
    (("--grid", "trigger_pct=0:1e5000:1"), "--grid: 'trigger_pct=0:1e5000:1' has more than "
                                            "1,000 values; at most 1,000"),
    ((), "--grid: give at least one grid"),
])
def test_command_errors_are_one_line(two_csvs, tmp_path, args, message):
    with pytest.raises(CommandError) as exc:
        sweep_cmd("--csv", str(two_csvs[0]), "--jobs", "1", "--no-progress", *args)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_command_needs_data():
    with pytest.raises(CommandError, match="give the data"):
        sweep_cmd("--grid", "trigger_pct=0.1")


def test_command_runs_on_the_dask_cluster_named_by_the_environment(two_csvs, monkeypatch):
    from distributed import LocalCluster

    args = ("--csv", str(two_csvs[0]), "--grid", "trigger_pct=0.02:0.06:0.02",
            "--grid", "guard_low=0.1,0.3", "--min-notional", "0", "--top", "2", "--json",
            "--no-progress")
    local = json.loads(sweep_cmd(*args, "--jobs", "1")[0])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        remote = json.loads(sweep_cmd(*args)[0])
    assert remote["workers"] == f"Dask cluster at {cluster.scheduler_address}"
    assert remote["results"] == local["results"] and remote["top"] == local["top"]


# What django.setup() (every manage.py command, every server worker) must not import: the REST
# framework's parsers, renderers and serializers, and what only an admin screen's view or action
# uses (the admin modules are imported at setup).
SETUP_LEAVES_OUT = (
    "rest_framework.serializers", "rest_framework.renderers", "rest_framework.parsers",
    "volbal.parsers", "requests", "numpy", "pandas", "matplotlib", "openpyxl",
    "positions.performance", "positions.picture", "positions.strategy.export.charts",
    "positions.strategy.backtest.engine", "positions.workflows.evaluation",
    "positions.research.services", "orders.services", "events.webhooks.services")


@pytest.mark.parametrize(("start", "left_out"), [
    ("", SETUP_LEAVES_OUT),
    # manage.py trade on the paper broker: no HTTP client, no broker SDK, no research code
    ("import positions.management.commands.trade",
     ("requests", "urllib3", "alpaca", "positions.marketdata.alpaca_http", "matplotlib",
      "openpyxl", "positions.performance", "positions.strategy.export.charts",
      "positions.research.services")),
], ids=["django.setup", "trade"])
def test_a_command_starts_without_the_rest_framework_serializers(start, left_out):
    """django.setup() (what every manage.py command pays before it runs) loads no REST framework
    parser, renderer or serializer: the research worker, which the admin imports, loads the
    request parser only where a job parses a stored request (docs/research.md#speed). Nor does
    it load what only an admin screen's view or action uses: numpy (the performance, the
    research code), the charts and the backtest code they draw from, matplotlib, openpyxl, the
    trade cycle's evaluation, the research jobs' services. A command's own module loads only
    what it runs (the trade command: the HTTP client only where a position trades at Alpaca)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (f"import sys, django; django.setup(); {start or 'pass'}; "
            f"print(sorted(m for m in sys.modules if m in {left_out!r}))")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="volbal.settings")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "[]"
