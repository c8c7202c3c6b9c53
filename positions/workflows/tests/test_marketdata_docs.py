"""docs/marketdata.md, "Prices and corporate actions from Alpaca", step by step: the block's
commands run in-process against ``manage.py alpaca_data_replay`` (in a thread, on 127.0.0.1,
serving the walk-through's recording dated by the pinned clock: nothing reaches Alpaca), and
their output is compared with the output the section shows (ids, times, dates and durations
aside). When this test fails, the section (or the recording) has to change with the code."""

from __future__ import annotations

import ast
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.models import Order
from positions.marketdata.replay import KEY_ID, SECRET
from positions.marketdata.tests.recorded import replay_command
from positions.models import Dividend, Position, Price, Split
from volbal import clock, market

pytestmark = pytest.mark.django_db
D = Decimal
DOC = Path(__file__).parents[3] / "docs" / "marketdata.md"
MONDAY = dt.datetime(2026, 12, 7, 16, 21, tzinfo=dt.UTC)  # 11:21 in New York: a session
TUESDAY = dt.datetime(2026, 12, 8, 15, tzinfo=dt.UTC)  # 10:00 in New York: the next session
SATURDAY = dt.datetime(2026, 12, 12, 16, 21, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def section() -> tuple[str, str, str, str, str]:
    """The walk-through's two shell blocks (today, tomorrow) and the outputs the section shows
    (today's, tomorrow's, the replay's log)."""
    text = DOC.read_text()
    text = text[text.index("## Prices and corporate actions from Alpaca"):
                text.index("## Tests")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    today, tomorrow = [b for kind, b in blocks if kind == "sh"]
    shown_today, shown_tomorrow, log = [b for kind, b in blocks if kind == "text"]
    return today, tomorrow, shown_today, shown_tomorrow, log


def normal(lines: list[str]) -> list[str]:
    """Output lines with what differs from run to run replaced."""
    out = []
    for line in lines:
        line = re.sub(r"\b(pos|ord)_[0-9a-z]{26}\b", r"\1_…", line)
        line = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|\+00:00)", "<time>", line)
        line = re.sub(r"\d{4}-\d\d-\d\d", "<date>", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
        out.append(re.sub(r" in \d+ ms\.", " in … ms.", line))
    return out


def shown(block: str) -> list[str]:
    return [line for line in block.splitlines() if not line.startswith("$ ")]


def command(*args) -> list[str]:
    """``manage.py <args> 2>&1``: what a shell shows (the commands write stderr first); a
    command's exit status is kept in ``command.status``."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        command.status = 0
    except SystemExit as exc:
        command.status = exc.code
    return (err.getvalue() + out.getvalue()).splitlines()


def steps(block: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in block.splitlines()
            if line.startswith((".venv/bin/python manage.py trade", "eval",
                                ".venv/bin/python manage.py fetch",
                                ".venv/bin/python manage.py backtest"))
            or line in ("books", "events")]


@dataclass
class Walk:
    today: list[str]
    tomorrow: list[str]
    log: str
    pos: str
    day: dt.date
    statuses: list[int]


def walk(moment, tomorrow, settings, monkeypatch, api, tmp_path) -> Walk:
    """Run the section's first block at ``moment`` (a minute later from the second cycle on),
    then its second block at ``tomorrow``."""
    shell, shell_tomorrow, *_ = section()
    at = [moment]
    monkeypatch.setattr(clock, "now", lambda: at[0])
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too

    # export ALPACA_API_KEY_ID=… ALPACA_API_SECRET_KEY=…; alpaca_data_replay --port 8765 &
    assert f"ALPACA_API_KEY_ID={KEY_ID} ALPACA_API_SECRET_KEY={SECRET}" in shell
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    assert "manage.py alpaca_data_replay --port 8765 > var/replay.log 2>&1 &" in shell
    log = io.StringIO()
    replay, port = replay_command(log)
    # export VOLBAL_PRICE_FEED=alpaca ALPACA_DATA_URL=http://127.0.0.1:8765
    assert "export VOLBAL_PRICE_FEED=alpaca ALPACA_DATA_URL=http://127.0.0.1:8765" in shell
    settings.VOLBAL_PRICE_FEED = "alpaca"
    settings.ALPACA_DATA_URL = f"http://127.0.0.1:{port}"
    settings.VOLBAL_MARKETDATA_CACHE_DIR = tmp_path / "cache"

    # POS=$(curl -s -X POST localhost:8000/v1/positions … -d '{…}')
    body = json.loads(re.search(r"/v1/positions .*?-d '(\{.*?\})'", shell, re.S)[1])
    created = api.post("/v1/positions", body, format="json")
    assert created.status_code == 201, created.content
    pos = created.json()["id"]
    keys = ast.literal_eval(re.search(r"for k in (\(.*?\))", shell)[1])

    def books() -> list[str]:
        p = json.loads(api.get(f"/v1/positions/{pos}").content)
        return [" ".join(f"{k}={p[k]}" for k in keys)]

    def events() -> list[str]:
        found = json.loads(api.get(f"/v1/positions/{pos}/events").content)["events"]
        return [f"{e['type']} {e['message']}" for e in found]

    trade = ".venv/bin/python manage.py trade"
    fetch = ".venv/bin/python manage.py fetch_corporate_actions"
    backtest = (".venv/bin/python manage.py backtest --ticker AAPL --start $REPLAY_START "
                "--end $REPLAY_DAY")
    assert steps(shell) == [trade, "books", trade, "books", fetch, fetch,
                            'eval "$(.venv/bin/python manage.py alpaca_data_replay --dates)"',
                            backtest, backtest + " 2>&1 | head -n 2", "events"]
    assert steps(shell_tomorrow) == [trade, "books", "events"]
    statuses = []
    out = command("trade")
    statuses.append(command.status)
    out += books()
    at[0] = moment + dt.timedelta(minutes=1)
    out += command("trade")
    statuses.append(command.status)
    out += books()
    out += command("fetch_corporate_actions")
    out += command("fetch_corporate_actions")
    [exports] = command("alpaca_data_replay", "--dates")
    dates = dict(kv.split("=") for kv in exports.removeprefix("export ").split())
    span = ("--start", dates["REPLAY_START"], "--end", dates["REPLAY_DAY"])
    out += command("backtest", "--ticker", "AAPL", *span)
    out += command("backtest", "--ticker", "AAPL", *span)[:2]
    out += events()

    at[0] = tomorrow
    later = command("trade")
    statuses.append(command.status)
    later += books()
    later += events()
    replay.join(timeout=30)
    assert not replay.is_alive(), log.getvalue()
    return Walk(out, later, log.getvalue(), pos, dt.date.fromisoformat(dates["REPLAY_DAY"]),
                statuses)


def test_the_walk_through_in_a_session_prints_what_the_doc_shows(settings, monkeypatch, api,
                                                                  tmp_path):
    w = walk(MONDAY, TUESDAY, settings, monkeypatch, api, tmp_path)
    print("\n".join(["# today", *w.today, "# tomorrow", *w.tomorrow, "# log", w.log]))
    assert w.day == dt.date(2026, 12, 7)
    _, _, doc_today, doc_tomorrow, doc_log = section()
    assert normal(w.today) == normal(shown(doc_today))
    assert normal(w.tomorrow) == normal(shown(doc_tomorrow))
    assert normal(w.log.splitlines()) == normal(doc_log.splitlines())
    assert "dated 2026-12-07 (today, 2026-12-07)" in w.log
    assert "All 10 recorded exchanges answered." in w.log
    assert w.statuses == [0, 0, 0]  # no cycle counted an error

    # Today: priced by the feed, a sell filled, the split and the dividend pending (once).
    price = Price.objects.filter(ticker="AAPL").earliest("ts")
    assert (price.price, price.source) == (D("516.2"), "alpaca")
    assert price.ts == MONDAY - dt.timedelta(minutes=1)  # a minute before the request
    order = Order.objects.get(position_id=w.pos)
    assert (order.side, order.status, order.avg_fill_price) == ("SELL", "filled", D("518"))
    # Tomorrow: the split and the dividend of 2026-12-08 applied once, on the shares held.
    split = Split.objects.get(position_id=w.pos)
    assert (split.ratio, split.status, split.effective_date) == (4, "applied", TUESDAY.date())
    dividend = Dividend.objects.get(position_id=w.pos)
    held = (D(10) - order.filled_qty) * 4
    assert (dividend.ex_date, dividend.pay_date) == (TUESDAY.date(),
                                                     dt.date(2026, 12, 22))
    assert held == D("35.88115328")  # 10 less 1.02971168 sold, times 4
    assert (dividend.entitlement_qty, dividend.gross_amount, dividend.net_amount) == (
        held, D("7.355636"), D("5.516727"))  # × 0.205, 25 % withheld (to 6 places)
    position = Position.objects.get(pk=w.pos)
    assert (position.qty, position.dividend_receivable, position.anchor_price) == (
        held, dividend.net_amount, D("129.295"))
    assert Order.objects.count() == 1  # 129.6 is inside the trigger


@pytest.mark.parametrize(("moment", "day", "tomorrow"), [
    (SATURDAY, dt.date(2026, 12, 11), dt.datetime(2026, 12, 14, 15, tzinfo=dt.UTC)),
    (dt.datetime(2026, 12, 7, 13, tzinfo=dt.UTC), dt.date(2026, 12, 4), TUESDAY),  # Mon 8:00
    (dt.datetime(2026, 12, 7, 22, tzinfo=dt.UTC), dt.date(2026, 12, 7), TUESDAY),  # Mon 17:00
], ids=["saturday", "before-the-open", "after-the-close"])
def test_outside_a_session_nothing_trades_today_and_the_next_session_applies_the_actions(
        moment, day, tomorrow, settings, monkeypatch, api, tmp_path):
    w = walk(moment, tomorrow, settings, monkeypatch, api, tmp_path)
    today = moment.astimezone(clock.trading_tz()).date()
    assert w.day == day
    assert (f"dated {day} (today, {today})" if day == today else
            f"dated {day} (the last session: today, {today}, has none yet)") in w.log
    assert "All 10 recorded exchanges answered." in w.log
    # That session's last trades (a minute before its close, then the close); no evaluation.
    close = dt.datetime.combine(day, dt.time(16), clock.trading_tz())
    assert list(Price.objects.filter(ts__lt=tomorrow).order_by("ts")
                .values_list("ts", flat=True)) == [close - dt.timedelta(minutes=1), close]
    assert sum(line.startswith("Market closed at ") and line.endswith(": nothing evaluated.")
               for line in w.today) == 2
    # The split and the dividend of the next session after today: recorded once, pending.
    assert w.today.count("0 recorded, 2 already recorded, 0 for a position opened on or "
                         "after its date; 0 splits applied, 0 dividends effective, 0 paid.") == 2
    assert sum("recorded from alpaca" in line for line in w.today) == 2
    # The backtest by ticker runs on the last four closed sessions (nothing cut), then cached.
    span = f"{market.session_offset(day, -3)} to {day}"
    assert f"AAPL {span} from alpaca: 4 daily bars, 0 splits, 0 dividends" in w.today
    assert f"AAPL {span} from the cache: 4 daily bars, 0 splits, 0 dividends" in w.today

    # The next session: applied once on the 10 shares held; 129.6 is 3.9 % above 124.795.
    assert w.statuses == [0, 0, 0]
    position = Position.objects.get(pk=w.pos)
    assert (position.qty, position.anchor_price) == (D(40), D("124.795"))
    dividend = Dividend.objects.get(position_id=w.pos)
    assert (dividend.gross_amount, dividend.net_amount) == (D("8.2"), D("6.15"))
    assert Split.objects.get(position_id=w.pos).status == "applied"
    order = Order.objects.get(position_id=w.pos)
    assert (order.side, order.status) == ("SELL", "submitted")
