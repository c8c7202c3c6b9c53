"""Exports write text as text: a cell a spreadsheet would run as a formula (=, +, -, @, tab,
carriage return first) is written with a leading apostrophe, in CSV and in xlsx."""

from __future__ import annotations

import csv
from decimal import Decimal

import numpy as np
import openpyxl
import pytest

from positions.strategy import rules
from positions.strategy.backtest import data, report
from positions.strategy.export import cells, tables


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1"])
def test_a_formula_leading_text_is_escaped(text):
    assert cells.cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-0.05", "+3", "Held mix", "", 1.5, -2, None,
                                   Decimal("-1")])
def test_numbers_and_plain_text_are_unchanged(value):
    assert cells.cell(value) == value


def _report(name):
    day0 = np.datetime64("2024-01-01", "D")
    prices = [100, 95, 90, 96, 104, 99, 92, 101]
    s = data.series_from_points([(str(day0 + i), p) for i, p in enumerate(prices)], name=name)
    return report.backtest(s, rules.Config(min_notional=Decimal(0)))


def test_the_backtest_exports_carry_no_formula(tmp_path):
    rep = _report("=cmd|' /C calc'!A0")
    path = tmp_path / "r.xlsx"
    tables.write_backtest_xlsx(rep, path)
    wb = openpyxl.load_workbook(path)
    texts = [c.value for ws in wb for r in ws.iter_rows() for c in r if isinstance(c.value, str)]
    assert texts
    assert not any(t.startswith(cells.FORMULA_LEADS) for t in texts)
    assert all(c.data_type != "f" for ws in wb for r in ws.iter_rows() for c in r)
    csv_path = tmp_path / "e.csv"
    tables.write_equity_csv(rep, csv_path)
    with open(csv_path, newline="", encoding="utf-8") as f:
        for line in csv.reader(f):
            for v in line:
                try:
                    float(v)
                except ValueError:
                    assert not v.startswith(cells.FORMULA_LEADS), v
