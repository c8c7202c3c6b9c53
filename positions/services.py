"""Writes on positions: one function per use case, each one transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
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
    Position,
    Price,
    price_ts_error,
)
from positions.selectors import KnownPrice, PriceSource, known_price, latest_price, position_get
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
    """The execution fields (broker, slippage_bps): a 400 naming the field."""
    errors = {}
    if "broker" in values and values["broker"] not in Broker.values:
        errors["broker"] = "broker must be one of: " + ", ".join(Broker.values) + "."
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
            outputs={**{name: getattr(cfg, name) for name in STRATEGY_FIELDS},
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


# --- Evaluation (Flow B) ---------------------------------------------------------------------

_GUARDRAIL_CAPS = ("guardrail_high", "guardrail_low")
ORDER_QTY_LIMIT = Decimal(10) ** 16  # an order's qty column holds 24 digits, 8 of them decimals


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation decided and did."""

    position: Position
    decision: rules.Decision | None  # None when there was no price to evaluate at
    price_source: str  # a PriceSource: request, stored, fill or none
    price_ts: object = None  # when the known price was observed (stored or fill), else None
    order: object = None  # the order submitted with ``submit``
    reason: str = ""
    message: str = ""


def proposal_payload(proposal: rules.Proposal) -> dict:
    return {
        "side": proposal.side,
        "qty": proposal.qty,
        "price": proposal.price,
        "notional": proposal.notional,
        "commission": proposal.commission,
        "kind": proposal.kind,
        "raw_qty": proposal.raw_qty,
        "trimmed": proposal.trimmed,
        "trimmed_by": proposal.trimmed_by,
        "post_trade_weight": proposal.post_trade_weight,
        "reason": proposal.reason,
    }


def decision_payload(decision: rules.Decision) -> dict:
    """The decision as the API and the ``evaluation`` event show it."""
    blocked = []
    if decision.blocked is not None:
        blocked.append({**proposal_payload(decision.blocked), "blocked_by": decision.blocked_by})
    return {
        "price": decision.price,
        "anchor_price": decision.anchor,
        "anchor_set": decision.anchor_set,
        "value": decision.value,
        "weight": decision.weight,
        "proposals": [proposal_payload(decision.proposal)] if decision.proposal else [],
        "blocked": blocked,
        "reason": decision.reason,
        "message": decision.message,
    }


def position_decide(*, position: Position, price: Decimal) -> rules.Decision:
    """The rules applied to a position as it stands: read-only (the admin's preview uses it)."""
    from decimal import InvalidOperation

    from orders.services import has_open_order, orders_created_today

    try:
        return rules.evaluate(
            position.state(), position.config(), price,
            orders_today=orders_created_today(position=position),
            has_open_order=has_open_order(position=position),
        )
    except InvalidOperation:  # a size beyond 28 significant digits: no order could hold it
        raise DomainError("qty_out_of_range", f"At price {fmt(price)} the position's size is "
                          "beyond what an order can hold; nothing was evaluated.",
                          status=409) from None


