"""The Alpaca broker: Alpaca's trading API through its maintained SDK, alpaca-py (its paper
endpoint unless ``ALPACA_PAPER=false``).

- Credentials come from the environment only (``ALPACA_API_KEY_ID``, ``ALPACA_API_SECRET_KEY``;
  ``ALPACA_BASE_URL`` overrides the endpoint, for a proxy or the tests' replay server). Nothing
  is stored; without them every call is a :class:`BrokerUnavailable` with the machine code
  ``alpaca_credentials_missing`` (a ``broker_error`` event), never a crash.
- ``place`` sends a market day order whose ``client_order_id`` is our order id; a resting rung
  (docs/strategy.md#resting-orders) goes as a limit day order at its ``limit_price`` (on the
  tick already; fractional quantities are allowed for day limit orders). Alpaca refuses a
  second order with the same client id (422 "client_order_id must be unique"): a retry after a
  lost answer (or the SDK's own retry of a 504) looks the order up by that id instead, so an
  order is never placed twice. 403 and other 422 answers are refusals (``broker_rejected``);
  401, 429 (after the SDK's retries), 5xx and network errors leave the outcome unknown
  (``broker_error``; the order is tried again on the next cycle).
- ``poll`` reads each order's status (``GET /v2/orders/{id}``), then the account's FILL
  activities since the oldest order was placed (``GET /v2/account/activities/FILL``, paged):
  each execution, partial or not, has its own activity id, which is the fill's
  ``broker_fill_id``. The order's cumulative ``filled_qty`` only checks them: an order Alpaca
  has ended whose activities do not yet add up to its filled quantity is reported open until
  they do, so it is never ended here before its last fill is applied. alpaca-py's
  TradingClient has no method for activities (alpaca-py#232), so they are read through the
  client's own REST helper, as raw JSON: prices and quantities stay exact decimals.
- ``cancel`` asks Alpaca to cancel (``DELETE /v2/orders/{id}``); an order it can no longer
  cancel (422, 404) has ended there, which the next poll reports.

The SDK's requests carry no timeout and it retries every method on 429 and 504: the client
here gets a timeout and the retry settings below; the client order id makes a retried POST safe.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal, InvalidOperation

from orders.brokers.port import (
    CANCELLED,
    EXPIRED,
    FILLED,
    OPEN,
    REJECTED,
    BrokerFill,
    BrokerRejected,
    BrokerUnavailable,
    Report,
    Ticket,
)
from positions.models import Broker as BrokerName
from positions.strategy import rules
from volbal.renderers import decimal_text as fmt

TIMEOUT_SECONDS = 10  # per HTTP request (the SDK sets none)
RETRY_ATTEMPTS = 3  # on 429 and 504, as the SDK's default
RETRY_WAIT_SECONDS = 3
ACTIVITIES_PAGE = 100  # Alpaca's largest page of account activities
LOOKBACK = dt.timedelta(minutes=5)  # clock skew between us and Alpaca when reading activities

# Alpaca's order statuses (alpaca.trading.enums.OrderStatus) as the port's: anything not ended
# (new, accepted, pending_*, partially_filled, held, done_for_day, ...) is open.
_ENDED = {"filled": FILLED, "canceled": CANCELLED, "expired": EXPIRED, "rejected": REJECTED}


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def paper_mode() -> bool:
    """True unless ``ALPACA_PAPER`` says false: orders go to the paper endpoint by default."""
    return _env("ALPACA_PAPER").lower() not in ("false", "0", "no", "off")


def _client():
    """A TradingClient from the environment's credentials (read on every use, never stored)."""
    key, secret = _env("ALPACA_API_KEY_ID"), _env("ALPACA_API_SECRET_KEY")
    if not key or not secret:
        raise BrokerUnavailable(
            "ALPACA_API_KEY_ID and ALPACA_API_SECRET_KEY are not set in the environment",
            code="alpaca_credentials_missing")
    # alpaca-py (and requests under it) is imported where a call needs it, here and below:
    # a heavy SDK only positions on the alpaca broker use; every process loads this module.
    import requests
    from alpaca.trading.client import TradingClient

    class _TimeoutSession(requests.Session):
        def request(self, *args, **kwargs):
            kwargs.setdefault("timeout", TIMEOUT_SECONDS)
            return super().request(*args, **kwargs)

    client = TradingClient(api_key=key, secret_key=secret, paper=paper_mode(),
                           url_override=_env("ALPACA_BASE_URL") or None)
    # alpaca-py's RESTClient keeps these as attributes and TradingClient takes no arguments
    # for them: a timeout on every request, and its retry of 429/504 bounded here.
    client._session = _TimeoutSession()
    client._retry, client._retry_wait = RETRY_ATTEMPTS, RETRY_WAIT_SECONDS
    return client


def _unavailable(exc, action: str) -> BrokerUnavailable:
    """What an error leaves unknown: retried on the next cycle."""
    # alpaca-py: a heavy optional SDK (see the client above); alpaca_http imports requests
    import requests
    from alpaca.common.exceptions import APIError

    from positions.marketdata.alpaca_http import api_error_parts

    if isinstance(exc, APIError):
        status, code, message = api_error_parts(exc)
        machine = ("alpaca_unauthorized" if status in (401,)
                   else "alpaca_rate_limited" if status == 429
                   else "alpaca_server_error" if status and status >= 500
                   else "alpaca_error")
        detail = f"code {code}: {message}" if code else message
        return BrokerUnavailable(f"Alpaca answered {status} to {action} ({detail})", machine)
    if isinstance(exc, requests.RequestException):
        return BrokerUnavailable(f"Alpaca could not be reached to {action} "
                                 f"({type(exc).__name__})", "alpaca_unreachable")
    return BrokerUnavailable(f"Alpaca's answer to {action} was not understood "
                             f"({type(exc).__name__}: {exc})", "alpaca_bad_answer")


