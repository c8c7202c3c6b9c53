"""The ONE writer of a position's books: its shares (``qty``), ``cash``, ``dividend_receivable``
and ``anchor_price``.

Every change of those columns goes through a function here: a fill, a dividend's ex-date and
pay-date steps, a split, the anchor an evaluation sets (docs/strategy.md), and the cash
movements of positions and portfolios (docs/portfolios.md: a portfolio's unallocated cash is
written here too). Each takes the
position its caller has already locked (``select_for_update`` inside ``transaction.atomic``),
asks the pure rule (:mod:`positions.strategy.rules`) what the books become, refuses what the
columns could not hold, saves and records its event (:func:`events.services.event_record`).
A refusal raises :class:`~positions.strategy.rules.RuleError` (the rules') or
:class:`~volbal.errors.DomainError` (a column's capacity) and writes nothing.

It knows nothing of orders: a fill is a side, a quantity, a price and a commission, and the
order it belongs to is only an id for the event. The position's opening values are set once, by
:func:`positions.services.position_create`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from events.models import EventType
from events.services import event_record
from positions.models import Dividend, Portfolio, Position
from positions.strategy import rules
from volbal.columns import capacity, out_of_range
from volbal.errors import DomainError
from volbal.ids import new_id
from volbal.renderers import decimal_text as fmt
from volbal.rows import update_many

# --- Fills -----------------------------------------------------------------------------------


def fill_effect(*, position: Position, side: str, qty: Decimal, price: Decimal,
                commission: Decimal) -> tuple[Decimal, Decimal]:
    """The shares and cash a fill leaves (``rules.apply_fill``), written nowhere: raises the
    rules' refusal (``RuleError``) or 409 ``balance_out_of_range`` when a column could not hold
    the result. The fill service asks this before it changes anything."""
    new_qty, new_cash = rules.apply_fill(qty=position.qty, cash=position.cash, side=side,
                                         fill_qty=qty, price=price, commission=commission)
    too_large = out_of_range((Position, "qty", new_qty), (Position, "cash", new_cash))
    if too_large:
        raise balance_out_of_range(too_large)
    return new_qty, new_cash


def balance_out_of_range(what: str) -> DomainError:
    """409 ``balance_out_of_range``: after a fill ``what`` (a column's name) would not fit."""
    return DomainError("balance_out_of_range",
                       f"After this fill the {what} would exceed what it can hold "
                       f"(less than {fmt(capacity(Position, 'cash'))}).", status=409)


def fill(*, position: Position, side: str, qty: Decimal, price: Decimal, commission: Decimal,
         at: dt.datetime, order_id: str | None = None) -> tuple[Decimal, Decimal]:
    """Apply a fill to the books: shares and cash (:func:`fill_effect`, refused as it
    refuses), the anchor to the fill's price (``anchor_updated``, naming ``order_id``), and
    the position's last fill (its price and ``at``, the fill's time: the known price,
    orders.selectors.known_price). Returns the new shares and cash."""
    new_qty, new_cash = fill_effect(position=position, side=side, qty=qty, price=price,
                                    commission=commission)
    old_anchor = position.anchor_price
    position.qty, position.cash, position.anchor_price = new_qty, new_cash, price
    if position.last_fill_at is None or at >= position.last_fill_at:
        position.last_fill_price, position.last_fill_at = price, at
    position.save(update_fields=["qty", "cash", "anchor_price", "last_fill_price",
                                 "last_fill_at", "updated_at"])
    event_record(
        position_id=position.id,
        order_id=order_id,
        type=EventType.ANCHOR_UPDATED,
        message=f"Anchor {'unset' if old_anchor is None else fmt(old_anchor)} -> "
        f"{fmt(price)} after the fill.",
        inputs={"fill_price": price},
        outputs={"old": old_anchor, "new": price},
    )
    return new_qty, new_cash


# --- Dividends (docs/strategy.md#dividends) ---------------------------------------------------


def _refuse_dividend(*checks: tuple) -> None:
    too_large = out_of_range(*checks)
    if too_large:
        raise DomainError("dividend_out_of_range", f"The {too_large} would exceed what it can "
                          f"hold (less than {fmt(capacity(Position, 'cash'))}).", status=409)


@dataclass(frozen=True)
class ExDividend:
    """What a dividend's ex-date step did to the books."""

    gross: Decimal
    net: Decimal
    anchor_before: Decimal | None
    anchor_after: Decimal | None


def ex_dividend(*, position: Position, dividend_id: str, ex_date: dt.date, dps: Decimal,
                withholding_rate: Decimal, shares: Decimal, adjust_anchor: bool) -> ExDividend:
    """The ex-date step: the net dividend on ``shares`` (those held at the start of the
    ex-date) added to the receivable (``ex_div_effective``) and, with ``adjust_anchor``, the
    anchor lowered by ``dps`` (unset when that leaves nothing;
    ``anchor_adjusted_for_dividend``). 409 ``dividend_out_of_range`` when a column could not
    hold the amounts."""
    gross, net = rules.dividend_amounts(dps=dps, shares=shares,
                                        withholding_rate=withholding_rate)
    _refuse_dividend((Dividend, "entitlement_qty", shares), (Dividend, "gross_amount", gross),
                     (Dividend, "net_amount", net),
                     (Position, "dividend_receivable", position.dividend_receivable + net))
    position.dividend_receivable += net
    old_anchor = position.anchor_price
    new_anchor = old_anchor
    adjust = old_anchor is not None and adjust_anchor
    if adjust:
        new_anchor = old_anchor - dps if old_anchor > dps else None
        position.anchor_price = new_anchor
    position.save(update_fields=["dividend_receivable", "anchor_price", "updated_at"])
    event_record(
        position_id=position.id, type=EventType.EX_DIV_EFFECTIVE,
        message=f"Ex-date {ex_date}: {fmt(shares)} shares × {fmt(dps)} = "
        f"{fmt(gross)} gross, {fmt(net)} net after {fmt(withholding_rate)} withholding; "
        f"receivable now {fmt(position.dividend_receivable)}"
        + (f"; anchor {fmt(old_anchor)} kept: it is a price of the ex-date or later, already "
           "ex-dividend." if old_anchor is not None and not adjust else "."),
        inputs={"dividend_id": dividend_id, "shares": shares, "dps": dps,
                "withholding_tax_rate": withholding_rate},
        outputs={"gross": gross, "net": net, "receivable": position.dividend_receivable,
                 "anchor_adjusted": adjust},
    )
    if adjust:
        event_record(
            position_id=position.id, type=EventType.ANCHOR_ADJUSTED_FOR_DIVIDEND,
            message=f"Anchor {fmt(old_anchor)} -> "
            f"{'unset' if new_anchor is None else fmt(new_anchor)} for the {fmt(dps)} "
            "dividend, so the ex-date drop is not taken for a buy trigger.",
            inputs={"dividend_id": dividend_id, "dps": dps},
            outputs={"old": old_anchor, "new": new_anchor},
        )
    return ExDividend(gross, net, old_anchor, new_anchor)


def dividend_paid(*, position: Position, dividend_id: str, pay_date: dt.date,
                  net: Decimal) -> None:
    """The pay-date step: the net amount moves from the receivable to the cash
    (``dividend_cash_received``). 409 ``dividend_out_of_range`` when the cash could not hold
    it."""
    _refuse_dividend((Position, "cash", position.cash + net))
    position.cash += net
    position.dividend_receivable -= net
    position.save(update_fields=["cash", "dividend_receivable", "updated_at"])
    event_record(
        position_id=position.id, type=EventType.DIVIDEND_CASH_RECEIVED,
        message=f"Pay-date {pay_date}: {fmt(net)} dividend cash received; cash now "
        f"{fmt(position.cash)}.",
        inputs={"dividend_id": dividend_id, "net": net},
        outputs={"cash": position.cash, "receivable": position.dividend_receivable},
    )


def dividend_corrected(*, position: Position, dividend_id: str, split_id: str, ex_date: dt.date,
                       dps: Decimal, withholding_rate: Decimal, shares_before: Decimal,
                       shares: Decimal, net_before: Decimal, paid: bool
                       ) -> tuple[Decimal, Decimal]:
    """A processed dividend's entitlement corrected to ``shares`` after a split it counts for
    was applied late (docs/strategy.md#dividends-across-splits): the difference in the net
    amount goes to the receivable, or to the cash once the dividend was paid
    (``dividend_entitlement_corrected``). 409 ``dividend_out_of_range`` when the column could
    not hold it (or it would go below zero). Returns the new (gross, net)."""
    gross, net = rules.dividend_amounts(dps=dps, shares=shares,
                                        withholding_rate=withholding_rate)
    delta = net - net_before
    column = "cash" if paid else "dividend_receivable"
    after = getattr(position, column) + delta
    _refuse_dividend((Dividend, "entitlement_qty", shares), (Dividend, "gross_amount", gross),
                     (Dividend, "net_amount", net), (Position, column, after))
    if after < 0:
        raise DomainError("dividend_out_of_range", f"Correcting dividend {dividend_id} by "
                          f"{fmt(delta)} would take the {column} below zero.", status=409)
    setattr(position, column, after)
    position.save(update_fields=[column, "updated_at"])
    event_record(
        position_id=position.id, type=EventType.DIVIDEND_ENTITLEMENT_CORRECTED,
        message=f"Ex-date {ex_date}: split {split_id} counts for this dividend, so the "
        f"entitlement is {fmt(shares)} shares, not {fmt(shares_before)}: {fmt(gross)} gross, "
        f"{fmt(net)} net; {fmt(delta)} booked to the {column.replace('_', ' ')}.",
        inputs={"dividend_id": dividend_id, "split_id": split_id, "shares_before": shares_before,
                "shares": shares, "dps": dps, "withholding_tax_rate": withholding_rate},
        outputs={"gross": gross, "net": net, "net_before": net_before, "difference": delta,
                 "to": column, column: after},
    )
    return gross, net


# --- Splits (docs/strategy.md#splits) ---------------------------------------------------------


def split(*, position: Position, split_id: str, ratio: Fraction, effective_date: dt.date,
          step: Decimal | None, price_before: Decimal | None,
          orders: list[dict] = ()) -> rules.SplitResult:
    """A split of ``ratio`` (k = new/old, exactly): shares × k rounded to ``step`` with the
    fraction paid in cash at ``price_before``, the anchor ÷ k (``split_applied``). ``orders``
    are the open orders the caller re-sized (``{"order_id", "remaining_before",
    "remaining_after"}``), named in the event. 409 ``split_out_of_range`` when the anchor
    would round to zero or a column could not hold the result."""
    result = rules.apply_split(qty=position.qty, cash=position.cash,
                               anchor=position.anchor_price, ratio=ratio, step=step,
                               price_before=price_before)
    if position.anchor_price is not None and result.anchor is None:
        raise DomainError("split_out_of_range", f"After the split the anchor "
                          f"{fmt(position.anchor_price)} / {rules.split_ratio_text(ratio)} would "
                          "round to zero at "
                          "the 6 decimal places anchors are kept to; nothing was applied.",
                          status=409)
    too_big = out_of_range((Position, "qty", result.qty), (Position, "cash", result.cash))
    if too_big:
        raise DomainError("split_out_of_range", f"After the split the {too_big} would be "
                          "beyond what the books can hold; nothing was applied.", status=409)
    old = {"qty": position.qty, "cash": position.cash, "anchor_price": position.anchor_price}
    position.qty, position.cash, position.anchor_price = result.qty, result.cash, result.anchor
    if position.last_split_date is None or effective_date > position.last_split_date:
        position.last_split_date = effective_date  # the known price's split check
    position.save(update_fields=["qty", "cash", "anchor_price", "last_split_date",
                                 "updated_at"])
    orders = list(orders)
    event_record(
        position_id=position.id, type=EventType.SPLIT_APPLIED,
        message=f"Split {rules.split_ratio_text(ratio)} effective {effective_date}: shares "
        f"{fmt(old['qty'])} -> {fmt(result.qty)}, anchor "
        f"{'unset' if old['anchor_price'] is None else fmt(old['anchor_price'])} -> "
        f"{'unset' if result.anchor is None else fmt(result.anchor)}"
        + (f", {fmt(result.cash_in_lieu)} cash in lieu of the fraction" if result.cash_in_lieu
           else "")
        + _orders_clause(orders) + ".",
        inputs={"split_id": split_id, "ratio": rules.split_ratio_text(ratio),
                "effective_date": effective_date,
                "step": step, "price_before": price_before},
        outputs={"before": old,
                 "after": {"qty": result.qty, "cash": result.cash,
                           "anchor_price": result.anchor},
                 "cash_in_lieu": result.cash_in_lieu, "orders": orders},
    )
    return result


def _orders_clause(orders) -> str:
    """``, 2 open order(s) re-sized, 1 cancelled (nothing left to trade)``: the open orders a
    split changed, as :func:`orders.services.orders_resize_for_split` reports them."""
    ended = sum(1 for o in orders if o["remaining_after"] == 0)
    resized = len(orders) - ended
    return ((f", {resized} open order(s) re-sized" if resized else "")
            + (f", {ended} open order(s) cancelled (nothing left to trade)" if ended else ""))


def anchor_corrected_for_split(*, position: Position, split_id: str, dividend_ids: list[str],
                               anchor: Decimal) -> None:
    """The anchor after a split applied after the ex-date step of dividends it counts for, put
    where the split would have put it had it come first: Pa / k less each dps
    (docs/strategy.md#dividends-across-splits), not (Pa - dps) / k. Recorded as an
    ``anchor_adjusted_for_dividend`` naming the split. 409 ``split_out_of_range`` when that
    leaves nothing (the dividends exceed the price of the split's shares); the caller's
    transaction then keeps nothing of the split."""
    if not anchor > 0:
        raise DomainError("split_out_of_range", f"After the split the anchor less the "
                          f"dividend(s) {', '.join(dividend_ids)} of its ex-date(s) would be "
                          f"{fmt(anchor)}, nothing left; nothing was applied.", status=409)
    old = position.anchor_price
    position.anchor_price = anchor
    position.save(update_fields=["anchor_price", "updated_at"])
    event_record(
        position_id=position.id, type=EventType.ANCHOR_ADJUSTED_FOR_DIVIDEND,
        message=f"Anchor {'unset' if old is None else fmt(old)} -> {fmt(anchor)}: split "
        f"{split_id} counts for dividend(s) {', '.join(dividend_ids)}, so the anchor is the "
        "split's anchor less their dividends, as had the split come first.",
        inputs={"split_id": split_id, "dividend_ids": dividend_ids},
        outputs={"old": old, "new": anchor},
    )


# --- The anchor an evaluation sets -------------------------------------------------------------

# The columns an evaluation changes: the anchor it sets (a position with none), the marks of
# the trade cycle (the stored price it evaluated at, the end of its claim) and the price-jump
# guard's reference (positions/workflows/guard.py).
MARK_FIELDS = ("evaluated_price_ts", "cycle_lease_until", "anchor_price", "guard_ref_price",
               "guard_ref_ts", "updated_at")


def anchor_set(*, position: Position, anchor: Decimal, price: Decimal) -> None:
    """The anchor of a position that had none, set to the price it was evaluated at
    (``anchor_set``). In memory: the evaluation saves it with its marks, one row
    (:func:`marks_save`) or a batch (:func:`marks_save_many`)."""
    position.anchor_price = anchor
    event_record(position_id=position.id, type=EventType.ANCHOR_SET,
                 message=f"Anchor set to {fmt(anchor)}: the position had none.",
                 inputs={"price": price}, outputs={"old": None, "new": anchor})


def marks_save(position: Position, fields) -> None:
    """Save an evaluation's changes of one position (``fields``, of :data:`MARK_FIELDS`)."""
    position.save(update_fields=[*fields, "updated_at"])


def marks_of(position: Position) -> dict:
    """A position's :data:`MARK_FIELDS` as they stand, for :func:`marks_save_many`."""
    return {name: getattr(position, name) for name in MARK_FIELDS}


def marks_save_many(changes: dict[str, dict]) -> int:
    """Save the evaluations of a batch (position id → :func:`marks_of`): one UPDATE
    (:func:`volbal.rows.update_many`), the trade cycle's speed."""
    return update_many(Position, changes, MARK_FIELDS)


# --- Cash movements (docs/portfolios.md#events) ----------------------------------------------
# A deposit, a withdrawal or a transfer changes the cash of a position (C) or of a portfolio
# (its unallocated cash F), both locked by the caller. None is a trade: the anchor, the daily
# cap and the reasons are untouched (docs/strategy.md#cash-movements).

PORTFOLIO = "portfolio"  # the account name of a portfolio's unallocated cash F
MANUAL, REBALANCE = "manual", "rebalance"  # the reasons of a movement

Account = Position | Portfolio


def account_name(account: Account) -> str:
    """``"portfolio"`` for a portfolio's F, the position's id for its cash."""
    return PORTFOLIO if isinstance(account, Portfolio) else account.id


def _portfolio_id(account: Account) -> str | None:
    return account.id if isinstance(account, Portfolio) else account.portfolio_id


def _moved(account: Account, amount: Decimal) -> Decimal:
    """``account``'s cash after ``amount`` (the rule, then the column's capacity), unwritten."""
    try:
        new_cash = rules.apply_cash_movement(cash=account.cash, amount=amount)
    except rules.RuleError as exc:
        status = 400 if exc.code == "invalid_amount" else 409
        raise DomainError(exc.code, f"{account_name(account)}: {exc.message}",
                          status=status) from None
    if out_of_range((type(account), "cash", new_cash)):
        raise DomainError("balance_out_of_range", f"After this movement the cash of "
                          f"{account_name(account)} would exceed what it can hold (less than "
                          f"{fmt(capacity(type(account), 'cash'))}).", status=409)
    return new_cash


def _save_cash(account: Account, cash: Decimal) -> None:
    account.cash = cash
    account.save(update_fields=["cash", "updated_at"])


def cash_move(*, account: Account, amount: Decimal, reason: str = MANUAL) -> Decimal:
    """Add ``amount`` to ``account``'s cash from outside (> 0: ``cash_deposited``) or take it
    out (< 0: ``cash_withdrawn``); 409 ``insufficient_cash`` rather than below zero, 400
    ``invalid_amount`` for zero. Returns the new cash."""
    cash = _moved(account, amount)  # refuses zero (the rule), an overdraw and an overflow
    _save_cash(account, cash)
    name = account_name(account)
    deposit = amount > 0
    event_record(
        position_id="" if name == PORTFOLIO else name, portfolio_id=_portfolio_id(account),
        type=EventType.CASH_DEPOSITED if deposit else EventType.CASH_WITHDRAWN,
        message=f"{fmt(abs(amount))} {'deposited to' if deposit else 'withdrawn from'} "
        f"{name}; cash now {fmt(cash)}.",
        inputs={"amount": abs(amount), "from": None if deposit else name,
                "to": name if deposit else None, "reason": reason},
        outputs={"balances": {name: cash}},
    )
    return cash


def cash_transfer(*, portfolio: Portfolio, source: Account, target: Account, amount: Decimal,
                  reason: str = MANUAL) -> str:
    """Move ``amount`` (> 0) from ``source``'s cash to ``target``'s, two accounts of
    ``portfolio`` (its F or its positions; the caller checks membership and locks all three):
    ``cash_transferred`` on each position it touches (docs/portfolios.md#cash_transferred).
    409 ``insufficient_cash`` rather than below zero. Returns the transfer's id."""
    if not amount > 0:
        raise DomainError("invalid_amount", "A transfer must be greater than zero.", status=400)
    src, dst = account_name(source), account_name(target)
    if src == dst:
        raise DomainError("same_account", f"A transfer needs two accounts, not {src} twice.",
                          status=400)
    src_cash, dst_cash = _moved(source, -amount), _moved(target, amount)
    _save_cash(source, src_cash)
    _save_cash(target, dst_cash)
    transfer_id = new_id("trf")
    inputs = {"amount": amount, "from": src, "to": dst, "reason": reason,
              "transfer_id": transfer_id}
    outputs = {"balances": {src: src_cash, dst: dst_cash}}
    for name in (src, dst):
        if name != PORTFOLIO:
            event_record(
                position_id=name, portfolio_id=portfolio.id, type=EventType.CASH_TRANSFERRED,
                message=f"{fmt(amount)} transferred from {src} to {dst}"
                f"{' (rebalance)' if reason == REBALANCE else ''}; cash now {fmt(src_cash)} "
                f"and {fmt(dst_cash)}.",
                inputs=inputs, outputs=outputs,
            )
    return transfer_id
