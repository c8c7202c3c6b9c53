"""Backtest inputs: CSV files (three readers that must agree), posted points, dividends and the
bundled samples with their derived dividends."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from positions.strategy.backtest import data

D = Decimal

YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.149994,188.440002,183.889999,185.639999,184.532089,82488700
2024-01-03,184.220001,185.880005,183.429993,184.250000,183.150391,58414500
2024-01-04,182.149994,183.089996,180.880005,181.910004,180.824356,71983600
"""


def write(tmp_path, text, name="prices.csv", mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_yahoo_download_reads_the_close(tmp_path):
    s = data.load_csv(write(tmp_path, YAHOO))
    assert list(s.prices) == [185.639999, 184.25, 181.910004]
    assert [s.label(i) for i in range(3)] == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert not s.intraday
    assert s.name == "prices"


def test_rows_without_a_price_are_skipped(tmp_path):
    text = YAHOO.replace("2024-01-03,184.220001,185.880005,183.429993,184.250000,183.150391,",
                         "2024-01-03,null,null,null,null,null,")
    s = data.load_csv(write(tmp_path, text))
    assert [s.label(i) for i in range(len(s))] == ["2024-01-02", "2024-01-04"]


def test_column_names_are_case_insensitive_and_any_order(tmp_path):
    s = data.load_csv(write(tmp_path, "CLOSE,volume,DATE\n10.5,1,2024-01-02\n11,2,2024-01-03\n"))
    assert list(s.prices) == [10.5, 11.0]


@pytest.mark.parametrize("variant", ["crlf", "quoted", "bom", "blank_line", "no_final_newline"])
def test_unusual_files_take_the_slower_readers_and_agree(tmp_path, variant):
    text = "Date,Close\n2024-01-02 09:30:00,100.25\n2024-01-02 09:31:00,100.5\n"
    raw = text.encode()
    if variant == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    elif variant == "quoted":
        raw = b'"Date","Close"\n"2024-01-02 09:30:00","100.25"\n"2024-01-02 09:31:00",100.5\n'
    elif variant == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif variant == "blank_line":
        raw = raw.replace(b"00,100.25\n", b"00,100.25\n\n")
    elif variant == "no_final_newline":
        raw = raw.rstrip(b"\n")
    s = data.load_csv(write(tmp_path, raw, mode="wb"))
    assert list(s.prices) == [100.25, 100.5]
    assert [s.label(i) for i in range(2)] == ["2024-01-02T09:30:00", "2024-01-02T09:31:00"]


def _slow(path):
    header = path.read_text().splitlines()[0].split(",")
    di = [h.lower() for h in header].index("date")
    ci = [h.lower() for h in header].index("close")
    times, prices, _ = data._read_csv_slow(path, di, ci, len(header))
    wall, _ = data.parse_times(times)
    return wall, prices


price_text = st.one_of(
    st.decimals(min_value=D("0.01"), max_value=D("99999"), places=2).map(str),
    st.integers(1, 10**9).map(str),
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 9)).map(
        lambda t: f"{t[0]}.{t[1]:0{t[2]}d}"[: 16]),
    st.floats(0.001, 1e6).map(lambda x: f"{x:.6f}"),
    st.just("007.50"),
    st.just(".5"),
    st.just("5."),
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(prices=st.lists(price_text, min_size=1, max_size=40),
       fmt=st.sampled_from(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
       extra=st.booleans(), block=st.sampled_from([None, 64]))
def test_plain_reader_equals_the_csv_module(tmp_path_factory, prices, fmt, extra, block):
    # Every price text the fast reader accepts must give the very float float() gives.
    prices = [p for p in prices if float(p) > 0]
    if not prices:
        return
    start = dt.datetime(2020, 1, 1, 9, 30)
    step = dt.timedelta(days=1) if fmt == "%Y-%m-%d" else dt.timedelta(minutes=1)
    lines = ["Open,Date,Close" if extra else "Date,Close"]
    for i, p in enumerate(prices):
        t = (start + i * step).strftime(fmt)
        lines.append(f"1,{t},{p}" if extra else f"{t},{p}")
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    saved = data._BLOCK
    try:
        data._BLOCK = block or saved  # several blocks, even for a small file
        fast = data.load_csv(path)
    finally:
        data._BLOCK = saved
    wall, expect = _slow(path)
    assert np.array_equal(fast.prices, np.array([float(p) for p in prices]))
    assert np.array_equal(fast.prices, expect)
    assert np.array_equal(fast.times, wall)


def test_utc_offsets_keep_the_local_day_and_sort_on_absolute_time(tmp_path):
    text = ("Date,Close\n2024-03-10T23:30:00-05:00,10\n2024-03-11T00:31:00-04:00,11\n"
            "2024-03-11T09:30:00-04:00,12\n")
    s = data.load_csv(write(tmp_path, text))
    assert list(s.offsets) == [-18000, -14400, -14400]
    assert s.label(1) == "2024-03-11T00:31:00-04:00"
    assert list(s.days - s.days[0]) == [0, 1, 1]  # the local calendar day, as written
    # 23:30 at -05:00 and 00:30 at -04:00 are the same instant (04:30 UTC).
    same = text.replace("00:31:00-04:00", "00:30:00-04:00")
    with pytest.raises(data.DataError, match="line 3: duplicate time 2024-03-11T00:30:00-04:00"):
        data.load_csv(write(tmp_path, same, "same.csv"))
    z = data.load_csv(write(tmp_path, "date,close\n2024-01-02T14:30:00Z,1\n", "z.csv"))
    assert list(z.offsets) == [0]
    with pytest.raises(data.DataError, match="mixes times with and without a UTC offset"):
        data.load_csv(write(tmp_path, "date,close\n2024-01-02T14:30:00Z,1\n2024-01-03,1\n",
                            "mixed.csv"))


fixed_price = st.tuples(st.integers(0, 10**7), st.integers(0, 10**6), st.integers(0, 2),
                        st.booleans())


@settings(max_examples=80, deadline=None, derandomize=True)
@given(rows=st.lists(fixed_price, min_size=1, max_size=40),
       k=st.sampled_from([None, 0, 1, 2, 3, 4, 6]), bad=st.integers(-1, 39),
       what=st.sampled_from(["", "x", "..", "-", " ", ",", "+"]))
def test_the_word_reader_of_one_decimal_layout_equals_float(tmp_path_factory, rows, k, bad,
                                                            what):
    # Prices with the same number of decimals on every line (the usual file) are read a word
    # at a time (data._fixed_prices): each must give the very float float() gives, and a line
    # it cannot read must end where the other readers end.
    texts = []
    for whole, frac, zeros, bare in rows:
        head = "" if bare and k else "0" * zeros + str(whole)
        tail = "" if k is None else "." + (f"{frac % 10**k:0{k}d}" if k else "")
        texts.append(head + tail)
    if 0 <= bad < len(texts) and what:
        texts[bad] = texts[bad][:1] + what + texts[bad][1:]
    start = dt.datetime(2020, 1, 1, 9, 30)
    lines = [f"{(start + i * dt.timedelta(minutes=1)):%Y-%m-%d %H:%M:%S},{p}"
             for i, p in enumerate(texts)]
    path = tmp_path_factory.mktemp("csv") / "p.csv"
    path.write_text("Date,Close\n" + "\n".join(lines) + "\n")
    try:
        want = _slow(path)[1]
        if not (want > 0).all():
            raise data.DataError("a price that is not positive")
    except data.DataError:
        with pytest.raises(data.DataError):
            data.load_csv(path)
        return
    s = data.load_csv(path)
    assert np.array_equal(s.prices, want)
    if not what:
        assert np.array_equal(s.prices, np.array([float(p) for p in texts]))


def test_the_word_reader_reads_the_usual_minute_file():
    body = b"".join(b"2024-01-02 09:%02d:00,%s\n" % (i, p) for i, p in enumerate(
        [b"100.04", b"99.87", b"1234.50", b"0.01", b"7.00"]))
    b = np.frombuffer(body, np.uint8)
    ends = np.flatnonzero(b == 10)
    pe, ps = ends, np.append(0, ends[:-1] + 1) + 20
    got = data._fixed_prices(data._words(b), pe, pe - ps, int((pe - ps).max()),
                             int((pe - ps).min()))
    assert got is not None and list(got) == [100.04, 99.87, 1234.5, 0.01, 7.0]


@pytest.mark.parametrize("zone", ["-05:00", "+01:00", "Z"])
def test_a_long_plain_file_with_utc_offsets_is_read(tmp_path, zone):
    # The plain reader handed such times to numpy's parser with its warning made an error,
    # and numpy crashed the process (a segmentation fault) from a thousand rows on: read in a
    # child process, so that a crash fails this test instead of ending the run.
    start = dt.datetime(2024, 1, 2, 9, 30)
    rows = [f"{(start + dt.timedelta(minutes=i)).isoformat()}{zone},{100 + i % 7}.25"
            for i in range(3000)]
    path = write(tmp_path, "Date,Close\n" + "\n".join(rows) + "\n")
    code = ("import sys; from positions.strategy.backtest import data; "
            "s = data.load_csv(sys.argv[1]); "
            "print(len(s), int(s.offsets[0]), s.label(2999), s.prices[1])")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-500:]
    offset = {"-05:00": -18000, "+01:00": 3600, "Z": 0}[zone]
    label = "2024-01-04T11:29:00" + ("+00:00" if zone == "Z" else zone)
    assert done.stdout.split() == ["3000", str(offset), label, "101.25"]


