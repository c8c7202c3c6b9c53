"""The paper broker: a market order fills at its ticker's first price observed after the order
was placed, by the price's market time (``ts``, docs/strategy.md#market-data), never by when
it was recorded: a backfill of older prices imported after the order does not fill it. A price
whose ``ts`` equals the order's creation is not after it (the order may have been placed at
that very price); a ticker has one price per ``ts``, so there is no tie. The fill is worsened by
the position's slippage, with the position's commission (docs/strategy.md#live-loop: exactly as
the backtest's ``fill: next_bar``). What the cash (a buy)
or the shares (a sell) no longer cover at that price is trimmed, rounded down to the position's
step; an order nothing covers is cancelled.

A resting limit order (docs/strategy.md#resting-orders) fills at the first price after it was
placed, by market time, that reaches its limit (a buy: at or below it; a sell: at or above):
at the limit, or at that price when it is better (the market gapped through), with no slippage
(a limit is the worst price it takes), trimmed as a market order is; the rule is the backtest's
``fill: limit`` on closes (``ladder.limit_fill_price``).

The simulator keeps no state of its own: its answers follow from the order and the stored
prices, so a repeated poll answers the same fill with the same id."""

from __future__ import annotations

from orders.brokers.port import CANCELLED, FILLED, OPEN, BrokerFill, Report, Ticket
from positions.models import Broker as BrokerName
from positions.models import Price
from positions.strategy import rules
from positions.strategy.ladder import limit_fill_price
from volbal.renderers import decimal_text as fmt


class PaperBroker:
    name = BrokerName.PAPER
    routes = True
    price_driven = True

    def place(self, ticket: Ticket) -> str:
        return f"paper-{ticket.order_id}"

    def cancel(self, ticket: Ticket) -> None:
        return None  # nothing rests anywhere: the order simply is not polled any more

    def poll(self, tickets: list[Ticket]) -> list[Report]:
        """Each ticket's report; of a position's two rungs at most one fills per poll (the
        trade cycle polls once per evaluation): the first by market time, and the other is
        cancelled, as the backtest cancels the other side when a rung fills and rests the new
        ladder's rungs from the next bar (docs/strategy.md#resting-orders)."""
        reports = [self._report(t) for t in tickets]
        first: dict[str, tuple] = {}  # position -> (ts, ticket) of its earliest rung fill
        for t, (report, ts) in zip(tickets, reports, strict=True):
            if t.rung is not None and report.fills and (
                    t.position_id not in first or ts < first[t.position_id][0]):
                first[t.position_id] = (ts, t, report)
        out = []
        for t, (report, _ts) in zip(tickets, reports, strict=True):
            won = first.get(t.position_id) if t.rung is not None else None
            if won is not None and report.fills and won[1] is not t:
                fill = won[2].fills[0]
                report = Report(t.order_id, CANCELLED, reason=(
                    f"the {won[1].rung.lower()} rung filled first, at {fmt(fill.price)} "
                    f"({won[0].isoformat()}): the other side is cancelled and the new ladder's "
                    "rungs rest from the next cycle"))
            out.append(report)
        return out

    def _report(self, t: Ticket) -> tuple[Report, object]:
        """The ticket's report and the market time of the price it fills at (None: none)."""
        later = Price.objects.filter(ticker=t.ticker, ts__gt=t.placed_at)
        if t.limit_price is not None:  # the first later price that reaches the limit
            later = later.filter(**{"price__lte" if t.side == rules.BUY else "price__gte":
                                    t.limit_price})
        price = later.order_by("ts").first()
        if price is None:
            return Report(t.order_id, OPEN), None
        fill_price = (rules.slipped_price(price.price, t.side, t.slippage_bps)
                      if t.limit_price is None
                      else limit_fill_price(t.side, t.limit_price, open=price.price))
        remaining = t.qty - t.filled_qty
        q = rules.covered_qty(t.cfg, t.side, remaining, held=t.account.qty,
                              cash=t.account.cash, price=fill_price)
        what = "cash" if t.side == rules.BUY else "shares held"
        if not q > 0:
            return Report(t.order_id, CANCELLED, reason=(
                f"at {fmt(fill_price)} the {what} no longer cover any of the "
                f"{fmt(remaining)} shares")), price.ts
        fill = BrokerFill(f"{t.broker_order_id}:1", q, fill_price,
                          rules.default_commission(t.cfg, q, fill_price), price.ts)
        if q == remaining:
            return Report(t.order_id, FILLED, (fill,)), price.ts
        return Report(t.order_id, CANCELLED, (fill,), reason=(
            f"trimmed to {fmt(q)} of {fmt(remaining)} shares: at {fmt(fill_price)} the {what} "
            "cover no more")), price.ts
