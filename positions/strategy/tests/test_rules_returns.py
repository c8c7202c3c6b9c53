"""Returns (docs/strategy.md#returns, positions/strategy/rules/returns.py): hand computations
and properties. Deterministic Hypothesis (``derandomize=True``)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from positions.strategy.rules import returns as R
from positions.strategy.rules.returns import Mark, returns_of

D = Decimal
PROPS = settings(max_examples=300, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])
T0 = dt.datetime(2026, 1, 1, 21, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


# The case (docs/returns.md#a-worked-example): 1000 at the start; the value is 1100 on
# day 30, when 500 is deposited; 1520 on day 60, when 200 is withdrawn; 1386 on day 90.
WORKED = [Mark(day(0), D(1000)), Mark(day(30), D(1100), D(500)),
          Mark(day(60), D(1520), D(-200)), Mark(day(90), D(1386))]


def residual(marks, rate: Decimal) -> float:
    """V_start + sum F_k (1+r)^(-t_k/365) - V_end (1+r)^(-T/365), relative to the money."""
    r = float(rate)
    t = [(m.at - marks[0].at) / dt.timedelta(days=1) for m in marks]
    total = float(marks[0].after) + sum(float(m.flow) * (1 + r) ** (-tk / 365)
                                        for m, tk in zip(marks[1:], t[1:], strict=True))
    total -= float(marks[-1].after) * (1 + r) ** (-t[-1] / 365)
    scale = float(marks[0].after) + sum(abs(float(m.flow)) for m in marks) + float(
        marks[-1].after)
    return abs(total) / scale


def test_worked_example_time_weighted_is_the_hand_product():
    out = returns_of(WORKED)
    # 1100/1000 × 1520/1600 × 1386/1320 − 1 = 1.1 × 0.95 × 1.05 − 1
    assert out.time_weighted.value == D("0.09725")
    assert out.start_value == D(1000) and out.end_value == D(1386)
    assert out.net_flows == D(300)
    assert out.days == D(90)


def test_worked_example_money_weighted_solves_the_equation():
    rate = returns_of(WORKED).money_weighted
    assert rate.reason is None and rate.note is None
    assert rate.value == D("0.3058538432")  # docs/returns.md quotes it
    assert residual(WORKED, rate.value) < 1e-10
    # below the time-weighted return annualised (1.09725^(365/90) - 1 = 0.457): the deposit
    # came before the loss, the withdrawal before the gain
    assert rate.value < D("0.45")


def test_no_flows_a_year_apart_both_rates_are_the_growth():
    out = returns_of([Mark(day(0), D(1000)), Mark(day(365), D(1100))])
    assert out.time_weighted.value == D("0.1")
    assert out.money_weighted.value == D("0.1000000000")
    two_years = returns_of([Mark(day(0), D(1000)), Mark(day(730), D(1210))])
    assert two_years.money_weighted.value == D("0.1000000000")
    assert two_years.time_weighted.value == D("0.21")


def test_a_deposit_alone_is_not_a_gain():
    marks = [Mark(day(0), D(1000)), Mark(day(10), D(1000), D(5000)), Mark(day(20), D(6000))]
    out = returns_of(marks)
    assert out.time_weighted.value == 0
    assert out.money_weighted.value == 0
    assert out.net_flows == D(5000)


def test_opening_inside_the_span_is_a_flow_from_nothing():
    # before its opening the position is worth nothing; it opens with 1000 on day 10
    marks = [Mark(day(0), D(0)), Mark(day(10), D(0), D(1000)), Mark(day(375), D(1100))]
    out = returns_of(marks)
    assert out.start_value == 0 and out.net_flows == D(1000)
    assert out.time_weighted.value == D("0.1")
    assert out.money_weighted.value == D("0.1000000000")


def test_empty_span_and_nothing_invested_say_why():
    same = returns_of([Mark(day(0), D(1000)), Mark(day(0), D(1000))])
    assert same.money_weighted.value is None and same.money_weighted.reason == R.NO_SPAN
    assert same.time_weighted.value == 0
    empty = returns_of([Mark(day(0), D(0)), Mark(day(5), D(0))])
    assert empty.money_weighted.reason == R.NOTHING_INVESTED
    assert empty.money_weighted.sentence.startswith("Nothing was invested")
    assert empty.time_weighted.value == 0
    one = returns_of([Mark(day(0), D(7))])
    assert one.money_weighted.reason == R.NO_SPAN and one.end_value == 7


def test_value_from_nothing_has_no_time_weighted_return():
    out = returns_of([Mark(day(0), D(0)), Mark(day(3), D(50))])
    assert out.time_weighted.value is None
    assert out.time_weighted.reason == R.VALUE_FROM_NOTHING


def test_everything_lost_is_minus_one():
    out = returns_of([Mark(day(0), D(1000)), Mark(day(100), D(0))])
    assert out.time_weighted.value == -1
    assert out.money_weighted.value == -1


def test_huge_rate_over_a_short_span_is_refused_with_a_reason():
    out = returns_of([Mark(day(0), D(1)), Mark(day(0.01), D(10**6))])
    assert out.money_weighted.value is None
    assert out.money_weighted.reason == R.RATE_TOO_LARGE


def test_several_rates_report_the_one_nearest_zero():
    # -100 in, +230 out after a year, -132 in after two (the textbook case: roots 10 % and 20 %)
    # as marks: start 100, 230 withdrawn after a year, 132 deposited after two leaving 0:
    # 100 x^2 - 230 x + 132 = 0 has x = 1.1 and x = 1.2
    marks = [Mark(day(0), D(100)), Mark(day(365), D(110), D(-230)),
             Mark(day(730), D(-132), D(132))]
    rate = R.money_weighted_return(marks)
    assert rate.value == D("0.1000000000")
    assert rate.note.startswith("1 other rate")


def test_cumulative_series_ends_at_the_total():
    series = R.cumulative_time_weighted(WORKED)
    assert [r.value for r in series] == [D(0), D("0.1"), D("0.045"), D("0.09725")]


# --- properties ---------------------------------------------------------------------------

values = st.integers(1, 10**10).map(lambda i: D(i).scaleb(-4))  # 0.0001 .. 10^6
growths = st.integers(2_000, 30_000).map(lambda i: D(i).scaleb(-4))  # 0.2 .. 3


@PROPS
@given(start=values, growth=growths, days=st.integers(1, 3650))
def test_no_flows_time_weighted_and_money_weighted_agree_annualised(start, growth, days):
    marks = [Mark(day(0), start), Mark(day(days), start * growth)]
    out = returns_of(marks)
    twr, mwr = out.time_weighted.value, out.money_weighted.value
    assert twr == growth - 1
    if mwr is None:  # only a rate that cannot be stated
        assert out.money_weighted.reason == R.RATE_TOO_LARGE
        return
    annualised = math.expm1(math.log(float(growth)) * 365 / days)
    assert math.isclose(float(mwr), annualised, rel_tol=1e-9, abs_tol=1e-10)


@st.composite
def paths(draw):
    """A value path under market growths, with a deposit or withdrawal at each cut."""
    n = draw(st.integers(1, 6))
    gs = draw(st.lists(growths, min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(1, 200), min_size=n, max_size=n))
    value = draw(values)
    marks, t = [Mark(day(0), value)], 0
    for i, (g, gap) in enumerate(zip(gs, gaps, strict=True)):
        t += gap
        value = (marks[-1].after * g).quantize(D("0.000001"))
        last = i == n - 1
        flow = D(0) if last else draw(st.integers(-10**6, 10**6).map(lambda k: D(k).scaleb(-2)))
        flow = max(flow, -value)  # never below zero after a withdrawal
        marks.append(Mark(day(t), value, flow))
    return marks


@PROPS
@given(paths())
def test_a_deposit_is_not_a_gain_time_weighted_is_the_market_alone(marks):
    """Whatever flows come and go at the cuts, the time-weighted return is the product of the
    pieces' market growths (each piece's end / its start after the flow)."""
    out = returns_of(marks)
    expect = D(1)
    for prev, nxt in zip(marks, marks[1:], strict=False):
        if prev.after == 0:
            continue
        expect *= nxt.value / prev.after
    if out.time_weighted.value is None:
        assert out.time_weighted.reason == R.VALUE_FROM_NOTHING
        return
    assert abs(out.time_weighted.value - (expect - 1)) < D("1e-18")
    assert out.net_flows == sum(m.flow for m in marks[1:])


@PROPS
@given(st.lists(st.tuples(st.integers(1, 100), st.integers(-10**6, 10**6)), min_size=1,
                max_size=6), values)
def test_flows_without_market_moves_earn_nothing(flows, start):
    """Deposits and withdrawals with no change of prices: both returns are zero."""
    marks, value, t = [Mark(day(0), start)], start, 0
    for gap, cents in flows:
        t += gap
        flow = max(D(cents).scaleb(-2), -value)
        marks.append(Mark(day(t), value, flow))
        value += flow
    marks.append(Mark(day(t + 1), value))
    out = returns_of(marks)
    assert out.time_weighted.value == 0
    assert out.money_weighted.value is not None
    assert abs(out.money_weighted.value) <= D("1e-9")


@PROPS
@given(paths())
def test_money_weighted_rate_solves_its_equation(marks):
    rate = R.money_weighted_return(marks)
    if rate.value is None:
        assert rate.reason in (R.RATE_TOO_LARGE, R.NO_RATE)
        return
    if rate.value < D("-0.9999"):  # 1 + r at 10 places is too coarse for the equation
        assert marks[-1].after < marks[0].after + sum(m.flow for m in marks[1:])
        return
    # the rate is rounded to 10 places: the equation moves by about that / (1 + r)
    assert residual(marks, rate.value) < 1e-8 * max(1.0, 1 / float(1 + rate.value))


def test_the_docs_quote_the_worked_example():
    from pathlib import Path

    text = (Path(__file__).parents[3] / "docs" / "returns.md").read_text()
    out = returns_of(WORKED)
    for figure in (out.time_weighted.value, out.net_flows, out.money_weighted.value):
        assert f"**{figure}**" in text


def test_inconsistent_values_have_no_rate_and_say_why():
    # nothing at the start, more taken out than there was, then a value: no rate solves it
    marks = [Mark(day(0), D(0)), Mark(day(7), D(119), D(-125)), Mark(day(61), D(292))]
    out = returns_of(marks)
    assert out.money_weighted.value is None and out.money_weighted.reason == R.NO_RATE
    assert out.time_weighted.reason == R.VALUE_FROM_NOTHING
    overdrawn = [Mark(day(0), D(100)), Mark(day(7), D(100), D(-150)), Mark(day(9), D(0))]
    below = returns_of(overdrawn)
    assert below.time_weighted.value is None and below.time_weighted.reason == R.NEGATIVE_VALUE
    assert below.time_weighted.sentence == R.REASONS[R.NEGATIVE_VALUE]
    series = R.cumulative_time_weighted(overdrawn)
    assert [r.value for r in series] == [D(0), D(0), None]  # from the failing piece on


def test_days_across_a_daylight_saving_change_count_elapsed_time():
    # issue 22 (F2): the same instants in New York and in UTC give the same span; 1 June to
    # 1 December crosses the end of summer time, an hour longer than its wall clock
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    a, b = dt.datetime(2026, 6, 1, tzinfo=ny), dt.datetime(2026, 12, 1, tzinfo=ny)
    local = returns_of([Mark(a, D(100)), Mark(b, D(110))])
    utc = returns_of([Mark(a.astimezone(dt.UTC), D(100)), Mark(b.astimezone(dt.UTC), D(110))])
    assert local.days == utc.days
    assert abs(float(local.days) - (183 + 1 / 24)) < 1e-9
    assert local.money_weighted == utc.money_weighted
    # the 25-hour day of 1 November 2026
    day_25 = returns_of([Mark(dt.datetime(2026, 11, 1, tzinfo=ny), D(1)),
                         Mark(dt.datetime(2026, 11, 2, tzinfo=ny), D(1))])
    assert abs(float(day_25.days) - 25 / 24) < 1e-9


def test_one_root_blurred_by_rounding_is_one_rate_without_a_note():
    # issue 22 (F3): everything withdrawn a second after the start of a year; at small rates
    # every term rounds to the same sum, which the grid read as a dozen roots
    marks = [Mark(day(0), D(1000)), Mark(day(0) + dt.timedelta(seconds=1), D(1000), D(-1000)),
             Mark(day(365), D(0))]
    rate = R.money_weighted_return(marks)
    assert rate.note is None and rate.value == 0
    # a sign that changes once has one root even when the grid is flat around it
    assert R.sign_changes([(1000.0, 0.0), (-1000.0, 3e-8), (-0.0, 1.0)]) == 1
    assert R.sign_changes([(100.0, 0.0), (-230.0, 0.5), (132.0, 1.0)]) == 2
