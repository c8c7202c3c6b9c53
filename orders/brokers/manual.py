"""The manual broker: today's behaviour. Nothing is routed; fills are typed in through
``POST /v1/orders/{id}/fill`` or the admin, and cancels happen there too."""

from __future__ import annotations

from orders.brokers.port import Report, Ticket
from positions.models import Broker as BrokerName


class ManualBroker:
    name = BrokerName.MANUAL
    routes = False
    price_driven = False

    def place(self, ticket: Ticket) -> str:  # never called: routes is False
        return ticket.order_id

    def cancel(self, ticket: Ticket) -> None:
        return None

    def poll(self, tickets: list[Ticket]) -> list[Report]:
        return []
