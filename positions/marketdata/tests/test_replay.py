"""The replay's dates (positions/marketdata/replay.py): a recording's placeholders stand for the
last session opened (a weekend's or a holiday's is the session before; an early close is the
close), and manage.py alpaca_data_replay refuses a request not as recorded, saying so."""

from __future__ import annotations

import datetime as dt
import io
import re
import urllib.request

import pytest
from django.core.management import call_command

from positions.marketdata.replay import KEY_ID, SECRET, ReplayDates, render
from positions.marketdata.tests.recorded import replay_command

UTC = dt.UTC


@pytest.mark.parametrize(("moment", "day", "close"), [
    (dt.datetime(2026, 12, 7, 16, 21, tzinfo=UTC), "2026-12-07", "2026-12-07T21:00:00"),
    # 9 hours later Monday's session has opened and closed: {now} is at most its close
    (dt.datetime(2026, 12, 7, 14, 29, tzinfo=UTC), "2026-12-04", "2026-12-07T21:00:00"),
    (dt.datetime(2026, 12, 12, 12, tzinfo=UTC), "2026-12-11", "2026-12-11T21:00:00"),
    # Christmas, a Friday: the session before closed early, at 13:00 in New York
    (dt.datetime(2026, 12, 25, 15, tzinfo=UTC), "2026-12-24", "2026-12-24T18:00:00"),
    (dt.datetime(2026, 7, 6, 15, tzinfo=UTC), "2026-07-06", "2026-07-06T20:00:00"),  # EDT
], ids=["in-a-session", "before-the-open", "saturday", "holiday-after-early-close", "summer"])
def test_the_replays_day_is_the_last_session_opened(moment, day, close):
    dates = ReplayDates.at(moment)
    assert (dates.day.isoformat(), render("{now}", dates, moment + dt.timedelta(hours=9))) == (
        day, close)  # a moment after the close of the last session opened is that close


def test_placeholders():
    moment = dt.datetime(2026, 12, 7, 16, 21, 5, 250000, tzinfo=UTC)  # Monday 11:21 New York
    dates = ReplayDates.at(moment)
    recording = {"q": ["{today}", "{today+90 days}", "{day-3 sessions}", "{day+1 sessions}",
                       "{closed}", "{today+1 sessions+14 days}", "{closed-1 sessions+1 days}"],
                 "t": "{day-1 sessions at 00:00:00}+00:00 to {day at 23:59:59}Z",
                 "now": "{now-60 seconds}Z", "n": 129.04, "plain": "no {placeholder} here"}
    assert render(recording, dates, moment) == {
        "q": ["2026-12-07", "2027-03-07", "2026-12-02", "2026-12-08",
              "2026-12-04", "2026-12-22", "2026-12-04"],  # closed: Friday, in a session
        "t": "2026-12-04T05:00:00+00:00 to 2026-12-08T04:59:59Z",  # midnights in New York
        "now": "2026-12-07T16:20:05.250000Z", "n": 129.04, "plain": "no {placeholder} here"}
    with pytest.raises(ValueError, match="a request cannot say"):
        render("{now}", dates)  # a request's placeholders are fixed when the replay starts


def test_the_command_stops_at_a_request_not_as_recorded(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    log, raised = io.StringIO(), []
    replay, port = replay_command(log, raised)
    request = urllib.request.Request(  # the right path and keys, another symbol
        f"http://127.0.0.1:{port}/v2/stocks/trades/latest?symbols=MSFT&feed=iex",
        headers={"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 500
    replay.join(timeout=30)
    said = log.getvalue()
    assert "NOT AS RECORDED" in said and "expected (exchange 1 of 10)" in said
    assert SECRET not in said and "'APCA-API-SECRET-KEY': '********'" in said  # masked
    assert "symbols=MSFT" in said and "'symbols': 'AAPL'" in said
    assert "Stopped: 0 of 10 recorded exchanges answered." in said
    assert [str(e) for e in raised] == ["a request was not as recorded"]


def test_dates_prints_the_exports(monkeypatch):
    from volbal import clock

    monkeypatch.setattr(clock, "now", lambda: dt.datetime(2026, 12, 12, 12, tzinfo=UTC))
    out = io.StringIO()
    call_command("alpaca_data_replay", "--dates", stdout=out)
    assert out.getvalue() == "export REPLAY_DAY=2026-12-11 REPLAY_START=2026-12-08\n"


def test_without_a_calendar_every_day_is_a_session(settings):
    settings.VOLBAL_CALENDAR = ""
    saturday = dt.datetime(2026, 12, 12, 12, tzinfo=UTC)
    dates = ReplayDates.at(saturday)
    assert render(["{day}", "{day-3 sessions}", "{now}"], dates, saturday) == [
        "2026-12-12", "2026-12-09", "2026-12-12T12:00:00"]


@pytest.mark.parametrize(("args", "content", "refusal"), [
    (("--port", "70000"), None, "--port 70000: a port is from 1 to 65535"),
    (("--port", "-1"), None, "--port -1: a port is from 1 to 65535"),
    (("--port", "0"), None, "--port 0: a port is from 1 to 65535"),
    ((), "{not json", "not JSON"),
    ((), '{"exchanges": 5}', 'not a recording: it needs "exchanges", a list'),
    ((), '{"exchanges": [{"request": {"method": "GET"}}]}', "exchange 1 is not"),
    ((), '[1, 2]', 'not a recording'),
], ids=["port-70000", "port-negative", "port-0", "not-json", "exchanges-5", "no-path",
        "a-list"])
def test_the_command_refuses_a_bad_port_or_recording_in_a_sentence(tmp_path, args, content,
                                                                   refusal):
    from django.core.management.base import CommandError

    if content is not None:
        (tmp_path / "r.json").write_text(content)
        args = ("--recording", str(tmp_path / "r.json"))
    with pytest.raises(CommandError, match=re.escape(refusal)):
        call_command("alpaca_data_replay", *args, stdout=io.StringIO(), stderr=io.StringIO())
