"""Long commands show a progress bar (tqdm) on stderr when it is a terminal, and nothing when
it is not (cron, pipes, CI)."""

from __future__ import annotations

import datetime as dt
import io
import sys
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self):
        return True


def import_prices(tmp_path) -> str:
    path = tmp_path / "prices.csv"
    path.write_text("ticker,price,ts\n" + "".join(
        f"ZIM,{100 + i},2024-03-{i + 1:02d}T16:00:00Z\n" for i in range(5)))
    out = StringIO()
    call_command("import_prices", str(path), "--batch", "2", stdout=out)
    return out.getvalue()


def test_import_prices_shows_a_bar_on_a_terminal(tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert import_prices(tmp_path).startswith("Imported 5 prices for ZIM")
    shown = terminal.getvalue()
    assert "import" in shown and "5/5" in shown and "price" in shown


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    assert import_prices(tmp_path).startswith("Imported 5 prices for ZIM")
    assert pipe.getvalue() == ""


def test_apply_split_shows_a_bar_on_a_terminal(make_position, monkeypatch):
    for _ in range(3):
        make_position(ticker="SPL")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = StringIO()
    call_command("apply_split", "SPL", "2", "--date", (dt.date.today() + dt.timedelta(days=30))
                 .isoformat(), stdout=out)
    assert out.getvalue().startswith("3 recorded")
    assert "split SPL" in terminal.getvalue() and "3/3" in terminal.getvalue()
