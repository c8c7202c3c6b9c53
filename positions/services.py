"""Writes on positions: one function per use case, each one transaction."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

from django.db import transaction

from events.models import EventType
from events.services import event_record
from positions import rules
from positions.models import STRATEGY_FIELDS, Position
from positions.selectors import position_get
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


def position_create(
    *,
    owner,
    ticker: str,
    qty: Decimal,
    cash: Decimal,
    anchor_price: Decimal | None = None,
    **strategy,
) -> Position:
    """Open a position with shares, cash, an optional anchor and any strategy field."""
    unknown = set(strategy) - set(STRATEGY_FIELDS)
    if unknown:
        raise TypeError(f"unknown strategy fields: {sorted(unknown)}")
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
        )
        event_record(
            position_id=position.id,
            type=EventType.POSITION_CREATED,
            message=f"Position opened in {ticker} with {fmt(qty)} shares and {fmt(cash)} cash"
            + (f", anchor {fmt(anchor_price)}." if anchor_price is not None else "."),
            inputs={"ticker": ticker, "qty": qty, "cash": cash, "anchor_price": anchor_price},
            outputs={name: getattr(cfg, name) for name in STRATEGY_FIELDS},
        )
    return position


def position_configure(*, owner, position_id: str, changes: dict) -> Position:
    """Change strategy fields; records ``config_changed`` with the old and new values."""
    unknown = set(changes) - set(STRATEGY_FIELDS)
    if unknown:
        raise TypeError(f"unknown strategy fields: {sorted(unknown)}")
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        old = position.config()
        new = replace(old, **changes)
        config_validate(new)
        diff = {
            name: {"old": getattr(old, name), "new": getattr(new, name)}
            for name in STRATEGY_FIELDS
            if getattr(old, name) != getattr(new, name)
        }
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
            + ".",
            inputs={name: change["new"] for name, change in diff.items()},
            outputs={"changed": diff},
        )
    return position
