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
    (["--portfolio", "IBM=0.6,MSFT=0.5"], "invalid_weights: The target weights sum to 1.1"),
    (["--portfolio", "IBM=0.4,IBM=0.4"], "--portfolio: IBM is given twice"),
    (["--portfolio", "IBM"], "--portfolio: 'IBM' is not NAME=WEIGHT"),
    (["--portfolio", "IBM=0.4", "--rebalance", "weekly"], "invalid_rebalance: rebalance must"),
    (["--portfolio", "IBM=0.4", "--rebalance", "band"],
     "invalid_rebalance: rebalance_band is required"),
    (["--portfolio", "NOPE=0.4"], "--ticker needs --start"),
])
def test_refusals(args, message):
    with pytest.raises(CommandError) as exc:
        backtest(*args)
    assert str(exc.value).startswith(message)
