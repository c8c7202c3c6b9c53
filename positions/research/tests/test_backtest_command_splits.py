"""manage.py backtest --splits: an unadjusted series split 2-for-1 is no crash to buy into."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

# 100 for three days, then the same company after a 2-for-1 split: 50.
PRICES = "Date,Close\n" + "".join(f"2024-01-{d:02d},{p}\n" for d, p in (
    (2, 100), (3, 100), (4, 100), (5, 50), (8, 50), (9, 50)))


def backtest(*args) -> dict:
    out = io.StringIO()
    call_command("backtest", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


@pytest.fixture
def files(tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)
    splits = tmp_path / "splits.csv"
    splits.write_text("date,ratio\n2024-01-05,2\n")
    return prices, splits


@pytest.mark.parametrize("flt", [(), ("--float",)])
def test_split_keeps_the_value_and_fires_no_trigger(files, flt):
    prices, splits = files
    naive = backtest("--csv", str(prices), "--commission-rate", "0", *flt)
    assert [o["kind"] for o in naive["orders"]][:2] == ["opening", "buy_trigger"]
    doc = backtest("--csv", str(prices), "--splits", str(splits), "--commission-rate", "0",
                   *flt)
    # the opening buys 50 shares at 100 (half of 10000); after the split 100 shares at 50
    assert [(o["kind"], o["qty"]) for o in doc["orders"]] == [("opening", 50)]
    assert doc["metrics"]["final_value"] == 10000
    assert doc["benchmarks"]["stock_held"]["final_value"] == 10000


def test_whole_shares_get_cash_in_lieu(files, tmp_path):
    prices, _ = files
    splits = tmp_path / "three_for_two.csv"
    splits.write_text("date,ratio\n2024-01-05,1.5\n")
    flat = tmp_path / "flat.csv"  # 100, then 66.666667 after a 3-for-2 split
    flat.write_text(PRICES.replace(",50\n", ",66.666667\n"))
    doc = backtest("--csv", str(flat), "--splits", str(splits), "--commission-rate", "0",
                   "--fractional", "false", "--start-weight", "0.4999")
    # opening: 49 whole shares at 100 (4900); split: 73.5 -> 73 shares and half a share at
    # 100 / 1.5 = 66.666667 -> 33.333333 in cash: 5100 + 33.333333 cash, 73 x 66.666667
    assert [o["kind"] for o in doc["orders"]] == ["opening"]
    assert doc["metrics"]["final_value"] == pytest.approx(
        5100 + 33.333333 + 73 * 66.666667, abs=1e-6)


def test_bad_splits_file_is_one_line(files, tmp_path):
    prices, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("date,ratio\n2024-01-05,1\n")
    with pytest.raises(CommandError, match="ratio 1 changes nothing"):
        backtest("--csv", str(prices), "--splits", str(bad))


@pytest.mark.parametrize("flt", [(), ("--float",)])
def test_a_one_for_three_split_is_exact_as_in_the_service(tmp_path, flt):
    # 100 for three days, then the same company after a 1-for-3 reverse split: 300
    prices = tmp_path / "reverse.csv"
    prices.write_text(PRICES.replace(",50\n", ",300\n"))
    splits = tmp_path / "one_for_three.csv"
    splits.write_text("date,ratio\n2024-01-05,1:3\n")
    doc = backtest("--csv", str(prices), "--splits", str(splits), "--commission-rate", "0",
                   "--fractional", "false", "--start-weight", "0.3", *flt)
    # opening: 30 whole shares at 100; 1:3 makes exactly 10 (rules.apply_split, as a live
    # position: no share lost to a rounded ratio, nothing in lieu): 7000 + 10 x 300
    assert [(o["kind"], o["qty"]) for o in doc["orders"]] == [("opening", 30)]
    assert doc["metrics"]["final_value"] == 10000
    bad = tmp_path / "inexact.csv"
    bad.write_text("date,ratio\n2024-01-05,0.33333333\n")
    with pytest.raises(CommandError, match="new:old"):
        backtest("--csv", str(prices), "--splits", str(bad))
