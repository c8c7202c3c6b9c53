"""The returns' workbook and picture (positions/strategy/export, docs/returns.md)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal as D

from openpyxl import load_workbook

from positions.strategy.export import charts, tables

DAYS = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]


def test_the_workbook_holds_the_figures_and_the_daily_series():
    buffer = io.BytesIO()
    tables.write_returns_xlsx(buffer, summary=[
        ("Start value", D("1000")), ("Time-weighted return", D("0.09725")),
        ("Money-weighted return (annual)", None), ("why", "=HYPERLINK(1)")],
        daily=[(DAYS[0], D(1000), D(0), D(0)), (DAYS[1], D(1600), D(500), D("0.1")),
               (DAYS[2], D(1320), D(-200), None)])
    wb = load_workbook(buffer)
    summary = list(wb["Summary"].iter_rows(values_only=True))
    assert summary[0] == ("Figure", "Value")
    assert summary[2] == ("Time-weighted return", 0.09725)
    assert wb["Summary"]["B3"].number_format == "0.00%"
    assert summary[3] == ("Money-weighted return (annual)", None)
    assert summary[4][1] == "'=HYPERLINK(1)"  # a text is never run as a formula
    daily = list(wb["Daily"].iter_rows(values_only=True))
    assert daily[0] == tables.RETURNS_DAILY_HEADER
    assert [r[0].date() for r in daily[1:]] == DAYS  # dates stored as dates
    assert daily[2][1:] == (1600, 500, 0.1) and daily[3][3] is None


def test_the_picture_is_a_png_even_without_a_session():
    for days in (DAYS, []):
        buffer = io.BytesIO()
        charts.write_returns_plot(buffer, title="ZIM", days=days,
                                  values=[D(1000), D(1600), D(1320)][:len(days)],
                                  flows=[D(0), D(500), D(-200)][:len(days)],
                                  returns=[D(0), D("0.1"), None][:len(days)])
        assert buffer.getvalue().startswith(b"\x89PNG")
