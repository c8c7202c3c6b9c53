"""Prices and corporate actions from the market-data feed (docs/marketdata.md#the-cycle): the
trade cycle's first step, ``manage.py fetch_prices`` and ``manage.py fetch_corporate_actions``.

- **Prices**: the latest trade of every ticker asked (one request per batch of symbols, the
  adapter's), recorded through the prices service with the trade's own time as ``ts`` and the
  feed's name as ``source``; history (``fetch_prices --history``) records daily closes at the
  session's close. A fetched price passes the jump guard like any other.
- **Corporate actions**: the forward and reverse splits and cash dividends of the tickers,
  recorded for every position that held the ticker before the action's date (opened before
  its first instant: :func:`~positions.workflows.corporate_actions.held_before`, the
  entitlement's own boundary), from the first day a position opened to :data:`ACTIONS_AHEAD`
  past today (an announced split or dividend is recorded once, pending, and applied when due),
  each keyed by the feed's key (``source_key``, unique per position): however often it
  runs, an action is recorded once. A split goes through the split service (applied at once
  when due), a dividend through the dividend service (the position's withholding rate); the
  cycle then processes them as any other.
- **Failures**: a ticker the feed could not price (the feed failed, or it knows no trade)
  is kept in :class:`~positions.models.TickerFeed` with the error, and raises one
  ``feed_error`` alert per episode on the active positions relying on the cycle in it: the
  episode begins at the first failure after a success and ends at the next success.
- **Freshness**: the cycle submits nothing at a price older than the session's open
  (:meth:`FeedStep.fresh`), as ``price_stale``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Min

from events.models import EventType
from positions.dividends import dividend_announce
from positions.marketdata.configured import configured_feed, feed_named
from positions.marketdata.port import CashDividend, FeedError, MarketData, Split, Trade
from positions.models import Dividend, Position, Price, SplitStatus, TickerFeed
from positions.models import Split as SplitRow
from positions.services import prices_record
from positions.workflows.alerts import (
    active_positions,
    alert_record_once,
    cycle_dependent_positions,
)
from positions.workflows.corporate_actions import (
    STEP_ERRORS,
    dividends_process,
    held_before,
    split_announce,
)
from volbal import clock, market
from volbal.renderers import decimal_text as fmt

# A later fetch of corporate actions reaches back this far before the day it last reached: an
# action the feed published late is still found (recording is keyed, so nothing twice).
ACTIONS_OVERLAP = dt.timedelta(days=7)
# Corporate actions are announced before they go ex: a fetch asks this far past today, so an
# announced split or dividend is recorded (pending) before its day and applied when it comes.
ACTIONS_AHEAD = dt.timedelta(days=30)
NO_TRADE = "feed_no_trade"  # the feed answered, without a trade of the ticker


def held_tickers(*, cycle_only: bool = False) -> list[str]:
    """The tickers of active positions (holding shares or cash), sorted: what ``fetch_prices``,
    ``fetch_corporate_actions`` and the cycle's corporate actions ask by default; with
    ``cycle_only``, only those of the positions relying on the cycle (the cycle's prices)."""
    qs = cycle_dependent_positions() if cycle_only else active_positions()
    return sorted(set(qs.values_list("ticker", flat=True)))


def _tickers(raw: Iterable[str]) -> list[str]:
    """Upper-cased, each once, in the order given."""
    return list(dict.fromkeys(t.strip().upper() for t in raw if t and t.strip()))


# --------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------


@dataclass
class PriceReport:
    recorded: dict[str, Trade] = field(default_factory=dict)
    unpriced: dict[str, str] = field(default_factory=dict)  # ticker -> why
    error: FeedError | None = None


def prices_fetch(*, feed: MarketData, tickers: Iterable[str],
                 now: dt.datetime | None = None) -> PriceReport:
    """Record the latest trade of each ticker from ``feed`` (see the module's docs); a ticker
    it cannot price is in ``unpriced`` with the reason, and alerted once per episode."""
    now = now or clock.now()
    wanted = _tickers(tickers)
    report = PriceReport()
    if not wanted:
        return report
    try:
        trades = feed.latest_trades(wanted)
    except FeedError as exc:
        report.error = exc
        report.unpriced = dict.fromkeys(wanted, f"{exc.code}: {exc.message}")
        _failed(feed.name, {t: exc for t in wanted}, now)
        return report
    rows = []
    for ticker in wanted:
        trade = trades.get(ticker)
        if trade is None:
            report.unpriced[ticker] = (f"{NO_TRADE}: the {feed.name} feed has no trade of "
                                       f"{ticker}")
        else:
            rows.append({"ticker": ticker, "price": trade.price, "ts": trade.ts,
                         "source": feed.name})
            report.recorded[ticker] = trade
    if rows:
        prices_record(rows=rows)
        _succeeded(feed.name, report.recorded, now)
    if report.unpriced:
        _failed(feed.name, {t: FeedError(why.split(": ", 1)[1], NO_TRADE)
                            for t, why in report.unpriced.items()}, now)
    return report


def session_close_ts(day: dt.date) -> dt.datetime:
    """When a daily bar's close was traded: the session's close (16:00 in the trading time
    zone without a calendar)."""
    close = market.session_close(day)
    if close is not None and clock.trading_day(close) == day:
        return close
    return dt.datetime.combine(day, dt.time(16, 0), clock.trading_tz())


@dataclass
class HistoryReport:
    recorded: dict[str, int] = field(default_factory=dict)  # ticker -> closes recorded
    failed: dict[str, str] = field(default_factory=dict)  # ticker -> why


def closes_backfill(*, feed: MarketData, tickers: Iterable[str], start: dt.date,
                    end: dt.date) -> HistoryReport:
    """Record each ticker's raw daily closes from ``start`` to ``end`` (at the session's
    close) through the prices service: one transaction per ticker."""
    report = HistoryReport()
    for ticker in _tickers(tickers):
        try:
            bars = feed.daily_bars(ticker, start, end)
        except FeedError as exc:
            report.failed[ticker] = f"{exc.code}: {exc.message}"
            continue
        stored = prices_record(rows=[{"ticker": ticker, "price": b.close,
                                      "ts": session_close_ts(b.day), "source": feed.name}
                                     for b in bars])
        report.recorded[ticker] = len(stored)
    return report


def _succeeded(source: str, trades: dict[str, Trade], now: dt.datetime) -> None:
    for ticker, trade in trades.items():
        TickerFeed.objects.update_or_create(ticker=ticker, defaults={
            "source": source, "price": trade.price, "price_ts": trade.ts, "fetched_at": now,
            "failing_since": None})


def _failed(source: str, errors: dict[str, FeedError], now: dt.datetime, *,
            alert: bool = True) -> None:
    """Keep each ticker's error, and (``alert``: a ticker the feed could not price) alert the
    positions relying on the cycle in it once per episode (``feed_error``). A failed fetch of
    corporate actions is kept, not alerted: it is asked again by the next cycle, and a price
    fetched in between would end and restart the episode every cycle."""
    episodes: dict[str, str] = {}
    for ticker, exc in errors.items():
        with transaction.atomic():
            row, _ = TickerFeed.objects.select_for_update().get_or_create(ticker=ticker)
            row.error_code, row.error_message, row.error_at = exc.code, exc.message, now
            if alert:
                row.failing_since = row.failing_since or now
            row.save()
        episodes[ticker] = f"{ticker}@{(row.failing_since or now).isoformat()}"
    if not alert:
        return
    by_position = dict(cycle_dependent_positions().filter(ticker__in=list(errors))
                       .values_list("id", "ticker"))
    if not by_position:
        return

    def build(position: Position):
        exc = errors[position.ticker]
        last = TickerFeed.objects.filter(ticker=position.ticker).first()
        known = (f" The last price fetched is {fmt(last.price)} at "
                 f"{last.price_ts.isoformat()}." if last and last.price is not None else "")
        message = (f"Alert: the {source} feed could not price {position.ticker} "
                   f"({exc.code}: {exc.message}): this position is not evaluated at a fetched "
                   f"price until the feed answers again.{known}")
        return (message, {"ticker": position.ticker, "source": source, "code": exc.code},
                {"error": exc.message, "checked_at": now})

    alert_record_once(type=EventType.FEED_ERROR,
                      episodes={pid: episodes[t] for pid, t in by_position.items()},
                      build=build)


# --------------------------------------------------------------------------------------------
# Corporate actions
# --------------------------------------------------------------------------------------------


@dataclass
class ActionsReport:
    recorded: list[str] = field(default_factory=list)  # "position: what"
    existing: int = 0  # (position, action) pairs already recorded
    before_opened: int = 0  # (position, action) pairs: opened on or after its date, not theirs
    applied: int = 0  # splits applied as they were recorded (already due)
    conflicts: list[str] = field(default_factory=list)  # another on that date, by hand
    failed: list[str] = field(default_factory=list)
    error: FeedError | None = None
    tickers: list[str] = field(default_factory=list)


def corporate_actions_fetch(*, feed: MarketData, tickers: Iterable[str] | None = None,
                            start: dt.date | None = None, end: dt.date | None = None,
                            now: dt.datetime | None = None) -> ActionsReport:
    """Record the splits and cash dividends of ``tickers`` (default: the tickers of the active
    positions, :func:`held_tickers`, as the cycle asks) from ``start`` (default: the earliest
    day a position in them was opened, or a week before the day the last fetch reached) to
    ``end`` (default: :data:`ACTIONS_AHEAD` past today), for every position that held the ticker
    before the action's date, each once (see the module's docs)."""
    now = now or clock.now()
    today = clock.trading_day(now)
    end = end or today + ACTIONS_AHEAD
    wanted = _tickers(tickers if tickers is not None else held_tickers())
    report = ActionsReport(tickers=wanted)
    if not wanted:
        return report
    if start is None:
        start = _actions_start(wanted, end)
    try:
        splits, dividends = feed.corporate_actions(wanted, start, end)
    except FeedError as exc:
        report.error = exc
        _failed(feed.name, {t: exc for t in wanted}, now, alert=False)
        return report
    positions = list(Position.objects.filter(ticker__in=wanted).values_list(
        "id", "ticker", "created_at"))
    # In date order, a dividend before a split of the same day (the cycle's order): a split
    # applies when recorded, so the dividends going ex before it take their steps first, on
    # the shares held then.
    actions = sorted([*splits, *dividends], key=lambda a: (
        (a.effective_date, 1) if isinstance(a, Split) else (a.ex_date, 0)))
    for action in actions:
        day = action.effective_date if isinstance(action, Split) else action.ex_date
        for pid, ticker, created in positions:
            if ticker != action.symbol:
                continue
            if created >= held_before(day):
                report.before_opened += 1
                continue
            _record_action(action, pid, report)
    for ticker in wanted:
        # what the feed has said through today (a later fetch still asks past it: announcements)
        TickerFeed.objects.update_or_create(ticker=ticker,
                                            defaults={"actions_through": min(end, today)})
    return report


def _actions_start(tickers: list[str], end: dt.date) -> dt.date:
    opened = Position.objects.filter(ticker__in=tickers).aggregate(t=Min("created_at"))["t"]
    start = clock.trading_day(opened) if opened else end
    reached = TickerFeed.objects.filter(ticker__in=tickers)
    if reached.count() == len(tickers) and not reached.filter(actions_through=None).exists():
        through = reached.aggregate(t=Min("actions_through"))["t"]
        start = max(start, through - ACTIONS_OVERLAP)
    return min(start, end)


def _record_action(action: Split | CashDividend, position_id: str,
                   report: ActionsReport) -> None:
    """One action on one position, once: its own transaction with the position locked."""
    model = SplitRow if isinstance(action, Split) else Dividend
    try:
        with transaction.atomic():
            Position.objects.select_for_update().get(pk=position_id)
            if model.objects.filter(position_id=position_id, source_key=action.key).exists():
                report.existing += 1
                return
            if isinstance(action, Split):
                if action.effective_date <= clock.trading_day():
                    dividends_process(today=action.effective_date - dt.timedelta(days=1),
                                      position_id=position_id)
                row = split_announce(owner=None, position_id=position_id, ratio=action.ratio,
                                     effective_date=action.effective_date)
                report.applied += row.status == SplitStatus.APPLIED
                what = (f"split {action.new_rate}:{action.old_rate} effective "
                        f"{action.effective_date}")
            else:
                row = dividend_announce(owner=None, position_id=position_id,
                                        ex_date=action.ex_date,
                                        pay_date=action.payable_date or action.ex_date,
                                        dps=action.rate)
                what = f"dividend {fmt(action.rate)} ex {action.ex_date}"
            model.objects.filter(pk=row.pk).update(source_key=action.key)
            report.recorded.append(f"{position_id}: {what}")
    except IntegrityError:  # a concurrent fetch recorded it first (the key's constraint)
        report.existing += 1
    except STEP_ERRORS as exc:
        code = getattr(exc, "code", type(exc).__name__)
        line = (f"{position_id} {action.symbol} {action.key}: {code}: "
                f"{getattr(exc, 'message', None) or exc}")
        if code in ("split_exists", "dividend_exists"):
            report.conflicts.append(line)
        else:
            report.failed.append(line)


# --------------------------------------------------------------------------------------------
# The cycle's step
# --------------------------------------------------------------------------------------------


@dataclass
class FeedStep:
    """What the cycle's first step did: lines for the cycle's output, errors it counts, the
    tickers it could not price, and the session's open for :meth:`fresh`."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    opened: dt.datetime | None = None
    configured: bool = False
    say: Callable[[str], None] | None = None

    def _say(self, line: str) -> None:
        self.lines.append(line)
        if self.say is not None:
            self.say(line)

    def summary(self) -> str:
        """The sentence the cycle's summary ends with ("" without a feed or a miss)."""
        if not self.unpriced:
            return ""
        return f" Not priced by the feed: {', '.join(self.unpriced)}."

    def fresh(self, position_ids: set[str]) -> set[str]:
        """Of ``position_ids`` (to submit), those whose ticker's latest price is from the
        session in progress: a price older than the session's open is not submitted at
        (``price_stale``), said in :attr:`lines`."""
        if self.opened is None or not position_ids:
            return position_ids
        tickers = dict(Position.objects.filter(id__in=position_ids)
                       .values_list("id", "ticker"))
        latest = {}
        for ticker in set(tickers.values()):
            latest[ticker] = (Price.objects.filter(ticker=ticker).order_by("-ts")
                              .values_list("ts", flat=True).first())
        out = set()
        for pid in sorted(position_ids):
            ts = latest.get(tickers.get(pid))
            if ts is not None and ts < self.opened:
                self._say(
                    f"{pid} {tickers[pid]} not submitted: price_stale: its latest price is "
                    f"from {ts.isoformat()}, before the session's open "
                    f"({self.opened.isoformat()})")
            else:
                out.add(pid)
        return out


def cycle_feed_step(*, now: dt.datetime, say: Callable[[str], None] | None = None) -> FeedStep:
    """The trade cycle's first step: with a feed configured, record the latest trade of every
    ticker held by a position relying on the cycle, and, the first time in the session for a
    ticker, the held tickers' corporate actions. Never raises a feed's failure: it is alerted,
    counted in ``errors`` and named in the summary; the cycle goes on."""
    step = FeedStep(opened=market.open_of(now), say=say)
    say = step._say
    try:
        feed = configured_feed()
    except FeedError as exc:
        feed = None
        tickers = held_tickers(cycle_only=True)
        _failed(feed_named() or "configured", {t: exc for t in tickers}, now)
        step.unpriced = tickers
        step.errors.append(f"feed {exc.code}: {exc.message}")
        say(f"Feed not usable: {exc.code}: {exc.message}")
    if feed is None:
        return step
    step.configured = True
    prices = prices_fetch(feed=feed, tickers=held_tickers(cycle_only=True), now=now)
    if prices.recorded:
        say(f"{len(prices.recorded)} price(s) fetched from {feed.name}: "
            + ", ".join(f"{t} {fmt(tr.price)} at {tr.ts.isoformat()}"
                        for t, tr in sorted(prices.recorded.items())))
    step.unpriced = sorted(prices.unpriced)
    for ticker, why in sorted(prices.unpriced.items()):
        say(f"{ticker} not priced by {feed.name}: {why}")
    if prices.error is not None:
        step.errors.append(f"feed {prices.error.code}: {prices.error.message}")
    today = clock.trading_day(now)
    held = held_tickers()
    done = set(TickerFeed.objects.filter(ticker__in=held, actions_through__gte=today)
               .values_list("ticker", flat=True))
    due = [t for t in held if t not in done]
    if due:
        actions = corporate_actions_fetch(feed=feed, tickers=due, now=now)
        if actions.error is not None:
            step.errors.append(f"corporate actions {actions.error.code}: "
                               f"{actions.error.message}")
            say(f"Corporate actions not fetched: {actions.error.code}: "
                f"{actions.error.message}")
        for line in actions.recorded:
            say(f"recorded from {feed.name}: {line}")
        for line in actions.conflicts:
            say(f"corporate action not recorded (another on that date): {line}")
        for line in actions.failed:
            step.errors.append(f"corporate action not recorded: {line}")
            say(f"corporate action not recorded: {line}")
    return step

