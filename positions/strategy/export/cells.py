"""Every text cell a CSV or xlsx export writes goes through :func:`cell`: a spreadsheet reads a
text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula (a
series name or a label from a file could carry one), so such a text is written with a leading
apostrophe and stays text. Numbers, dates and the like are written as they are; a text that is
itself a plain number ("-0.05") is not a formula and is left alone."""

from __future__ import annotations

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def cell(v):
    """``v`` as an export writes it: a text that a spreadsheet would run as a formula gets a
    leading apostrophe; anything else is unchanged."""
    if isinstance(v, str) and v.startswith(FORMULA_LEADS):
        try:
            float(v)
        except ValueError:
            return "'" + v
    return v


def row(values) -> list:
    """A row of cells (:func:`cell` on each)."""
    return [cell(v) for v in values]


def record(d: dict) -> dict:
    """A CSV record: :func:`cell` on each value."""
    return {k: cell(v) for k, v in d.items()}


def append(ws, values) -> None:
    """``ws.append(values)`` of an openpyxl sheet, each cell through :func:`cell`."""
    ws.append(row(values))