def position_evaluate(*, owner, position_id: str, price: Decimal | None = None,
                      submit: bool = False, source: str = "api",
                      skip_if_evaluated_at_latest: bool = False,
                      mark_latest: bool = False) -> Evaluation | None:
    """Evaluate a position at ``price`` (or its ticker's latest stored price), record the
    decision and, with ``submit``, place the proposal through the same submission service as
    the orders endpoint. One transaction, the position row locked.

    With ``skip_if_evaluated_at_latest`` (cron) returns None when the position was already
    evaluated with ``submit`` at the latest stored price. Only a submitting evaluation marks
    the price as done: a look (a dry run, the API without submit) must not stop the run that
    places the order. The trade cycle passes ``mark_latest``: its evaluation is the record
    for that price whether or not it submits, and it ends the cycle's claim on the position."""
    from orders.services import order_submit
    from positions.splits import guard_decision, splits_apply_due

    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        if splits_apply_due(position_id=position.id).applied:  # never trade across a split
            position.refresh_from_db()
        price_source, price_ts = PriceSource.REQUEST, None
        if price is None:
            if mark_latest:  # the cycle evaluates at the new stored price that called for it
                stored = latest_price(ticker=position.ticker)
                known = stored and KnownPrice(price=stored.price, ts=stored.ts,
                                              source=PriceSource.STORED)
            else:
                known = known_price(position)
            if known is not None:
                if skip_if_evaluated_at_latest and position.evaluated_price_ts == known.ts:
                    return None
                price, price_source, price_ts = known.price, known.source, known.ts
                if submit or mark_latest:
                    position.evaluated_price_ts = known.ts
                    position.cycle_lease_until = None
                    position.save(update_fields=["evaluated_price_ts", "cycle_lease_until",
                                                 "updated_at"])
        if price is None:
            message = (f"No price to evaluate {position.ticker} at: none was given and none is "
                       "stored (POST /v1/prices).")
            event_record(position_id=position.id, type=EventType.EVALUATION, message=message,
                         inputs={"price": None, "source": source},
                         outputs={"price": None, "anchor_price": position.anchor_price,
                                  "anchor_set": False, "value": None, "weight": None,
                                  "proposals": [], "blocked": [], "reason": "no_price",
                                  "message": message, "order_id": None})
            return Evaluation(position=position, decision=None, price_source=PriceSource.NONE,
                              reason="no_price", message=message)

        decision = guard_decision(position=position,
                                  decision=position_decide(position=position, price=price),
                                  price_ts=price_ts, price_source=price_source)
        if decision.blocked_by == "price_jump_unconfirmed" and price_ts is not None:
            # held back, not done: once the price is confirmed the next run submits at it
            position.evaluated_price_ts = None
            position.save(update_fields=["evaluated_price_ts", "updated_at"])
        if decision.anchor_set:
            position.anchor_price = decision.anchor
            position.save(update_fields=["anchor_price", "updated_at"])
            event_record(position_id=position.id, type=EventType.ANCHOR_SET,
                         message=f"Anchor set to {fmt(decision.anchor)}: the position had none.",
                         inputs={"price": price}, outputs={"old": None, "new": decision.anchor})

        order = None
        if submit and decision.proposal is not None:
            if decision.proposal.qty >= ORDER_QTY_LIMIT:
                raise DomainError(
                    "qty_out_of_range",
                    f"The proposal to {decision.proposal.side} {fmt(decision.proposal.qty)} "
                    "shares is more than an order can hold (under 10^16 shares); nothing was "
                    "submitted.", status=409)
            order = order_submit(position=position, side=decision.proposal.side,
                                 qty=decision.proposal.qty, source="evaluation",
                                 note=decision.proposal.kind, price=price)
        payload = decision_payload(decision)
        event_record(
            position_id=position.id,
            order_id=order.id if order else None,
            type=EventType.EVALUATION,
            message=decision.message,
            inputs={"price": price, "price_source": price_source, "price_ts": price_ts,
                    "submit": submit,
                    "source": source, "qty": position.qty, "cash": position.cash,
                    "dividend_receivable": position.dividend_receivable},
            outputs={**payload, "order_id": order.id if order else None},
        )
        shown = decision.proposal or decision.blocked
        if shown is not None and shown.trimmed_by in _GUARDRAIL_CAPS:
            event_record(
                position_id=position.id, order_id=order.id if order else None,
                type=EventType.ORDER_TRIMMED_GUARDRAIL,
                message=f"{shown.side} trimmed from {fmt(shown.raw_qty)} to {fmt(shown.qty)} "
                f"by the {shown.trimmed_by.replace('_', ' ')}.",
                inputs={"raw_qty": shown.raw_qty, "price": price},
                outputs={"qty": shown.qty, "trimmed_by": shown.trimmed_by,
                         "post_trade_weight": shown.post_trade_weight},
            )
        if decision.blocked_by == "below_min_notional":
            event_record(
                position_id=position.id, type=EventType.ORDER_REJECTED_MIN,
                message=f"{decision.blocked.side} {fmt(decision.blocked.qty)} "
                f"({fmt(decision.blocked.notional)}) is below the minimum notional "
                f"{fmt(position.min_notional)}: not placed.",
                inputs={"notional": decision.blocked.notional,
                        "min_notional": position.min_notional},
                outputs=proposal_payload(decision.blocked),
            )
    return Evaluation(position=position, decision=decision, price_source=price_source,
                      price_ts=price_ts, order=order, reason=decision.reason,
                      message=decision.message)


# --- Prices ----------------------------------------------------------------------------------


def prices_record(*, rows: list[dict], batch_size: int = 2000, progress=None) -> list[Price]:
    """Store observed prices ``{ticker, price, ts}`` in one transaction (a price already stored
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
                          ts=row["ts"], **who))
    seen = {}
    for obj in objs:  # the last of duplicates in one batch wins
        seen[(obj.ticker, obj.ts)] = obj
    unique = list(seen.values())
    with transaction.atomic():
        for start in range(0, len(unique), batch_size):
            Price.objects.bulk_create(unique[start:start + batch_size], update_conflicts=True,
                                      unique_fields=["ticker", "ts"],
                                      update_fields=["price", *who])
            if progress is not None:
                progress(min(start + batch_size, len(unique)))
    return unique
