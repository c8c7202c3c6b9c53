"""manage.py import_prices: a whole file or nothing, and every bad line is named."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from positions.models import Price

pytestmark = pytest.mark.django_db


UTC = dt.UTC
NY = ZoneInfo("America/New_York")

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,183.09,180.88,181.91,181.22,71983600
"""


def write(tmp_path, text: str, name: str = "prices.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(*args) -> str:
    out = StringIO()
    call_command("import_prices", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def stored():
    return [(p.ticker, p.price, p.ts) for p in Price.objects.order_by("ticker", "ts")]


def test_a_ticker_price_ts_file(tmp_path):
    path = write(tmp_path, "ticker,price,ts\n"
                           "zim,100.5,2024-03-01T16:00:00Z\n"
                           "ZIM,101,2024-03-04T16:00:00-05:00\n"
                           "AAPL,180.123456,2024-03-01\n"
                           "\n"
                           "AAPL,181,2024-03-02T15:30:00\n")
    out = run(path)
    assert out.strip() == f"Imported 4 prices for AAPL, ZIM from {path}."
    assert stored() == [
        ("AAPL", Decimal("180.123456"), dt.datetime(2024, 3, 1, 16, tzinfo=NY)),
        ("AAPL", Decimal("181"), dt.datetime(2024, 3, 2, 15, 30, tzinfo=UTC)),
        ("ZIM", Decimal("100.5"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC)),
        ("ZIM", Decimal("101"), dt.datetime(2024, 3, 4, 21, tzinfo=UTC)),
    ]


def test_a_yahoo_file_with_ticker_takes_the_close(tmp_path):
    path = write(tmp_path, YAHOO)
    out = run(path, "--ticker", "aapl")
    assert "Imported 3 prices for AAPL" in out
    # A date is that day's 16:00 close in the trading time zone.
    assert stored() == [
        ("AAPL", Decimal("185.64"), dt.datetime(2024, 1, 2, 21, tzinfo=UTC)),
        ("AAPL", Decimal("184.25"), dt.datetime(2024, 1, 3, 21, tzinfo=UTC)),
        ("AAPL", Decimal("181.91"), dt.datetime(2024, 1, 4, 21, tzinfo=UTC)),
    ]


def test_a_date_is_the_close_in_the_configured_trading_time_zone(tmp_path):
    path = write(tmp_path, YAHOO)
    with override_settings(VOLBAL_TRADING_TZ="Asia/Tokyo"):
        run(path, "--ticker", "TYO")
    assert Price.objects.order_by("ts").first().ts == dt.datetime(2024, 1, 2, 7, tzinfo=UTC)


def test_a_file_with_a_byte_order_mark_and_windows_line_ends(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffTicker,Price,TS\r\nZIM,10,2024-03-01T16:00:00Z\r\n".encode())
    run(str(path))
    assert stored() == [("ZIM", Decimal("10"), dt.datetime(2024, 3, 1, 16, tzinfo=UTC))]


def test_importing_again_replaces_the_same_ticker_and_time(tmp_path):
    run(write(tmp_path, YAHOO), "--ticker", "AAPL")
    changed = YAHOO.replace("185.64,184.94", "186.00,184.94")
    run(write(tmp_path, changed, "again.csv"), "--ticker", "AAPL")
    assert Price.objects.count() == 3
    assert Price.objects.order_by("ts").first().price == Decimal("186")


GOOD_HEAD = "ticker,price,ts\nZIM,100,2024-03-01\nZIM,101,2024-03-04\n"


@pytest.mark.parametrize("text, args, expected", [
    (GOOD_HEAD + "ZIM,1O2,2024-03-05\n", (), "line 4: price '1O2' is not a number"),
    (GOOD_HEAD + "ZIM,102\n", (), "line 4: too few columns"),
    (GOOD_HEAD + "ZIM,-3,2024-03-05\n", (), "line 4: price '-3' is not a positive number"),
    (GOOD_HEAD + "ZIM,0,2024-03-05\n", (), "line 4: price '0' is not a positive number"),
    (GOOD_HEAD + "ZIM,NaN,2024-03-05\n", (), "line 4: price 'NaN' is not a positive number"),
    (GOOD_HEAD + "ZIM,102,2024-13-05\n", (), "line 4: '2024-13-05' is not an ISO date or time"),
    (GOOD_HEAD + "ZIM,102,05/03/2024\n", (), "line 4: '05/03/2024' is not an ISO date or time"),
    (GOOD_HEAD + "ZIM,102,\n", (), "line 4: '' is not an ISO date or time"),
    (GOOD_HEAD + "1ZIM,102,2024-03-05\n", (), "line 4: ticker '1ZIM' is not valid"),
    (GOOD_HEAD + ",102,2024-03-05\n", (), "line 4: ticker '' is not valid"),
    (GOOD_HEAD + "ZIM,0.0000001,2024-03-05\n", (),
     "line 4: price '0.0000001' rounds to zero at 6 decimal places"),
    (GOOD_HEAD + "ZIM,1e20,2024-03-05\n", (), "line 4: price '1e20' is too large"),
    ("", (), "the file is empty"),
    ("ticker,price,ts\n", (), "the file has a header but no prices"),
    ("symbol,close,when\nZIM,1,2024-03-01\n", (), "line 1: expected columns"),
    (YAHOO, (), "a Date/Close file needs --ticker"),
    (YAHOO, ("--ticker", "7203.T"), "--ticker '7203.T' is not valid"),
    (YAHOO.replace("181.91", "null"), ("--ticker", "AAPL"), "line 4: price 'null'"),
])
def test_a_broken_file_is_refused_naming_the_problem_and_nothing_is_imported(
        tmp_path, text, args, expected):
    Price.objects.create(ticker="ZIM", price=1, ts=dt.datetime(2000, 1, 3, tzinfo=UTC))
    path = write(tmp_path, text)
    with pytest.raises(CommandError) as err:
        run(path, *args)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert message.endswith("nothing imported")
    assert Price.objects.count() == 1


def test_every_bad_row_is_named_and_nothing_is_imported(tmp_path):
    text = GOOD_HEAD + "ZIM,1O2,2024-03-05\nZIM,103,2024-03-06\nZIM,104\n1ZIM,105,2024-03-08\n"
    with pytest.raises(CommandError) as err:
        run(write(tmp_path, text))
    message = str(err.value)
    assert "3 bad rows:" in message
    for line in ("line 4: price '1O2' is not a number", "line 6: too few columns",
                 "line 7: ticker '1ZIM' is not valid"):
        assert line in message
    assert "line 5" not in message  # a good row
    assert message.endswith("nothing imported") and not Price.objects.exists()


def test_past_twenty_bad_rows_the_rest_are_counted(tmp_path):
    bad = "".join(f"ZIM,x{n},2024-03-05\n" for n in range(25))
    with pytest.raises(CommandError) as err:
        run(write(tmp_path, GOOD_HEAD + bad))
    message = str(err.value)
    assert "25 bad rows:" in message
    assert "line 4: price 'x0'" in message and "line 23: price 'x19'" in message
    assert "line 24:" not in message and "and 5 more bad rows" in message
    assert not Price.objects.exists()


def test_a_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "missing.csv"))


def test_a_file_that_is_not_utf8_is_a_command_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("ticker,price,ts\nZIM,100,2024-03-01\nZ\xc9,1,2024-03-01\n".encode("latin-1"))
    with pytest.raises(CommandError, match="nothing imported"):
        run(str(path))
    assert Price.objects.count() == 0


def test_a_large_file_in_batches(tmp_path):
    start = dt.date(2000, 1, 1)
    lines = ["Date,Close"] + [f"{start + dt.timedelta(days=i)},{100 + i % 10}.25"
                              for i in range(3000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    out = run(path, "--ticker", "ZIM", "--batch", "700")
    assert "Imported 3000 prices for ZIM" in out
    assert Price.objects.count() == 3000


@pytest.mark.parametrize("batch", ["0", "-5", "ten"])
def test_a_batch_size_below_one_is_refused(tmp_path, batch):
    path = write(tmp_path, YAHOO)
    with pytest.raises(CommandError, match="--batch"):
        run(path, "--ticker", "AAPL", "--batch", batch)
    assert Price.objects.count() == 0


def test_a_row_dated_in_the_future_is_refused_by_its_line(tmp_path):
    path = write(tmp_path, "ticker,price,ts\nZIM,100,2024-03-01\nZIM,101,2099-01-02\n")
    with pytest.raises(CommandError) as err:
        run(path)
    assert "line 3: ts 2099-01-02T16:00:00-05:00 is in the future" in str(err.value)
    assert "nothing imported" in str(err.value)
    assert Price.objects.count() == 0


# --------------------------------------------------------------------------------------------
# A bundled sample's prices (the backtest's series), under a ticker of one's own
# --------------------------------------------------------------------------------------------


def test_a_sample_s_closes_under_a_ticker_of_its_own():
    from positions.strategy.backtest import data

    out = run("--sample", "ibm", "--ticker", "paper", "--start", "2010-01-04",
              "--end", "2010-01-08")
    assert out.strip() == "Imported 5 prices for PAPER from sample IBM."
    series, _ = data.load_sample("IBM")
    week = series.between("2010-01-04", "2010-01-08")
    assert stored() == [
        ("PAPER", Decimal(repr(float(week.prices[i]))).quantize(Decimal("0.000001")),
         dt.datetime(2010, 1, 4 + i, 16, tzinfo=NY).astimezone(UTC)) for i in range(5)]
    assert Price.objects.filter(ticker="IBM").count() == 0

    # The next day then, as a paper position's prices would come (newer than the last).
    assert run("--sample", "IBM", "--ticker", "PAPER", "--start", "2010-01-11",
               "--end", "2010-01-11").strip() == "Imported 1 prices for PAPER from sample IBM."
    assert Price.objects.filter(ticker="PAPER").count() == 6


def test_a_whole_sample_under_its_own_name():
    assert run("--sample", "FB").strip() == "Imported 196 prices for FB from sample FB."
    first = Price.objects.filter(ticker="FB").order_by("ts").first()
    assert first.ts == dt.datetime(2012, 5, 18, 16, tzinfo=NY)


@pytest.mark.parametrize("args, message", [
    ((), "give a FILE or --sample TICKER"),
    (("prices.csv", "--sample", "IBM"), "give a FILE or --sample TICKER"),
    (("--sample", "ZZZ"), "--sample: unknown sample 'ZZZ': choose one of AAPL, FB, GOOG, IBM"),
    (("--sample", "IBM", "--start", "2020-01-01"), "--sample: no bars between 2020-01-01"),
    (("--sample", "IBM", "--ticker", "9x"), "sample IBM: --ticker '9x' is not valid"),
    (("prices.csv", "--start", "2010-01-01"), "--start and --end go with --sample"),
])
def test_sample_mistakes_import_nothing(args, message):
    with pytest.raises(CommandError) as exc:
        run(*args)
    assert str(exc.value).startswith(message)
    assert Price.objects.count() == 0
