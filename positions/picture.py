"""A live position as a picture (the admin's position page): its ticker's price over the
position's life with the position's fills and its anchor over time, drawn by the same code as
the backtest plot's price panel (positions.strategy.export.charts).

Everything is drawn at market time, the time of the prices (``Price.ts``). The fills and the
anchor's moves happened when they were recorded; each is placed at the market time of that
moment: the time of the newest price recorded by then, plus the time since that price was
recorded. For prices recorded as they happen the two clocks agree; for a position paper-traded
on a sample's history (prices dated 2010 imported today) the fills land beside the prices they
were made at (docs/admin.md#the-position-picture)."""

from __future__ import annotations

import bisect
import io

from events.models import Event, EventType
from orders.models import Fill
from orders.selectors import position_valuation, position_view
from positions.models import Position, Price
from positions.selectors import PriceSource
from positions.strategy.export import charts
from volbal import clock

MAX_PRICES = 5000  # the latest stored prices drawn; older ones are left out

# The events that move the anchor, and where each keeps the new anchor.
_ANCHOR_MOVES = (EventType.ANCHOR_SET, EventType.ANCHOR_UPDATED,
                 EventType.ANCHOR_ADJUSTED_FOR_DIVIDEND, EventType.SPLIT_APPLIED)


def _new_anchor(event_type: str, inputs: dict, outputs: dict):
    if event_type == EventType.POSITION_CREATED:
        return inputs.get("anchor_price")
    if event_type == EventType.SPLIT_APPLIED:
        return (outputs.get("after") or {}).get("anchor_price")
    return outputs.get("new")


class MarketClock:
    """The market time of a recorded moment (see the module's docstring), from the prices
    ``(ts, recorded_at)`` the position saw."""

    def __init__(self, seen: list[tuple]):
        self.recorded, self.ts = [], []
        newest = None
        for ts, recorded_at in sorted(seen, key=lambda r: r[1]):
            newest = ts if newest is None or ts > newest else newest
            self.recorded.append(recorded_at)
            self.ts.append(newest)

    def at(self, moment):
        if not self.recorded:
            return moment
        i = bisect.bisect_right(self.recorded, moment) - 1
        if i < 0:  # before any price was recorded: as long before the first one
            return self.ts[0] - (self.recorded[0] - moment)
        return self.ts[i] + (moment - self.recorded[i])


def position_history(position: Position) -> dict:
    """The picture's data: ``prices`` ``(ts, price)`` the position saw (the price it opened
    at and those recorded since, the latest ``MAX_PRICES``), ``anchors`` ``(time, anchor or
    None)`` from the opening and every anchor move (fills, evaluations, dividends, splits),
    ``fills`` ``(time, side, price)``; all at market time, oldest first. The line ends at the
    position's valuation price when a fill is newer than every stored price (as the API
    values it) after the last price at market time too."""
    ticker = Price.objects.filter(ticker=position.ticker)
    rows = list(ticker.filter(created_at__gte=position.created_at)
                .order_by("-ts").values_list("ts", "price", "created_at")[:MAX_PRICES])[::-1]
    opening = (ticker.filter(created_at__lt=position.created_at)
               .order_by("-ts").values_list("ts", "price", "created_at").first())
    if opening is not None and (not rows or opening[0] < rows[0][0]):
        rows.insert(0, opening)
    market = MarketClock([(ts, recorded_at) for ts, _p, recorded_at in rows])
    prices = [(ts, price) for ts, price, _r in rows]
    fills = [(market.at(t), side, price) for t, side, price in Fill.objects.filter(
        order__position=position).order_by("created_at", "id").values_list(
        "created_at", "order__side", "price")]
    anchors = [
        (market.at(created_at), _new_anchor(event_type, inputs, outputs))
        for event_type, created_at, inputs, outputs in Event.objects.filter(
            position_id=position.pk, type__in=(EventType.POSITION_CREATED, *_ANCHOR_MOVES)
        ).order_by("id").values_list("type", "created_at", "inputs", "outputs")
    ]
    if not prices:  # no stored prices: the fills' prices draw the line
        prices = [(t, price) for t, _side, price in fills]
    # valued as stored (its last fill is a column of the row, which this picture reads afresh
    # like the rest of the history)
    valuation = position_valuation(position_view(owner=None, position_id=position.pk))
    if valuation.source == PriceSource.FILL and fills and fills[-1][0] > prices[-1][0]:
        prices.append((fills[-1][0], valuation.price))
    return {"prices": prices, "anchors": anchors, "fills": fills}


def position_picture_png(position: Position) -> bytes:
    history = position_history(position)
    buffer = io.BytesIO()
    zone = clock.trading_tz()
    charts.write_position_plot(
        buffer, zone=zone, **history,
        title=f"{position.ticker}: price, fills and anchor at market time")
    return buffer.getvalue()
