"""``manage.py backtest``: its errors, the --json document, the files it writes, and the fill
mode it shares with ``POST /v1/backtests``."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from django.core.management import CommandError, call_command

from positions.strategy import rules
from positions.strategy.backtest import data, engine, metrics, report

# Three days of 5-minute bars: a daily swing of +-6 % around 100, starting at 100.
MINUTES = "Date,Close\n" + "".join(
    f"2024-01-0{d} {9 + m // 60:02d}:{m % 60:02d}:00,"
    f"{100 * (1 + 0.06 * math.sin(2 * math.pi * m / 390)):.2f}\n"
    for d in (2, 3, 4) for m in range(0, 390, 5))


def backtest(*args) -> str:
    out = io.StringIO()
    call_command("backtest", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def error_of(*args) -> str:
    with pytest.raises(CommandError) as exc:
        backtest(*args)
    msg = str(exc.value)
    assert "\n" not in msg  # one line
    return msg


@pytest.fixture
def minutes(tmp_path):
    path = tmp_path / "minutes.csv"
    path.write_text(MINUTES)
    return path


def test_json_document_shape():
    doc = json.loads(backtest("--sample", "IBM", "--json"))
    assert set(doc) == {"metrics", "buy_and_hold", "benchmarks", "attribution", "notes",
                        "orders"}
    assert list(doc["metrics"]) == list(metrics.METRIC_NAMES)
    assert list(doc["buy_and_hold"]) == list(metrics.METRIC_NAMES)
    assert list(doc["benchmarks"]) == ["held_mix", "stock_held", "fixed_mix"]
    for bench in doc["benchmarks"].values():
        assert list(bench) == list(metrics.METRIC_NAMES)
    assert doc["benchmarks"]["held_mix"] == doc["buy_and_hold"]
    att = doc["attribution"]
    assert att["excess_over_held_mix"] == pytest.approx(
        att["rebalancing_premium"] + att["trigger_timing"], abs=2e-6)
    assert att["strategy_return"] == doc["metrics"]["total_return"]
    assert doc["notes"] == []  # thirteen years: everything annualised
    first = doc["orders"][0]
    assert set(first) == {"date", "side", "qty", "price", "commission", "kind"}
    assert (first["date"], first["side"], first["kind"]) == ("2000-03-01", "BUY", "opening")
    assert {o["kind"] for o in doc["orders"][1:]} <= {"buy_trigger", "sell_trigger",
                                                     "guardrail_rebalance"}
    m = doc["metrics"]
    assert m["buys"] + m["sells"] == len(doc["orders"])
    assert doc["buy_and_hold"]["buys"] == 1 and doc["buy_and_hold"]["sells"] == 0
    assert m["dividends"] > 0 and doc["buy_and_hold"]["dividends"] > 0
    for k, v in m.items():
        assert isinstance(v, (int, float)), k


def test_options_reach_the_strategy(minutes):
    base = json.loads(backtest("--csv", str(minutes), "--json", "--min-notional", "0"))
    wide = json.loads(backtest("--csv", str(minutes), "--json", "--min-notional", "0",
                               "--trigger-pct", "0.05"))
    assert base["orders"] != wide["orders"]
    for doc, tau in ((base, 0.03), (wide, 0.05)):
        orders = doc["orders"]
        for prev, o in zip(orders[:-1], orders[1:], strict=True):  # anchor: the last fill
            if o["kind"].endswith("_trigger"):
                move = o["price"] / prev["price"] - 1
                assert abs(move) >= tau - 1e-9
    whole = json.loads(backtest("--csv", str(minutes), "--json", "--fractional", "false",
                                "--cash", "20000", "--start-weight", "0.3",
                                "--slippage-bps", "10", "--sizing", "original",
                                "--max-orders-per-day", "1", "--qty-step", "none"))
    assert all(float(o["qty"]).is_integer() for o in whole["orders"])
    assert whole["orders"][0]["price"] == pytest.approx(100.1)  # 10 bps worse than 100.0
    days = [o["date"][:10] for o in whole["orders"]]
    assert len(days) == len(set(days))  # at most one order a day
    assert whole["orders"][0]["date"] == "2024-01-02T09:00:00"


def test_float_option_agrees(minutes):
    a = json.loads(backtest("--csv", str(minutes), "--json"))
    b = json.loads(backtest("--csv", str(minutes), "--json", "--float"))
    assert a["metrics"]["final_value"] == pytest.approx(b["metrics"]["final_value"], abs=0.01)
    assert len(a["orders"]) == len(b["orders"])


def test_start_end_and_dividends(tmp_path):
    divs = tmp_path / "divs.csv"
    divs.write_text("ex_date,pay_date,dps\n2010-02-08,2010-03-10,0.55\n")
    doc = json.loads(backtest("--sample", "IBM", "--start", "2010-01-01", "--end",
                              "2010-12-31", "--dividends", str(divs), "--json"))
    assert doc["orders"][0]["date"] == "2010-01-04"
    assert all(o["date"] < "2011" for o in doc["orders"])
    held = doc["buy_and_hold"]["final_qty"]
    assert doc["buy_and_hold"]["dividends"] == pytest.approx(round(held * 0.55 * 0.75, 6),
                                                             abs=1e-6)


def test_table_on_a_terminal():
    out = backtest("--sample", "MSFT")
    assert "Strategy" in out and "Buy & hold" not in out
    header = next(line for line in out.splitlines() if "Strategy" in line and "Held" in line)
    assert header.split() == ["Strategy", "Held", "mix", "Stock", "held", "Fixed", "mix",
                              "(monthly)"]
    assert "rebalancing premium" in out and "trigger's timing" in out
    for label in ("Total return", "CAGR", "Sharpe", "Max drawdown", "Turnover", "Final value"):
        assert label in out
    assert out.startswith("Backtest of MSFT, 2000-03-01 to 2013-03-01: 3,270 daily bars")


def test_plot_xlsx_and_equity_csv_open(tmp_path):
    png, xlsx, eq = tmp_path / "ibm.png", tmp_path / "ibm.xlsx", tmp_path / "eq.csv"
    out = backtest("--sample", "IBM", "--plot", str(png), "--xlsx", str(xlsx),
                   "--equity-csv", str(eq))
    assert f"Wrote the plot to {png}" in out
    from matplotlib import image

    img = image.imread(png)
    assert img.shape[0] > 800 and img.shape[1] > 1000
    from openpyxl import load_workbook

    wb = load_workbook(xlsx, read_only=True)
    assert wb.sheetnames == ["Summary", "Orders", "Daily"]
    orders = list(wb["Orders"].iter_rows(values_only=True))
    assert orders[0] == ("date", "side", "qty", "price", "notional", "commission", "kind")
    assert orders[1][1:2] == ("BUY",) and orders[1][6] == "opening"
    daily = list(wb["Daily"].iter_rows(values_only=True))
    assert len(daily) == 3270 + 1
    summary = [r for r in wb["Summary"].iter_rows(values_only=True) if r and r[0]]
    assert any(r[0] == "Total return" and isinstance(r[1], float) for r in summary)
    with open(eq, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3270 and rows[0]["date"] == "2000-03-01"
    assert float(rows[-1]["equity"]) > 0


def test_xlsx_dates_are_dates_headers_frozen_tables_filtered(tmp_path):
    import datetime as dt

    from openpyxl import load_workbook

    xlsx = tmp_path / "ibm.xlsx"
    backtest("--sample", "IBM", "--start", "2010-01-01", "--end", "2010-12-31", "--xlsx",
             str(xlsx))
    wb = load_workbook(xlsx)
    orders, days, summary = wb["Orders"], wb["Daily"], wb["Summary"]
    assert orders["A2"].value == dt.datetime(2010, 1, 4) and orders["A2"].is_date
    assert days["A2"].value == dt.datetime(2010, 1, 4) and days["A2"].is_date
    assert days["A2"].number_format == "yyyy-mm-dd"
    assert orders.freeze_panes == "A2" and days.freeze_panes == "B2"
    assert orders.auto_filter.ref == f"A1:G{orders.max_row}"
    assert days.auto_filter.ref == f"A1:L{days.max_row}"
    assert [c.value for c in days[1]] == ["date", "close", "equity", "held_mix", "stock_held",
                                          "fixed_mix", "weight", "qty", "cash", "receivable",
                                          "anchor", "drawdown"]
    header = next(r for r in summary.iter_rows() if r[0].value == "Metric")[0].row
    assert [c.value for c in summary[header]][:6] == [
        "Metric", "Strategy", "Held mix", "Stock held", "Fixed mix (monthly)", "Key"]
    assert summary.freeze_panes == f"B{header + 1}"  # the header and the lines above it
    assert summary.auto_filter.ref.startswith(f"A{header}:F")
    labels = [r[0].value for r in summary.iter_rows()]
    assert {"Rebalancing premium (fixed - held mix)", "Trigger's timing (strategy - fixed mix)",
            "Dividends received", "Commissions paid"} <= set(labels)


def test_a_short_run_leaves_the_annualised_figures_out_everywhere(tmp_path):
    from openpyxl import load_workbook

    xlsx = tmp_path / "short.xlsx"
    args = ("--sample", "IBM", "--start", "2010-01-04", "--end", "2010-01-08")
    doc = json.loads(backtest(*args, "--json"))
    assert doc["metrics"]["cagr"] is None and doc["metrics"]["sharpe"] is None
    assert doc["notes"] == ["CAGR, volatility, Sharpe, Sortino and turnover are left out "
                            "(null): the run covers 4 calendar days and 5 bars; annualising "
                            "needs at least 60 days and 20 bars."]
    out = backtest(*args, "--xlsx", str(xlsx))
    assert "Note: " + doc["notes"][0] in out
    cagr = next(line for line in out.splitlines() if line.startswith("CAGR"))
    assert cagr.split()[1:] == ["n/a"] * 4
    rows = list(load_workbook(xlsx)["Summary"].iter_rows(values_only=True))
    assert ("Note: " + doc["notes"][0],) == next(r[:1] for r in rows if r[0] and
                                                  str(r[0]).startswith("Note"))
    assert next(r for r in rows if r[0] == "CAGR")[1:5] == (None,) * 4


def test_json_keeps_stdout_clean_when_writing_files(tmp_path):
    eq = tmp_path / "g.csv"
    out = backtest("--sample", "GOOG", "--json", "--equity-csv", str(eq))
    doc = json.loads(out)
    # the daily series is written all the same, and it is the run the document describes
    with open(eq, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(report.DAILY_COLUMNS)
    assert list(rows[0])[:6] == ["date", "close", "equity", "held_mix", "stock_held", "fixed_mix"]
    assert rows[0]["date"] == "2004-08-19" and rows[-1]["date"] == "2013-03-01"
    assert len(rows) == 2148  # GOOG's bundled daily closes
    final = doc["metrics"]
    assert float(rows[-1]["equity"]) == final["final_value"]
    assert float(rows[-1]["qty"]) == final["final_qty"]
    assert float(rows[-1]["cash"]) == final["final_cash"]


def test_intraday_plot(tmp_path, minutes):
    png = tmp_path / "m.png"
    backtest("--csv", str(minutes), "--plot", str(png), "--min-notional", "0")
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 1000


@pytest.mark.parametrize("text,fragment", [
    ("Day,Close\n2024-01-02,1\n", "no Date column (found: Day, Close)"),
    ("Date,Last\n2024-01-02,1\n", "no Close column (found: Date, Last)"),
    ("Date,Close\n2024-01-03,1\n2024-01-02,1\n", "line 3: times are not in ascending order"),
    ("Date,Close\n2024-01-02,1\n2024-01-02,1\n", "line 3: duplicate time 2024-01-02"),
    ("Date,Close\n2024-01-02,1\n2024-01-03,0\n", "the price must be a positive number, not 0"),
    ("Date,Close\n2024-01-02,1\n2024-01-03,-5\n", "the price must be a positive number, not -5"),
    ("Date,Close\n", "no rows after the header"),
])
def test_bad_data_is_one_clear_line(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert fragment in error_of("--csv", str(path))


def test_empty_range():
    msg = error_of("--sample", "IBM", "--start", "2020-01-01")
    assert msg.startswith("no bars between 2020-01-01 and the end (the data runs from "
                          "2000-03-01 to 2013-03-01)")


@pytest.mark.parametrize("args,message", [
    (["--sample", "IBM", "--trigger-pct", "3"],
     "--trigger-pct: trigger_pct must be greater than 0 and less than 1."),
    (["--sample", "IBM", "--guard-low", "0.8"],
     "--guard-low: guard_low (0.8) must be less than guard_high (0.75)."),
    (["--sample", "IBM", "--sizing", "kelly"],
     "--sizing: sizing must be one of: proportional, original, fixed_fraction."),
    (["--sample", "IBM", "--fractional", "maybe"], "--fractional: 'maybe' is not true or false"),
    (["--sample", "IBM", "--max-orders-per-day", "x"],
     "--max-orders-per-day: 'x' is not a whole number"),
    (["--sample", "IBM", "--cash", "-1"], "--cash: cash must be a number greater than 0."),
    (["--sample", "IBM", "--start-weight", "2"],
     "--start-weight: start_weight must be between 0 and 1."),
    (["--sample", "IBM", "--min-notional", "ten"], "--min-notional: 'ten' is not a number"),
    (["--sample", "XYZ"], "unknown sample 'XYZ': choose one of AAPL, FB, GOOG, IBM, MSFT"),
    ([], "give the data: --csv FILE, --sample TICKER or --ticker TICKER"),
])
def test_bad_options_are_one_clear_line(args, message):
    assert error_of(*args) == message


def test_missing_files(tmp_path):
    assert "No such file" in error_of("--csv", str(tmp_path / "none.csv"))
    assert "No such file" in error_of("--sample", "IBM", "--dividends", str(tmp_path / "d.csv"))
    assert "No such file" in error_of("--sample", "IBM", "--plot",
                                      str(tmp_path / "no" / "dir" / "x.png"))


def test_progress_bar_only_on_a_terminal(monkeypatch):
    from positions.research.management.commands.backtest import Command

    cmd = Command()
    assert cmd._progress(10**6) == (None, None)  # pytest's stderr is not a TTY

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    progress, bar = cmd._progress(10**6)
    assert progress is not None
    progress(500_000)
    bar.close()
    assert "Backtest" in tty.getvalue()
    assert cmd._progress(1000) == (None, None)  # short runs: no bar


def test_numbers_past_exact_arithmetic_are_one_clear_line(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("Date,Close\n2024-01-02,100\n2024-01-03,1e22\n2024-01-04,1e23\n")
    assert "too large for exact decimal arithmetic" in error_of("--csv", str(path))


def test_float_mode_with_a_large_account_agrees_with_the_exact_run(tmp_path):
    """At 10^10 of cash a float sum can pass where the cash left, rounded to 6 places as the
    fill rounds it, is below zero: the float run must still buy what the exact run buys."""
    path = tmp_path / "big.csv"
    path.write_text("Date,Close\n2024-01-02,260.490224\n2024-01-03,247.4657\n"
                    "2024-01-04,259.839\n")
    args = ("--csv", str(path), "--cash", "1e10", "--start-weight", "1", "--commission-rate",
            "0.001", "--json")
    exact = json.loads(backtest(*args))
    fast = json.loads(backtest(*args, "--float"))
    assert [o["side"] for o in fast["orders"]] == [o["side"] for o in exact["orders"]]
    for f, e in zip(fast["orders"], exact["orders"], strict=True):  # to the cent
        assert f["qty"] * f["price"] == pytest.approx(e["qty"] * e["price"], abs=0.01)
    assert fast["metrics"]["final_value"] == pytest.approx(exact["metrics"]["final_value"],
                                                           abs=0.01)
    assert exact["metrics"]["final_cash"] >= 0


def test_the_header_counts_the_dividends_inside_the_range():
    out = backtest("--sample", "IBM", "--start", "2005-01-01", "--end", "2006-12-31")
    # IBM pays quarterly: eight ex-dates in 2005-2006
    assert out.splitlines()[0].endswith("503 daily bars, 8 dividends")


@pytest.mark.django_db
def test_the_command_and_the_api_take_the_fill_mode(capsys, client):
    call_command("backtest", "--sample", "IBM", "--start", "2010-01-01", "--fill", "next_bar",
                 "--json")
    doc = json.loads(capsys.readouterr().out)
    series, dividends = data.load_sample("IBM")
    run = engine.run(series.between("2010-01-01", None), rules.Config(),
                     engine.Setup(fill="next_bar"), dividends)
    assert len(doc["orders"]) == len(run.orders)
    assert [o["qty"] for o in doc["orders"]] == [float(o.qty) for o in run.orders]

    body = {"prices": [{"ts": f"2024-01-0{i + 1}", "price": p}
                       for i, p in enumerate([100, 96, 95, 99, 100])],
            "commission_rate": 0, "min_notional": 0, "guard_low": 0, "guard_high": 1,
            "fill": "next_bar"}
    r = client.post("/v1/backtests", json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.content
    assert [(o["date"][:10], o["side"], o["price"]) for o in r.json()["orders"]] == [
        ("2024-01-01", "BUY", 100), ("2024-01-03", "BUY", 95), ("2024-01-05", "SELL", 100)]
    r = client.post("/v1/backtests", json.dumps({**body, "fill": "later"}),
                    content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"] == "validation_error"
    assert "fill" in r.json()["fields"]