def _decimal(value, what: str) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError):
        raise BrokerUnavailable(f"Alpaca reported a {what} that is not a number: {value!r}",
                                "alpaca_bad_answer") from None


def _time(value) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


class AlpacaBroker:
    name = BrokerName.ALPACA
    routes = True
    price_driven = False  # fills happen at Alpaca, whatever prices are recorded here

    def place(self, ticket: Ticket) -> str:
        # alpaca-py: a heavy optional SDK (see the client above); alpaca_http imports requests
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

        from positions.marketdata.alpaca_http import api_error_parts

        client = _client()
        fields = dict(
            symbol=ticket.ticker, qty=float(ticket.qty - ticket.filled_qty),
            side=OrderSide.BUY if ticket.side == rules.BUY else OrderSide.SELL,
            time_in_force=TimeInForce.DAY, client_order_id=ticket.order_id)
        request = (MarketOrderRequest(**fields) if ticket.limit_price is None
                   else LimitOrderRequest(**fields, limit_price=float(ticket.limit_price)))
        try:
            return str(client.submit_order(request).id)
        except APIError as exc:
            status, code, message = api_error_parts(exc)
            if status == 422 and "client_order_id" in message and "unique" in message:
                return self._placed_before(client, ticket)
            if status in (403, 422):
                raise BrokerRejected(
                    "alpaca_forbidden" if status == 403 else "alpaca_invalid_order",
                    f"Alpaca answered {status} (code {code}): {message}") from None
            raise _unavailable(exc, "place the order") from None
        except Exception as exc:
            raise _unavailable(exc, "place the order") from None

    def _placed_before(self, client, ticket: Ticket) -> str:
        """The order Alpaca already holds under our id (an earlier attempt reached it)."""
        try:
            return str(client.get_order_by_client_id(ticket.order_id).id)
        except Exception as exc:
            raise _unavailable(exc, "look the order up by its client order id") from None

    def cancel(self, ticket: Ticket) -> None:
        # alpaca-py: a heavy optional SDK (see the client above)
        from alpaca.common.exceptions import APIError

        if not ticket.broker_order_id:
            return None
        client = _client()
        try:
            client.cancel_order_by_id(ticket.broker_order_id)
        except APIError as exc:
            if exc.status_code in (404, 422):  # ended there already: the next poll says how
                return None
            raise _unavailable(exc, "cancel the order") from None
        except Exception as exc:
            raise _unavailable(exc, "cancel the order") from None
        return None

    def poll(self, tickets: list[Ticket]) -> list[Report]:
        tickets = [t for t in tickets if t.broker_order_id]
        if not tickets:
            return []
        client = _client()
        try:
            # The statuses first, then the fills: an order read as ended has every fill it
            # ended with among the activities read after it.
            orders = {t.order_id: client.get_order_by_id(t.broker_order_id) for t in tickets}
            activities = self._fills_since(client, min(t.placed_at for t in tickets) - LOOKBACK)
        except BrokerUnavailable:
            raise
        except Exception as exc:
            raise _unavailable(exc, "report the orders' status and fills") from None
        by_order: dict[str, list[BrokerFill]] = {}
        for a in activities:
            by_order.setdefault(str(a.get("order_id")), []).append(BrokerFill(
                broker_fill_id=str(a["id"]), qty=_decimal(a.get("qty"), "fill quantity"),
                price=_decimal(a.get("price"), "fill price"), commission=None,
                at=_time(a.get("transaction_time"))))
        return [self._report(t, orders[t.order_id], by_order.get(t.broker_order_id, []))
                for t in tickets]

    def _fills_since(self, client, since: dt.datetime) -> list[dict]:
        """Every FILL activity of the account since ``since``, oldest first, page by page."""
        params = {"after": since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "direction": "asc", "page_size": ACTIVITIES_PAGE}
        out: list[dict] = []
        while True:
            page = client.get("/account/activities/FILL", params) or []
            out.extend(a for a in page if a.get("activity_type", "FILL") == "FILL")
            if len(page) < ACTIVITIES_PAGE:
                return out
            params = {**params, "page_token": page[-1]["id"]}

    def _report(self, t: Ticket, order, fills: list[BrokerFill]) -> Report:
        status = _ENDED.get(str(getattr(order.status, "value", order.status)), OPEN)
        reported = _decimal(order.filled_qty or 0, "filled quantity")
        seen = sum((f.qty for f in fills), Decimal(0))
        if status != OPEN and seen < reported:
            # Alpaca ended it but its last executions are not among the activities yet.
            return Report(t.order_id, OPEN, tuple(fills))
        reason = {
            CANCELLED: f"cancelled at Alpaca with {fmt(reported)} filled",
            EXPIRED: "a day order, Alpaca expired it at the session's close",
            REJECTED: "Alpaca rejected the order",
        }.get(status, "")
        return Report(t.order_id, status, tuple(fills), reason=reason)