@pytest.mark.parametrize("text,fragment", [
    ("Time,Price\n", "no rows after the header"),
    ("", "is empty"),
    ("Day,Close\n2024-01-02,1\n", "no Date column (found: Day, Close)"),
    ("Date,Adj Close\n2024-01-02,1\n", "no Close column (found: Date, Adj Close)"),
    ("Date,Close\n2024-01-03,1\n2024-01-02,2\n",
     "line 3: times are not in ascending order (2024-01-02 comes after 2024-01-03)"),
    ("Date,Close\n2024-01-02,1\n2024-01-02,2\n", "line 3: duplicate time 2024-01-02"),
    ("Date,Close\n2024-01-02,1\n2024-01-03,0\n", "line 3 (2024-01-03): the price must be a "
                                                "positive number, not 0"),
    ("Date,Close\n2024-01-02,1\n2024-01-03,-2\n", "line 3 (2024-01-03): the price must be a "
                                                 "positive number, not -2"),
    ("Date,Close\n2024-01-02,1\n2024-01-03,n/a\n", "line 3: the Close 'n/a' is not a number"),
    ("Date,Close\n2024-01-02,1\n\n2024-01-03,1\n2024-01-03,1\n",
     "line 5: duplicate time 2024-01-03"),  # the blank line 3 still counts
    ("Date,Close\n2024-01-02,1\n\n2024-01-03Z,1\n", "line 4: '2024-01-03Z' is not an ISO"),
    ("Date,Close\n2024-01-02,1\n2024-13-03,2\n", "line 3: '2024-13-03' is not an ISO date"),
    ("Date,Close\n2024-01-02,1\n20240103\n", "line 3 has 1 fields, the header has 2"),
])
def test_bad_files_name_the_problem_in_one_line(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(data.DataError) as exc:
        data.load_csv(path)
    msg = str(exc.value)
    assert fragment in msg
    assert "\n" not in msg
    assert msg.startswith(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(data.DataError, match="No such file"):
        data.load_csv(tmp_path / "nope.csv")


def test_between_is_inclusive_and_a_date_end_covers_the_day(tmp_path):
    text = "Date,Close\n" + "".join(
        f"2024-01-0{d} {h}:00:00,{d}{h}\n" for d in (2, 3, 4) for h in (10, 15))
    s = data.load_csv(write(tmp_path, text))
    sub = s.between("2024-01-03", "2024-01-03")
    assert [sub.label(i) for i in range(len(sub))] == ["2024-01-03T10:00:00",
                                                       "2024-01-03T15:00:00"]
    assert sub.first_line == 4
    assert len(s.between("2024-01-02 15:00", None)) == 5
    with pytest.raises(data.DataError, match="no bars between 2025-01-01 and the end "
                                             r"\(the data runs from 2024-01-02T10:00:00"):
        s.between("2025-01-01", None)
    with pytest.raises(data.DataError, match="start 'soon' is not an ISO date"):
        s.between("soon", None)
    with pytest.raises(data.DataError, match="is after the end"):
        s.between("2024-01-04", "2024-01-02")


def test_points_from_a_posted_body():
    s = data.series_from_points([("2024-01-02", D("10.5")), ("2024-01-03", 11)])
    assert list(s.prices) == [10.5, 11.0]
    with pytest.raises(data.DataError, match=r"prices\[1\]: duplicate time 2024-01-02"):
        data.series_from_points([("2024-01-02", 1), ("2024-01-02", 2)])
    with pytest.raises(data.DataError, match=r"prices\[1\].ts: 'x' is not an ISO date"):
        data.series_from_points([("2024-01-02", 1), ("x", 2)])
    with pytest.raises(data.DataError, match=r"prices\[0\] \(2024-01-02\): the price must be"):
        data.series_from_points([("2024-01-02", 0)])


def test_dividends_file(tmp_path):
    path = write(tmp_path, "ex_date,pay_date,dps\n2024-02-01,2024-03-01,0.5\n2024-01-05,,0.25\n")
    divs = data.load_dividends(path)
    assert divs == [data.Dividend(dt.date(2024, 1, 5), dt.date(2024, 1, 5), D("0.25")),
                    data.Dividend(dt.date(2024, 2, 1), dt.date(2024, 3, 1), D("0.5"))]
    bad = write(tmp_path, "ex_date,pay_date,dps\n2024-02-01,2024-01-01,0.5\n", "bad.csv")
    with pytest.raises(data.DataError, match="line 2: pay_date 2024-01-01 is before ex_date"):
        data.load_dividends(bad)
    with pytest.raises(data.DataError, match="no dps column"):
        data.load_dividends(write(tmp_path, "ex_date,amount\n2024-01-01,1\n", "c.csv"))


def test_ibm_sample_and_its_dividends():
    s, divs = data.load_sample("ibm")
    assert len(s) == 3270 and s.name == "IBM"
    assert (s.label(0), s.label(len(s) - 1)) == ("2000-03-01", "2013-03-01")
    assert len(divs) == 52  # quarterly, 2000-05 to 2013-02
    assert divs[0] == data.Dividend(dt.date(2000, 5, 8), dt.date(2000, 6, 5), D("0.13"))
    assert divs[-1].ex_date == dt.date(2013, 2, 6) and divs[-1].dps == D("0.85")
    assert all(d.pay_date - d.ex_date == dt.timedelta(days=28) for d in divs)


def test_samples_are_split_adjusted():
    aapl, divs = data.load_sample("AAPL")
    # Two 2-for-1 splits (2000-06-21, 2005-02-28): 130.31 on 2000-03-01 is 130.31 / 4.
    assert aapl.prices[0] == pytest.approx(130.31 / 4)
    for split in ("2000-06-21", "2005-02-28"):  # no split "crash"
        i = int(np.searchsorted(aapl.times, np.datetime64(split)))
        assert 0.8 < aapl.prices[i] / aapl.prices[i - 1] < 1.25
    assert [d.ex_date.year for d in divs] == [2012, 2012, 2013]
    msft, mdivs = data.load_sample("MSFT")
    special = [d for d in mdivs if d.ex_date == dt.date(2004, 11, 15)]
    assert special and special[0].dps == D("3.03")  # the 3.00 special plus the 0.08 quarterly
    goog, gdivs = data.load_sample("GOOG")
    assert gdivs == [] and goog.label(0) == "2004-08-19"
    with pytest.raises(data.DataError, match="unknown sample 'XYZ': choose one of AAPL"):
        data.load_sample("XYZ")
