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
SATURDAY = dt.datetime(2026, 12, 12, 16, 21, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def section() -> tuple[str, str]:
    """The walk-through's shell block and the output block the section shows."""
    text = DOC.read_text()
    text = text[text.index("## Prices and corporate actions from Alpaca"):
                text.index("## Tests")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    [shell] = [b for kind, b in blocks if kind == "sh"]
    shown = next(b for kind, b in blocks if kind == "text")
    return shell, shown


def normal(lines: list[str]) -> list[str]:
    """Output lines with what differs from run to run replaced."""
    out = []
    for line in lines:
        line = re.sub(r"\b(pos|ord)_[0-9a-z]{26}\b", r"\1_…", line)
        line = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|\+00:00)", "<time>", line)
        line = re.sub(r"\d{4}-\d\d-\d\d", "<date>", line)
        out.append(re.sub(r" in \d+ ms\.", " in … ms.", line))
    return out


def command(*args) -> list[str]:
    """``manage.py <args> 2>&1``: what a shell shows (the commands write stderr first)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return (err.getvalue() + out.getvalue()).splitlines()


def walk(moment, settings, monkeypatch, api, tmp_path):
    """Run the section's block at ``moment`` (a minute later from the second cycle on):
    returns (the lines it shows, the replay's log, the position's id, REPLAY_DAY)."""
    shell, _ = section()
    at = [moment]
    monkeypatch.setattr(clock, "now", lambda: at[0])
    monkeypatch.setattr(timezone, "now", clock.now)  # rows' creation times too

    # export ALPACA_API_KEY_ID=… ALPACA_API_SECRET_KEY=…; alpaca_data_replay --port 8765 &
    assert f"ALPACA_API_KEY_ID={KEY_ID} ALPACA_API_SECRET_KEY={SECRET}" in shell
    monkeypatch.setenv("ALPACA_API_KEY_ID", KEY_ID)
    monkeypatch.setenv("ALPACA_API_SECRET_KEY", SECRET)
    assert "manage.py alpaca_data_replay --port 8765 > replay.log 2>&1 &" in shell
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

    shown = []
    steps = [line.split("  #")[0].strip() for line in shell.splitlines()
             if line.startswith((".venv/bin/python manage.py trade", "books\n", "eval",
                                 ".venv/bin/python manage.py fetch", ".venv/bin/python "
                                 "manage.py backtest")) or line == "books"]
    expected = [".venv/bin/python manage.py trade", "books",
                ".venv/bin/python manage.py trade", "books",
                ".venv/bin/python manage.py fetch_corporate_actions",
                ".venv/bin/python manage.py fetch_corporate_actions",
                'eval "$(.venv/bin/python manage.py alpaca_data_replay --dates)"',
                ".venv/bin/python manage.py backtest --ticker AAPL --start $REPLAY_START "
                "--end $REPLAY_DAY",
                ".venv/bin/python manage.py backtest --ticker AAPL --start $REPLAY_START "
                "--end $REPLAY_DAY 2>&1 | head -n 2"]
    assert steps == expected
    shown += command("trade")
    shown += books()
    at[0] = moment + dt.timedelta(minutes=1)
    shown += command("trade")
    shown += books()
    shown += command("fetch_corporate_actions")
    shown += command("fetch_corporate_actions")
    [exports] = command("alpaca_data_replay", "--dates")
    dates = dict(kv.split("=") for kv in exports.removeprefix("export ").split())
    span = ("--start", dates["REPLAY_START"], "--end", dates["REPLAY_DAY"])
    shown += command("backtest", "--ticker", "AAPL", *span)
    shown += command("backtest", "--ticker", "AAPL", *span)[:2]
    events = json.loads(api.get(f"/v1/positions/{pos}/events").content)["events"]
    shown += [f"{e['type']} {e['message']}" for e in events]
    replay.join(timeout=30)
    assert not replay.is_alive(), log.getvalue()
    return shown, log.getvalue(), pos, dt.date.fromisoformat(dates["REPLAY_DAY"])


def test_the_walk_through_in_a_session_prints_what_the_doc_shows(settings, monkeypatch, api,
                                                                  tmp_path):
    shown, log, pos, day = walk(MONDAY, settings, monkeypatch, api, tmp_path)
    assert day == dt.date(2026, 12, 7)
    _, doc = section()
    assert normal(shown) == normal([line for line in doc.splitlines()
                                    if not line.startswith("$ ")])
    assert "dated 2026-12-07 (today, 2026-12-07)" in log
    assert "All 8 recorded exchanges answered." in log

    # What the user sees, said plainly: priced by the feed, the split and the dividend once
    # (on the 40 shares: the split applies before that day's dividend step), a sell filled.
    price = Price.objects.filter(ticker="AAPL").earliest("ts")
    assert (price.price, price.source) == (D("129.04"), "alpaca")
    assert price.ts == MONDAY - dt.timedelta(minutes=1)  # a minute before the request
    split = Split.objects.get(position_id=pos)
    assert (split.ratio, split.status, split.effective_date) == (D(4), "applied", day)
    dividend = Dividend.objects.get(position_id=pos)
    assert (dividend.ex_date, dividend.pay_date) == (day, day + dt.timedelta(days=14))
    assert (dividend.gross_amount, dividend.net_amount) == (D("8.2"), D("6.15"))
    order = Order.objects.get(position_id=pos)
    assert (order.side, order.status, order.avg_fill_price) == ("SELL", "filled", D("129.5"))
    position = Position.objects.get(pk=pos)
    assert (position.qty, position.dividend_receivable) == (D("40") - order.filled_qty,
                                                            D("6.15"))


@pytest.mark.parametrize(("moment", "day"), [
    (SATURDAY, dt.date(2026, 12, 11)),  # the last session: Friday
    (dt.datetime(2026, 12, 7, 13, tzinfo=dt.UTC), dt.date(2026, 12, 4)),  # Monday 8:00
], ids=["saturday", "before-the-open"])
def test_without_a_session_today_the_replay_dates_the_last_one_and_nothing_trades(
        moment, day, settings, monkeypatch, api, tmp_path):
    shown, log, pos, replay_day = walk(moment, settings, monkeypatch, api, tmp_path)
    today = moment.astimezone(clock.trading_tz()).date()
    assert replay_day == day
    assert f"dated {day} (the last session: today, {today}, has none yet)" in log
    assert "All 8 recorded exchanges answered." in log
    # That session's last trades (a minute before its close, then the close); no evaluation.
    closes = list(Price.objects.filter(ticker="AAPL").order_by("ts")
                  .values_list("ts", flat=True))
    close = dt.datetime.combine(day, dt.time(16), clock.trading_tz())
    assert closes == [close - dt.timedelta(minutes=1), close]
    assert sum(line.startswith("Market closed at ") and line.endswith(": nothing evaluated.")
               for line in shown) == 2
    assert not Order.objects.exists()
    # The split and the dividend of that session are before the position opened: not asked.
    assert shown.count("0 recorded, 0 already recorded, 0 before a position opened; 0 splits "
                       "applied, 0 dividends effective, 0 paid.") == 2
    assert not Split.objects.exists() and not Dividend.objects.exists()
    position = Position.objects.get(pk=pos)
    assert (position.qty, position.anchor_price) == (D(10), D(500))
    # The backtest by ticker runs on the last four sessions, then from the cache.
    span, bars = f"{market.session_offset(day, -3)} to {day}", "4 daily bars, 1 splits, 1 dividends"
    assert f"AAPL {span} from alpaca: {bars}" in shown
    assert f"AAPL {span} from the cache: {bars}" in shown


def test_after_the_close_the_actions_apply_and_nothing_trades(settings, monkeypatch, api,
                                                              tmp_path):
    evening = dt.datetime(2026, 12, 7, 22, tzinfo=dt.UTC)  # 17:00 in New York
    shown, log, pos, day = walk(evening, settings, monkeypatch, api, tmp_path)
    assert day == dt.date(2026, 12, 7) and "dated 2026-12-07 (today, 2026-12-07)" in log
    close = dt.datetime(2026, 12, 7, 21, tzinfo=dt.UTC)  # 16:00 in New York
    assert list(Price.objects.order_by("ts").values_list("ts", flat=True)) == [
        close - dt.timedelta(minutes=1), close]
    assert not Order.objects.exists()
    assert Split.objects.get(position_id=pos).status == "applied"
    assert Dividend.objects.get(position_id=pos).net_amount == D("6.15")
    position = Position.objects.get(pk=pos)
    assert (position.qty, position.anchor_price) == (D(40), D("124.795"))
    assert shown.count("0 recorded, 2 already recorded, 0 before a position opened; 0 splits "
                       "applied, 0 dividends effective, 0 paid.") == 2
