"""``manage.py walkforward`` (docs/strategy.md#research): its table, plot and files, its JSON
and its errors."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def test_command_table_plot_files(tmp_path):
    png, xlsx, cells = tmp_path / "wf.png", tmp_path / "wf.xlsx", tmp_path / "wf.csv"
    out, err = io.StringIO(), io.StringIO()
    call_command("walkforward", "--sample", "IBM", "--start", "2008-01-01", "--train", "1y",
                 "--test", "6m", "--grid", "trigger_pct=0.03,0.06", "--grid",
                 "guard_low=0.2,0.3", "--jobs", "1", "--plot", str(png), "--xlsx", str(xlsx),
                 "--out-csv", str(cells), stdout=out, stderr=err)
    text = out.getvalue()
    assert text.startswith("Walk-forward on IBM: 8 windows of train 1y then test 6m")
    # the sample ends a few weeks into a ninth test window: under half of 6m, dropped
    assert "The last window (test bars" in text and "less than half of 6m." in text
    assert "Stitched out of sample, against the benchmarks over the same span:" in text
    assert "Held mix" in text and "rebalancing premium" in text
    assert "2009-01-02..2009-07-01" in text  # 2008-01-02 + 1y, then 6 months
    # progress: each of the 8 windows' sweeps runs its 4 cells, then its top 3 again exact
    assert "cells 32/32, exact re-runs 24/24" in err.getvalue()
    from matplotlib import image

    assert image.imread(png).shape[0] > 800
    from openpyxl import load_workbook

    wb = load_workbook(xlsx)
    assert wb.sheetnames == ["Windows", "Daily"]
    ws = wb["Windows"]
    assert ws["D2"].value == dt.datetime(2009, 1, 2) and ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]][:7] == ["window", "train_start", "train_end", "test_start",
                                            "test_end", "trigger_pct", "guard_low"]
    assert ws.max_row == 1 + 8
    assert cells.read_text().count("\n") == 1 + 8


def test_command_json():
    out = io.StringIO()
    call_command("walkforward", "--sample", "MSFT", "--start", "2010-01-01", "--train", "250",
                 "--test", "250", "--grid", "trigger_pct=0.03,0.06", "--json", "--jobs", "1",
                 "--no-progress", stdout=out, stderr=io.StringIO())
    doc = json.loads(out.getvalue())
    # the third test window would hold the sample's last few bars, under half of 250: dropped
    assert doc["train"] == "250 bars" and len(doc["windows"]) == 2
    assert doc["note"].startswith("The last window (test bars ")
    assert doc["note"].endswith("is less than half of 250 bars.")
    oos = doc["out_of_sample"]
    assert set(oos["benchmarks"]) == {"held_mix", "stock_held", "fixed_mix"}
    assert oos["orders"][0]["kind"] == "opening"
    assert oos["orders"][0]["date"] == doc["windows"][0]["test_start"]


@pytest.mark.parametrize("args, message", [
    (("--train", "2x", "--test", "1y"), "--train '2x' is not a length"),
    (("--train", "30y", "--test", "1y"), "too short for one window"),
    (("--train", "1y", "--test", "1y", "--sample", "MSFT"), "a walk-forward runs on one series"),
    (("--train", "1y", "--test", "1y", "--grid", "guard_low=0:0.2:1e-999999999"),
     "--grid: 'guard_low=0:0.2:1e-999999999': the start, stop or step is too large"),
])
def test_command_errors(args, message):
    with pytest.raises(CommandError) as exc:
        call_command("walkforward", "--sample", "IBM", "--grid", "trigger_pct=0.03,0.05",
                     "--jobs", "1", "--no-progress", *args, stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert message in str(exc.value)
