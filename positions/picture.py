"""A live position as a picture (the admin's position page): its ticker's price over the
position's life with the position's fills and its anchor over time, drawn by the same code as
the backtest plot's price panel (positions.strategy.export.charts)."""

from __future__ import annotations

import io

from events.models import Event, EventType
from orders.models import Fill
from positions.models import Position, Price
from positions.strategy.export import charts
from volbal import clock

MAX_PRICES = 5000  # the latest stored prices drawn; older ones are left out

# The events that move the anchor, and where each keeps the new anchor.
_ANCHOR_MOVES = (EventType.ANCHOR_SET, EventType.ANCHOR_UPDATED,
                 EventType.ANCHOR_ADJUSTED_FOR_DIVIDEND)


def position_history(position: Position) -> dict:
    """The picture's data: ``prices`` ``(ts, price)`` of the ticker since the position opened
    (the latest ``MAX_PRICES``), ``anchors`` ``(time, anchor or None)`` from the opening and
    every anchor event, ``fills`` ``(time, side, price)``; all oldest first."""
    prices = list(Price.objects.filter(ticker=position.ticker, ts__gte=position.created_at)
                  .order_by("-ts").values_list("ts", "price")[:MAX_PRICES])[::-1]
    fills = [(t, side, price) for t, side, price in Fill.objects.filter(
        order__position=position).order_by("created_at", "id").values_list(
        "created_at", "order__side", "price")]
    anchors = []
    for event_type, created_at, inputs, outputs in Event.objects.filter(
            position_id=position.pk, type__in=(EventType.POSITION_CREATED, *_ANCHOR_MOVES)
    ).order_by("id").values_list("type", "created_at", "inputs", "outputs"):
        if event_type == EventType.POSITION_CREATED:
            anchors.append((created_at, inputs.get("anchor_price")))
        else:
            anchors.append((created_at, outputs.get("new")))
    if not prices:  # no stored prices: the fills' prices draw the line
        prices = [(t, price) for t, _side, price in fills]
    return {"prices": prices, "anchors": anchors, "fills": fills}


def position_picture_png(position: Position) -> bytes:
    history = position_history(position)
    buffer = io.BytesIO()
    zone = clock.trading_tz()
    charts.write_position_plot(
        buffer, zone=zone, **history,
        title=f"{position.ticker}: price, fills and anchor ({zone.key})")
    return buffer.getvalue()
