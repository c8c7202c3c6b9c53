"""A replay of Alpaca's market-data API: recorded exchanges served by a real HTTP server on
127.0.0.1 (pytest-httpserver's) that checks every request the SDK sends (method, path, the whole
query, the two auth headers) and answers as recorded. The tests serve their recordings with it,
and ``manage.py alpaca_data_replay`` serves the walk-through's for a user
(docs/marketdata.md#prices-and-corporate-actions-from-alpaca): one implementation of the checks.

A recording is ``{"description", "source", "exchanges": [{"request", "response"}]}``, in the
order the requests must come: a request is ``{"method", "path", "query"}`` (every parameter,
nothing more); a response ``{"status", "headers"?, "body"}`` (JSON, written as recorded: Python
prints a JSON number read from the file with the same digits) or ``{"status", "text"}`` (a raw
body, e.g. a proxy's page).

**Dates relative to the replay's day.** A string of a recording may hold placeholders, so that
a walk-through run today sees today's trades and actions (:func:`render`):

- ``{day}``: the *replay's day*, the last session whose open is at or before the moment the
  replay starts (today from the session's open; before it, on a weekend or a holiday, the last
  session); ``{today}``: the calendar date of that moment in the trading time zone (the day a
  position opened then counts as opened); ``{closed}``: the last session closed by then
  (:func:`volbal.market.last_closed_session`: the day before during a session);
- ``{day-3 sessions}``, ``{day+90 days}``, ``{today+1 sessions}`` (the next session after
  today), ``{today+1 sessions+14 days}``: sessions or calendar days away, moved in turn;
- ``{day at 10:59}``, ``{day-3 sessions at 00:00:00}``: that wall-clock time in the trading time
  zone, written in UTC as ``YYYY-MM-DDTHH:MM:SS`` (the recording adds ``Z`` or ``+00:00``);
- ``{now}``, ``{now-60 seconds}``: the moment the request is answered, never after the close of
  the last session opened by then (after it, that close), in UTC as above.

Requests' placeholders are rendered when the replay starts, responses' when each is answered.
A recording without placeholders is served as written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from volbal import clock, market

KEY_ID, SECRET = "PKTEST0000MARKETDATA", "replay-secret-never-shown"
# The walk-through's recording (docs/marketdata.md, served by manage.py alpaca_data_replay).
WALKTHROUGH = Path(__file__).parent / "recordings" / "walkthrough_aapl.json"

MOVE = r"[+-]\d+ (?:days|sessions|seconds)"
PLACEHOLDER = re.compile(
    rf"\{{(?P<base>today|day|closed|now)(?P<moves>(?:{MOVE})*)"
    r"(?: at (?P<time>\d\d:\d\d(?::\d\d)?))?\}")
ONE_MOVE = re.compile(r"(?P<sign>[+-])(?P<n>\d+) (?P<unit>days|sessions|seconds)")


@dataclass(frozen=True)
class ReplayDates:
    """What a recording's placeholders stand for: the replay's day and its close, today, and
    the last closed session."""

    day: dt.date
    close: dt.datetime
    today: dt.date
    closed: dt.date

    @classmethod
    def at(cls, moment: dt.datetime) -> ReplayDates:
        day, close = market.latest_session(moment)
        return cls(day=day, close=close, today=clock.trading_day(moment),
                   closed=market.last_closed_session(moment))


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat()


def _one(match: re.Match, dates: ReplayDates, now: dt.datetime | None) -> str:
    base, time = match["base"], match["time"]
    moves = [(int(m["n"]) * (-1 if m["sign"] == "-" else 1), m["unit"])
             for m in ONE_MOVE.finditer(match["moves"])]
    if base == "now":
        if now is None or any(unit != "seconds" for _, unit in moves) or len(moves) > 1 or time:
            raise ValueError(f"{match[0]}: a request cannot say {{now}}; a response says "
                             "{now} or {now±N seconds}")
        _, close = market.latest_session(now)
        return _utc(min(now, close) + dt.timedelta(seconds=sum(n for n, _ in moves)))
    day = {"day": dates.day, "today": dates.today, "closed": dates.closed}[base]
    for n, unit in moves:
        if unit == "sessions":
            day = market.session_offset(day, n)
        elif unit == "days":
            day += dt.timedelta(days=n)
        else:
            raise ValueError(f"{match[0]}: a day moves by days or sessions")
    if time is None:
        return day.isoformat()
    wall = dt.time.fromisoformat(time)
    return _utc(dt.datetime.combine(day, wall, clock.trading_tz()))


def render(value, dates: ReplayDates, now: dt.datetime | None = None):
    """``value`` (a recording's JSON) with every placeholder of its strings replaced."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: _one(m, dates, now), value)
    if isinstance(value, list):
        return [render(v, dates, now) for v in value]
    if isinstance(value, dict):
        return {k: render(v, dates, now) for k, v in value.items()}
    return value


class RecordingError(ValueError):
    """A file that is not a recording in this module's format (the sentence says why)."""


def load(path: Path) -> dict:
    """The recording at ``path``, its shape checked: a :class:`RecordingError` when it is not
    JSON, or not ``{"exchanges": [{"request": {"method", "path", …}, "response": {"status",
    …}}, …]}``."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise RecordingError(f"{path}: not JSON ({exc})") from None
    exchanges = doc.get("exchanges") if isinstance(doc, dict) else None
    if not isinstance(exchanges, list):
        raise RecordingError(f"{path}: not a recording: it needs \"exchanges\", a list")
    for n, exchange in enumerate(exchanges, 1):
        request = exchange.get("request") if isinstance(exchange, dict) else None
        response = exchange.get("response") if isinstance(exchange, dict) else None
        if not (isinstance(request, dict) and isinstance(request.get("method"), str)
                and isinstance(request.get("path"), str)
                and isinstance(request.get("query", {}), dict)
                and isinstance(response, dict) and isinstance(response.get("status"), int)):
            raise RecordingError(f"{path}: exchange {n} is not {{\"request\": {{\"method\", "
                                 f"\"path\", \"query\"}}, \"response\": {{\"status\", …}}}}")
    return doc


def expect(server, path: Path, *, dates: ReplayDates | None = None, key_id: str = KEY_ID,
           secret: str = SECRET, now: Callable[[], dt.datetime] = clock.now) -> ReplayDates:
    """Make ``server`` (a pytest-httpserver server) answer the recording at ``path``, request
    by request, in order, each request checked against the recording and the two auth
    headers. Returns the dates its placeholders stand for (``dates``, else those of now)."""
    from werkzeug import Response  # pytest-httpserver's own web library

    dates = dates or ReplayDates.at(now())
    for exchange in load(path)["exchanges"]:
        want, answer = render(exchange["request"], dates), exchange["response"]
        handler = server.expect_ordered_request(
            want["path"], method=want["method"], query_string=want.get("query", {}),
            headers={"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret})

        def respond(request, answer=answer):
            if "body" in answer:
                body, kind = json.dumps(render(answer["body"], dates, now())), "application/json"
            else:
                body, kind = answer.get("text", ""), "text/html"
            return Response(body, answer["status"], answer.get("headers"), content_type=kind)

        handler.respond_with_handler(respond)
    return dates


def check(server) -> None:
    """Every request came as recorded, and every recorded exchange was asked for."""
    server.check_assertions()
    assert not server.ordered_handlers, (
        f"{len(server.ordered_handlers)} recorded exchanges never asked for")
