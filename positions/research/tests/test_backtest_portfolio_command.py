"""``manage.py backtest --portfolio``: the portfolio backtest's JSON document and table, and its
refusals (docs/backtests.md#portfolio-backtests)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command


def backtest(*args) -> str:
    out = io.StringIO()
    call_command("backtest", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_quarterly_portfolio_json():
    doc = json.loads(backtest("--portfolio", "IBM=0.4,MSFT=0.4", "--rebalance", "quarterly",
                              "--cash", "100000", "--start", "2010-01-01", "--json"))
    assert doc["start"] == "2010-01-04" and doc["end"] == "2013-03-01"
    assert [h["name"] for h in doc["holdings"]] == ["IBM", "MSFT"]
    assert [h["cash"] for h in doc["holdings"]] == [40000, 40000]
    assert doc["metrics"]["rebalances"] == len(doc["rebalances"]) == 12
    assert doc["rebalances"][0]["date"] == "2010-04-01"
    assert set(doc["benchmarks"]) == {"held", "fixed_mix"}
    # the cash the rebalances moved out of the unallocated cash is what the holdings got
    free = Decimal(20000)
    for r in doc["rebalances"]:
        free -= sum(Decimal(str(m)) for m in r["moves"].values())
        assert Decimal(str(r["free_cash"])) == free
    final = Decimal(str(doc["metrics"]["final_free_cash"])) + sum(
        Decimal(str(h["final_value"])) for h in doc["holdings"])
    assert final == Decimal(str(doc["metrics"]["final_value"]))


def test_table():
    out = backtest("--portfolio", "IBM=0.5,AAPL=0.5", "--start", "2012-01-01")
    assert "rebalance never" in out and "Held at weights" in out and "Fixed mix" in out
    assert "0 rebalances" in out


@pytest.mark.parametrize("args, message", [
    # the API's parser and codes (research.requests.portfolio)
    (["--portfolio", "IBM=0.6,MSFT=0.5"], "invalid_weights: The target weights sum to 1.1"),
    (["--portfolio", "IBM=0.4,ibm=0.4"],
     "duplicate_holding: portfolio.holdings[1]: IBM is already a holding"),
    (["--portfolio", "IBM"], "validation_error: 'IBM' is not NAME=WEIGHT"),
    (["--portfolio", "IBM=x"], "invalid_weights: portfolio.holdings[0].weight is not a number"),
    (["--portfolio", "IBM=0.4", "--rebalance", "weekly"], "invalid_rebalance: rebalance must"),
    (["--portfolio", "IBM=0.4", "--rebalance", "band"],
     "invalid_rebalance: rebalance_band is required"),
    (["--portfolio", "NOPE=0.4"], "--start: a series by ticker needs start"),
    (["--portfolio", "IBM=0.4", "--start", "2020-01-01"],
     "validation_error: portfolio.holdings[0] (IBM): no bars between 2020-01-01"),
])
def test_refusals(args, message):
    with pytest.raises(CommandError) as exc:
        backtest(*args)
    assert str(exc.value).startswith(message)


def test_plot_and_workbook_hold_the_documents_figures(tmp_path):
    # openpyxl: reads the workbook back
    import openpyxl

    png, xlsx = tmp_path / "p.png", tmp_path / "p.xlsx"
    args = ["--portfolio", "IBM=0.4,MSFT=0.3", "--rebalance", "quarterly", "--cash", "100000",
            "--start", "2011-01-01"]
    doc = json.loads(backtest(*args, "--json"))
    out = backtest(*args, "--plot", str(png), "--xlsx", str(xlsx))
    assert f"Wrote the plot to {png}" in out and f"Wrote the workbook to {xlsx}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["Summary", "Rebalances", "Daily"]
    summary = {r[4]: r[1:4] for r in wb["Summary"].iter_rows(values_only=True)
               if r[0] and r[3] is not None and isinstance(r[4], str)}
    assert summary["total_return"] == pytest.approx(
        (doc["metrics"]["total_return"], doc["benchmarks"]["held"]["total_return"],
         doc["benchmarks"]["fixed_mix"]["total_return"]), abs=1e-6)
    rows = list(wb["Summary"].iter_rows(values_only=True))
    holdings = {r[0]: r for r in rows if r[0] in ("IBM", "MSFT")}
    for h in doc["holdings"]:
        assert holdings[h["name"]][5] == pytest.approx(h["contribution"], abs=1e-6)
    reb = list(wb["Rebalances"].iter_rows(values_only=True))
    assert reb[0] == ("date", "move IBM", "move MSFT", "unallocated cash", "turnover")
    assert len(reb) - 1 == len(doc["rebalances"]) == doc["metrics"]["rebalances"]
    first = doc["rebalances"][0]
    assert reb[1][0].date().isoformat() == first["date"]
    assert reb[1][1:4] == (first["moves"]["IBM"], first["moves"]["MSFT"], first["free_cash"])
    assert sum(r[4] for r in reb[1:]) == pytest.approx(doc["metrics"]["rebalance_turnover"])
    daily = list(wb["Daily"].iter_rows(values_only=True))
    assert daily[0][:4] == ("date", "portfolio", "held", "fixed_mix")
    assert len(daily) - 1 == doc["bars"]
    assert daily[-1][1] == pytest.approx(doc["metrics"]["final_value"], abs=1e-5)
    # the last contributions are the holdings' contributions
    assert daily[-1][-2:] == pytest.approx([h["contribution"] for h in doc["holdings"]],
                                           abs=1e-6)


def test_equity_csv_is_refused_for_a_portfolio(tmp_path):
    with pytest.raises(CommandError, match="--equity-csv: a portfolio's daily series"):
        backtest("--portfolio", "IBM=0.4", "--equity-csv", str(tmp_path / "e.csv"))


def test_a_run_shorter_than_annualising_needs_leaves_the_yearly_figures_out(tmp_path):
    # openpyxl: reads the workbook back
    import openpyxl

    args = ["--portfolio", "IBM=0.5,MSFT=0.5", "--rebalance", "monthly", "--start",
            "2013-01-01"]
    doc = json.loads(backtest(*args, "--json"))
    assert doc["bars"] == 41
    for m in (doc["metrics"], *doc["benchmarks"].values()):
        assert m["cagr"] is m["volatility"] is m["sharpe"] is m["sortino"] is None
        assert m["total_return"] is not None and m["max_drawdown"] is not None
    assert doc["metrics"]["rebalance_turnover_per_year"] is None
    assert doc["metrics"]["rebalance_turnover"] > 0
    assert len(doc["notes"]) == 1 and "left out (null)" in doc["notes"][0]
    out = backtest(*args, "--xlsx", str(tmp_path / "s.xlsx"))
    assert "CAGR                              n/a" in out and "Note: CAGR, volatility" in out
    rows = list(openpyxl.load_workbook(tmp_path / "s.xlsx")["Summary"].iter_rows(
        values_only=True))
    cagr = next(r for r in rows if r[0] == "CAGR")
    assert cagr[1:4] == (None, None, None)
    assert any(str(r[0]).startswith("Note: CAGR") for r in rows)
    # a run long enough keeps them, with no note
    doc = json.loads(backtest("--portfolio", "IBM=0.5,MSFT=0.5", "--start", "2012-01-01",
                              "--json"))
    assert doc["metrics"]["cagr"] is not None and doc["notes"] == []
