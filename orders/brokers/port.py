"""The broker port: where an order goes once it is submitted, and how its fills come back.

A broker adapter does three things (docs/brokers.md#brokers): ``place`` an order, ``cancel`` it,
and ``poll`` for the status and the fills of the orders it holds. It speaks in the plain data
types below, never in models, and it is called with no database transaction open and no row
locked (the reconciliation service in :mod:`orders.brokers.service` commits the order before
calling it and applies what it answers in a new transaction, through the one fill service).

Adapters (one module each, beside this one): ``manual`` (nothing is routed, fills are typed
in through the API or the admin; the default), ``paper`` (a simulator that fills at the ticker's
first price whose market time is after the order was placed) and ``alpaca`` (Alpaca's trading API
through alpaca-py, its paper endpoint by default).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from positions.models import Broker as BrokerName
from positions.strategy import rules

OPEN, FILLED, CANCELLED, REJECTED = "open", "filled", "cancelled", "rejected"
EXPIRED = "expired"  # a day order the broker ended at the session's close (order_expired)

# Brokers that hold our orders at their end (not a simulator here): a cancel is a request sent
# to them and ends the order once they report it ended; they expire their own day orders.
HOLDING_BROKERS = frozenset({BrokerName.ALPACA})


@dataclass(frozen=True)
class Ticket:
    """What a broker is told about one of our orders (and, for the simulator, the account)."""

    order_id: str  # our id: also the client order id a real broker deduplicates on
    broker_order_id: str | None  # the broker's id once placed
    ticker: str
    side: str  # "BUY" | "SELL"
    qty: Decimal
    filled_qty: Decimal
    placed_at: dt.datetime
    account: rules.State  # the position's shares, cash, receivable and anchor, as read
    cfg: rules.Config
    slippage_bps: Decimal
    order_type: str = "market"  # "market" | "limit" (positions.models.OrderType)
    limit_price: Decimal | None = None  # a limit order's price, on the exchange's tick
    rung: str | None = None  # a resting order's rung ("BUY" | "SELL"), else None
    position_id: str = ""  # the position the order is of (a pair of rungs is one position's)


@dataclass(frozen=True)
class BrokerFill:
    """One execution as the broker reports it; ``broker_fill_id`` makes applying it idempotent."""

    broker_fill_id: str
    qty: Decimal
    price: Decimal
    commission: Decimal | None  # None: the position's commission rate applies
    at: dt.datetime | None = None


@dataclass(frozen=True)
class Report:
    """An order's status at the broker and every fill it has had so far."""

    order_id: str
    status: str  # OPEN | FILLED | CANCELLED | REJECTED | EXPIRED
    fills: tuple[BrokerFill, ...] = ()
    reason: str = ""  # why it ended, when it ended otherwise than filled


class BrokerRejected(Exception):
    """The broker refused the order: it will never fill."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class BrokerUnavailable(Exception):
    """The broker could not be reached or answered nothing usable: the outcome is unknown and
    the call is retried on the next cycle (a real adapter looks the order up by our id first).
    ``code`` is the machine code the ``broker_error`` event carries."""

    def __init__(self, message: str, code: str = "broker_unavailable"):
        super().__init__(message)
        self.code = code


class Broker(Protocol):
    name: str
    routes: bool  # False: orders stay here (manual)
    # True: fills happen only when a new price is recorded (paper), so the trade cycle polls
    # it with the positions a new price made due, not again for every open order.
    price_driven: bool

    def place(self, ticket: Ticket) -> str:
        """Send the order; returns the broker's id for it. Raises BrokerRejected or
        BrokerUnavailable."""

    def cancel(self, ticket: Ticket) -> None:
        """Ask the broker to cancel the order."""

    def poll(self, tickets: list[Ticket]) -> list[Report]:
        """The status and fills of these orders, one report each (in any order)."""
