"""Writes on positions: one function per use case, each one transaction."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

from django.db import transaction

from events.actor import current_actor
from events.models import EventType
from events.services import event_record
from positions.models import (
    EXECUTION_FIELDS,
    SLIPPAGE_BPS_MAX,
    STRATEGY_FIELDS,
    Broker,
    OrderType,
    Position,
    Price,
    price_ts_error,
)
from positions.selectors import (
    position_get,
)
from positions.strategy import rules
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt

TICKER_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,15}$")


def ticker_normalize(raw: str) -> str:
    """Upper-case and validate a ticker (letters, digits, dot and dash; starts with a letter)."""
    ticker = raw.strip().upper()
    if not TICKER_RE.match(ticker):
        raise DomainError(
            "validation_error",
            "ticker must be 1 to 16 characters: a letter, then letters, digits, '.' or '-'.",
            status=400,
            fields={"ticker": "Not a valid ticker."},
        )
    return ticker


def _show(value) -> str:
    return fmt(value) if isinstance(value, Decimal) else str(value)


def config_validate(cfg: rules.Config) -> None:
    errors = rules.config_errors(cfg)
    if errors:
        first = next(iter(errors.items()))
        raise DomainError(
            "validation_error", f"Invalid input. {first[0]}: {first[1]}", status=400, fields=errors
        )


def execution_validate(values: dict) -> None:
    """The execution fields (broker, slippage_bps, auto_submit, order_type): a 400 naming the
    field."""
    errors = {}
    if "broker" in values and values["broker"] not in Broker.values:
        errors["broker"] = "broker must be one of: " + ", ".join(Broker.values) + "."
    if "order_type" in values and values["order_type"] not in OrderType.values:
        errors["order_type"] = "order_type must be one of: " + ", ".join(OrderType.values) + "."
    if "auto_submit" in values and not isinstance(values["auto_submit"], bool):
        errors["auto_submit"] = "auto_submit must be true or false."
    bps = values.get("slippage_bps", Decimal(0))
    if not (isinstance(bps, Decimal) and bps.is_finite() and 0 <= bps < SLIPPAGE_BPS_MAX):
        errors["slippage_bps"] = "slippage_bps must be at least 0 and less than 10000."
    if errors:
        first = next(iter(errors.items()))
        raise DomainError(
            "validation_error", f"Invalid input. {first[0]}: {first[1]}", status=400, fields=errors
        )


def position_create(
    *,
    owner,
    ticker: str,
    qty: Decimal,
    cash: Decimal,
    anchor_price: Decimal | None = None,
    **strategy,
) -> Position:
    """Open a position with shares, cash, an optional anchor, any strategy field and the
    execution fields (``broker``, ``slippage_bps``)."""
    unknown = set(strategy) - set(STRATEGY_FIELDS) - set(EXECUTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown strategy fields: {sorted(unknown)}")
    execution = {k: strategy.pop(k) for k in EXECUTION_FIELDS if k in strategy}
    execution_validate(execution)
    ticker = ticker_normalize(ticker)
    cfg = replace(rules.Config(), **strategy)
    config_validate(cfg)
    if qty < 0 or cash < 0:
        raise DomainError(
            "validation_error",
            "qty and cash must not be negative.",
            status=400,
            fields={k: "Must be zero or more." for k, v in (("qty", qty), ("cash", cash)) if v < 0},
        )
    if anchor_price is not None and anchor_price <= 0:
        raise DomainError(
            "validation_error",
            "anchor_price must be greater than zero.",
            status=400,
            fields={"anchor_price": "Must be greater than zero."},
        )
    with transaction.atomic():
        position = Position.objects.create(
            owner=owner,
            ticker=ticker,
            qty=qty,
            cash=cash,
            anchor_price=anchor_price,
            opening_qty=qty,
            opening_cash=cash,
            **{name: getattr(cfg, name) for name in STRATEGY_FIELDS},
            **execution,
        )
        event_record(
            position_id=position.id,
            type=EventType.POSITION_CREATED,
            message=f"Position opened in {ticker} with {fmt(qty)} shares and {fmt(cash)} cash"
            + (f", anchor {fmt(anchor_price)}." if anchor_price is not None else "."),
            inputs={"ticker": ticker, "qty": qty, "cash": cash, "anchor_price": anchor_price},
            outputs={"owner_id": position.owner_id,
                     **{name: getattr(cfg, name) for name in STRATEGY_FIELDS},
                     **{name: getattr(position, name) for name in EXECUTION_FIELDS}},
        )
    return position


def position_configure(*, owner, position_id: str, changes: dict,
                       origin: dict | None = None) -> Position:
    """Change strategy fields; records ``config_changed`` with the old and new values.
    ``origin`` (e.g. the sweep and cell applied) is named in the event's message and inputs."""
    unknown = set(changes) - set(STRATEGY_FIELDS) - set(EXECUTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown strategy fields: {sorted(unknown)}")
    execution = {k: v for k, v in changes.items() if k in EXECUTION_FIELDS}
    execution_validate(execution)
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        old = position.config()
        new = replace(old, **{k: v for k, v in changes.items() if k in STRATEGY_FIELDS})
        config_validate(new)
        diff = {
            name: {"old": getattr(old, name), "new": getattr(new, name)}
            for name in STRATEGY_FIELDS
            if getattr(old, name) != getattr(new, name)
        }
        diff.update({
            name: {"old": getattr(position, name), "new": value}
            for name, value in execution.items() if getattr(position, name) != value
        })
        if not diff:
            return position
        for name, change in diff.items():
            setattr(position, name, change["new"])
        position.save(update_fields=[*diff, "updated_at"])
        event_record(
            position_id=position.id,
            type=EventType.CONFIG_CHANGED,
            message="Configuration changed: "
            + ", ".join(f"{n} {_show(c['old'])} -> {_show(c['new'])}" for n, c in diff.items())
            + (f" (sweep {origin['sweep_id']}, cell {origin['cell']}: {origin['label']})"
               if origin else "")
            + ".",
            inputs={name: change["new"] for name, change in diff.items()}
            | ({"origin": origin} if origin else {}),
            outputs={"changed": diff},
        )
    return position


# --- Evaluation (docs/strategy.md#evaluation) -------------------------------------------------


# --- Prices ----------------------------------------------------------------------------------


def prices_record(*, rows: list[dict], batch_size: int = 2000, progress=None) -> list[Price]:
    """Store observed prices ``{ticker, price, ts}`` (and optionally ``source``, the feed a
    fetched price came from: docs/marketdata.md) in one transaction (a price already stored
    for the same ticker and time is replaced; of duplicates within ``rows`` the last wins).
    Returns the prices as stored, one per ticker and time, in the order first given.

    Each price records who recorded it (:func:`events.actor.current_actor`); a replaced price
    takes the new recorder."""
    actor = current_actor()
    who = {"recorded_source": actor.source, "recorded_user_id": actor.user_id,
           "recorded_by": actor.name}
    objs = []
    for row in rows:
        if row["price"] <= 0:
            raise DomainError("validation_error", "price must be greater than zero.",
                              status=400, fields={"price": "Must be greater than zero."})
        future = price_ts_error(row["ts"])
        if future:
            raise DomainError("validation_error", f"Invalid input. ts: {future}", status=400,
                              fields={"ts": future})
        objs.append(Price(ticker=ticker_normalize(row["ticker"]), price=row["price"],
                          ts=row["ts"], source=row.get("source", ""), **who))
    seen = {}
    for obj in objs:  # the last of duplicates in one batch wins
        seen[(obj.ticker, obj.ts)] = obj
    unique = list(seen.values())
    with transaction.atomic():
        for start in range(0, len(unique), batch_size):
            Price.objects.bulk_create(unique[start:start + batch_size], update_conflicts=True,
                                      unique_fields=["ticker", "ts"],
                                      update_fields=["price", "source", *who])
            if progress is not None:
                progress(min(start + batch_size, len(unique)))
    return unique
