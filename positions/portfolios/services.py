"""Writes on portfolios: one function per use case, each one transaction. The cash itself is
written by positions.books (the one writer of the books); here the rows are locked (the
portfolio first, then its positions in id order), the request checked and the books called."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from events.models import EventType
from events.services import event_record
from orders.services import (
    cash_committed,
    cash_out_check,
    position_configure_replacing_rungs,
    resting_orders_replace,
)
from positions import books
from positions.models import Portfolio, Position, Rebalance
from positions.portfolios.selectors import members, portfolio_get, position_value
from positions.selectors import position_get
from positions.services import position_create
from positions.strategy import rules
from positions.strategy.rules import portfolio as rule
from positions.strategy.rules.config import is_number
from positions.strategy.rules.portfolio import rule_errors
from volbal import clock
from volbal.columns import out_of_range
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt

PORTFOLIO_FIELDS = ("name", "rebalance", "rebalance_band")
MEMBERSHIP_FIELDS = ("portfolio", "target_weight")
NAME_MAX = Portfolio._meta.get_field("name").max_length


def _invalid(field: str, sentence: str) -> DomainError:
    return DomainError("validation_error", f"Invalid input. {field}: {sentence}", status=400,
                       fields={field: sentence})


def _check_bound(name: str, value) -> None:
    """``value`` of a portfolio field within its bounds (rules.BOUNDS), or a 400 naming it."""
    b = rules.BOUNDS[name]
    if value is None and b.nullable:
        return
    if b.kind == "choice":
        ok = isinstance(value, str) and value in b.choices
    else:
        ok = is_number(value) and b.holds(value)
    if not ok:
        raise _invalid(name, b.sentence(name))


# Characters a name must not hold: they are invisible, or reorder the text around them where
# the name is shown (a bidi override can make "pay" read "yap" in a list or a log).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def _check_portfolio(values: dict) -> None:
    """A portfolio's name (a string of 1 to NAME_MAX characters, none a control character or
    a bidi control) and rebalancing rule; the API, the admin and the commands come here."""
    name = values.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise _invalid("name", f"name must be 1 to {NAME_MAX} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in BIDI_CONTROLS for c in name):
        raise _invalid("name", "name must not hold control characters or bidirectional "
                       "text controls.")
    errors = rule_errors(values["rebalance"], values["rebalance_band"])
    if errors:
        raise _invalid(*next(iter(errors.items())))


def portfolio_create(*, owner, name: str, cash: Decimal = Decimal(0),
                     rebalance: str = Rebalance.NEVER,
                     rebalance_band: Decimal | None = None) -> Portfolio:
    """Open a portfolio with unallocated cash ``cash`` (its opening cash, not a deposit) and a
    rebalancing rule (``portfolio_created``)."""
    values = {"name": name, "rebalance": rebalance, "rebalance_band": rebalance_band}
    _check_portfolio(values)
    if not is_number(cash) or cash < 0 or out_of_range((Portfolio, "cash", cash)):
        raise _invalid("cash", "cash must be zero or more, within what the books can hold.")
    with transaction.atomic():
        portfolio = Portfolio.objects.create(owner=owner, cash=cash, opening_cash=cash,
                                             **values)
        event_record(
            position_id="", portfolio_id=portfolio.id, type=EventType.PORTFOLIO_CREATED,
            message=f"Portfolio {name!r} opened with {fmt(cash)} unallocated cash, rebalance "
            f"{rebalance}" + (f" (band {fmt(rebalance_band)})" if rebalance_band else "") + ".",
            inputs={"name": name, "cash": cash, "rebalance": rebalance,
                    "rebalance_band": rebalance_band},
            outputs={"owner_id": owner.pk},
        )
    return portfolio


def portfolio_configure(*, owner, portfolio_id: str, changes: dict) -> Portfolio:
    """Change a portfolio's name or rebalancing rule (``portfolio_changed``)."""
    unknown = set(changes) - set(PORTFOLIO_FIELDS)
    if unknown:
        raise TypeError(f"unknown portfolio fields: {sorted(unknown)}")
    with transaction.atomic():
        portfolio = portfolio_get(owner=owner, portfolio_id=portfolio_id, for_update=True)
        new = {name: changes.get(name, getattr(portfolio, name)) for name in PORTFOLIO_FIELDS}
        if "rebalance_band" not in changes and new["rebalance"] != Rebalance.BAND:
            new["rebalance_band"] = None  # a band applies only to "band": leaving it drops it
        _check_portfolio(new)
        diff = {n: {"old": getattr(portfolio, n), "new": v} for n, v in new.items()
                if getattr(portfolio, n) != v}
        if not diff:
            return portfolio
        for name, change in diff.items():
            setattr(portfolio, name, change["new"])
        portfolio.save(update_fields=[*diff, "updated_at"])
        event_record(
            position_id="", portfolio_id=portfolio.id, type=EventType.PORTFOLIO_CHANGED,
            message="Portfolio changed: " + ", ".join(
                f"{n} {c['old']} -> {c['new']}" for n, c in diff.items()) + ".",
            inputs={n: c["new"] for n, c in diff.items()}, outputs={"changed": diff},
        )
    return portfolio


# --- Membership --------------------------------------------------------------------------------


def _portfolios_locked(owner, ids) -> dict[str, Portfolio]:
    """The portfolios ``ids`` (None skipped) locked in id order (so two requests never lock
    them crosswise), each the caller's or 404 ``portfolio_not_found``."""
    return {pid: portfolio_get(owner=owner, portfolio_id=pid, for_update=True)
            for pid in sorted({i for i in ids if i is not None})}


def _weights_check(portfolio: Portfolio, position_id: str, weight: Decimal | None) -> None:
    """Σ target weights of ``portfolio`` with ``position_id``'s set to ``weight`` ≤ 1, or 409
    ``target_weights_exceed_one``. The caller holds the portfolio's lock: no two requests
    raise the sum at once."""
    others = sum((w for w in Position.objects.filter(portfolio_id=portfolio.id)
                  .exclude(pk=position_id).exclude(target_weight=None)
                  .values_list("target_weight", flat=True)), Decimal(0))
    total = others + (weight or 0)
    if total > 1:
        raise DomainError("target_weights_exceed_one", f"The target weights of {portfolio.id} "
                          f"would sum to {fmt(total)}: at most 1 (the other positions already "
                          f"take {fmt(others)}).", status=409)


def position_membership_set(*, owner, position_id: str, changes: dict) -> Position:
    """A position joins (``portfolio``: an id), leaves (``portfolio``: None) or changes its
    ``target_weight`` in its portfolio: ``config_changed`` with the portfolio's id and the
    position's value at that moment (docs/portfolios.md#membership-and-settings)."""
    unknown = set(changes) - set(MEMBERSHIP_FIELDS)
    if unknown:
        raise TypeError(f"unknown membership fields: {sorted(unknown)}")
    if "target_weight" in changes:
        _check_bound("target_weight", changes["target_weight"])
    with transaction.atomic():
        seen = position_get(owner=owner, position_id=position_id)
        old_pid = seen.portfolio_id
        new_pid = changes.get("portfolio", old_pid)
        locked = _portfolios_locked(owner, (old_pid, new_pid))
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        if position.portfolio_id != old_pid:
            raise DomainError("membership_conflict", f"{position_id} changed portfolio "
                              "meanwhile; retry.", status=409)
        if old_pid is not None and new_pid is not None and new_pid != old_pid:
            raise DomainError("position_in_other_portfolio", f"{position_id} is in portfolio "
                              f"{old_pid}: leave it first (PATCH \"portfolio\": null).",
                              status=409)
        weight = changes.get("target_weight", position.target_weight if new_pid else None)
        if new_pid is None and weight is not None:
            raise _invalid("target_weight", "target_weight needs a portfolio.")
        if new_pid is not None:
            _weights_check(locked[new_pid], position.id, weight)
        diff = {name: {"old": old, "new": new} for name, old, new in (
            ("portfolio", old_pid, new_pid), ("target_weight", position.target_weight, weight))
            if old != new}
        if not diff:
            return position
        position.portfolio_id, position.target_weight = new_pid, weight
        position.save(update_fields=["portfolio", "target_weight", "updated_at"])
        _price, value = position_value(position)
        event_record(
            position_id=position.id, portfolio_id=new_pid or old_pid,
            type=EventType.CONFIG_CHANGED,
            message=("Joined portfolio " + new_pid if old_pid is None else
                     "Left portfolio " + old_pid if new_pid is None else
                     "Target weight in " + new_pid)
            + (f", target weight {fmt(weight)}" if weight is not None else "")
            + (f"; value {fmt(value)}" if value is not None else "") + ".",
            inputs={name: change["new"] for name, change in diff.items()},
            outputs={"changed": diff, "value": value},
        )
    return position


def position_open(*, owner, portfolio: str | None = None,
                  target_weight: Decimal | None = None, **fields) -> Position:
    """Open a position (:func:`positions.services.position_create`) and, with ``portfolio``,
    put it in that portfolio with ``target_weight``: one transaction."""
    with transaction.atomic():
        position = position_create(owner=owner, **fields)
        if portfolio is not None or target_weight is not None:
            position = position_membership_set(
                owner=owner, position_id=position.id,
                changes={"portfolio": portfolio, "target_weight": target_weight})
    return position


def position_update(*, owner, position_id: str, changes: dict) -> None:
    """A position's PATCH: its membership (:func:`position_membership_set`) and its strategy
    (:func:`orders.services.position_configure_replacing_rungs`: a changed ladder replaces its
    resting orders), in one transaction."""
    membership = {k: changes[k] for k in MEMBERSHIP_FIELDS if k in changes}
    rest = {k: v for k, v in changes.items() if k not in MEMBERSHIP_FIELDS}
    with transaction.atomic():
        if membership:
            position_membership_set(owner=owner, position_id=position_id, changes=membership)
        if rest or not membership:
            position_configure_replacing_rungs(owner=owner, position_id=position_id,
                                               changes=rest)


# --- Cash movements (docs/strategy.md#cash-movements) -------------------------------------------


def portfolio_cash_move(*, owner, portfolio_id: str, amount: Decimal) -> Portfolio:
    """Deposit (``amount`` > 0) to or withdraw (< 0) from the portfolio's unallocated cash;
    409 ``insufficient_cash`` rather than below zero."""
    with transaction.atomic():
        portfolio = portfolio_get(owner=owner, portfolio_id=portfolio_id, for_update=True)
        books.cash_move(account=portfolio, amount=amount)
    return portfolio


def position_cash_move(*, owner, position_id: str, amount: Decimal) -> Position:
    """Deposit to or withdraw from a position's own cash, as :func:`portfolio_cash_move`. Not a
    trade: the anchor, the daily cap and the reasons are untouched."""
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        _ladder_moved(position)  # its resting rungs go with the movement: they commit nothing
        if is_number(amount) and amount < 0:
            cash_out_check(position, -amount)
        books.cash_move(account=position, amount=amount)
    return position


def _ladder_moved(*accounts) -> None:
    """Cash moved in or out of these accounts: a position's ladder moved with it, so its
    resting orders are replaced (docs/strategy.md#resting-orders; the next cycle rests the new
    rungs). The caller holds the positions' locks."""
    for account in accounts:
        if isinstance(account, Position):
            resting_orders_replace(position=account,
                                   reason="the ladder moved: cash moved in or out")


def portfolio_transfer(*, owner, portfolio_id: str, source: str, target: str,
                       amount: Decimal) -> tuple[str, dict]:
    """Move ``amount`` between two accounts of the portfolio (``"portfolio"``: its unallocated
    cash, or one of its positions' ids). Returns the transfer's id and the balances after."""
    if source == target:
        raise DomainError("same_account", f"from and to are both {source}: a transfer needs "
                          "two accounts.", status=400)
    with transaction.atomic():
        portfolio = portfolio_get(owner=owner, portfolio_id=portfolio_id, for_update=True)
        accounts = {books.PORTFOLIO: portfolio}
        for pid in sorted({source, target} - {books.PORTFOLIO}):  # id order: no crosswise locks
            position = position_get(owner=owner, position_id=pid, for_update=True)
            if position.portfolio_id != portfolio.id:
                raise DomainError("position_not_in_portfolio", f"{pid} is not a position of "
                                  f"{portfolio.id}.", status=409)
            accounts[pid] = position
        _ladder_moved(accounts[source], accounts[target])
        if isinstance(accounts[source], Position) and is_number(amount) and amount > 0:
            cash_out_check(accounts[source], amount)
        transfer_id = books.cash_transfer(portfolio=portfolio, source=accounts[source],
                                          target=accounts[target], amount=amount)
    return transfer_id, {source: accounts[source].cash, target: accounts[target].cash}


# --- Rebalancing (docs/strategy.md#portfolios) ---------------------------------------------------


NOT_DUE, DONE_THIS_SESSION = "not due", "rebalanced this session already"
QUIET_SKIPS = (NOT_DUE, DONE_THIS_SESSION)  # what the trade cycle does not report


@dataclass
class Rebalanced:
    """What a rebalance of one portfolio did: its moves (from, to, amount), or why it did
    nothing (``skipped``: a sentence)."""

    portfolio_id: str
    moves: list[tuple[str, str, Decimal]] = field(default_factory=list)
    skipped: str | None = None

    @property
    def turnover(self) -> Decimal:
        return sum((amount for _f, _t, amount in self.moves), Decimal(0))

    def text(self) -> str:
        if self.skipped:
            return f"{self.portfolio_id}: not rebalanced: {self.skipped}"
        if not self.moves:
            return f"{self.portfolio_id}: rebalanced, nothing to move"
        return (f"{self.portfolio_id}: rebalanced, {len(self.moves)} move(s), "
                f"{fmt(self.turnover)} moved: " + "; ".join(
                    f"{fmt(a)} {f} -> {t}" for f, t, a in self.moves))


def _holdings(positions: list[Position]) -> list[rule.Holding] | str:
    """The positions as the pure rule takes them (each at its known price), or why not. What
    a position's open buys commit (:func:`orders.services.cash_committed`) is not available
    to move: the rule sees those buys as filled (their shares held, their cost spent), so no
    move takes that cash and the position keeps it after."""
    holdings = []
    for p in positions:
        price, _value = position_value(p)
        if price is None and p.qty:
            return f"no known price for {p.id} ({p.ticker}), which holds shares"
        committed = cash_committed(p)
        held = p.qty + committed.qty if committed.cash else p.qty
        holdings.append(rule.Holding(weight=p.target_weight or Decimal(0), qty=held,
                                     price=price or Decimal(0),
                                     cash=max(p.cash - committed.cash, Decimal(0)),
                                     receivable=p.dividend_receivable))
    return holdings


def _first_session(portfolio: Portfolio) -> dt.date:
    return portfolio.last_rebalanced_on or clock.session_day(portfolio.created_at)


def portfolio_rebalance(*, portfolio_id: str, owner=None, session: dt.date | None = None,
                        when_due: bool = False) -> Rebalanced:
    """Move cash between the portfolio's unallocated cash and its positions toward their
    target weights by the pure rule (rules.portfolio.rebalance), in one transaction: the
    portfolio and its positions locked, the positions giving cash back first (so F never goes
    below zero on the way), each move a ``cash_transferred`` with reason ``rebalance``; the
    session recorded as ``last_rebalanced_on``. ``when_due``: only if the portfolio's rule
    says so at ``session`` (rules.portfolio.rebalance_due: the period's first session, or a
    band drift; once a session), as the trade cycle asks. 409 ``price_unknown`` (by hand)
    when a position holding shares has no known price; the cycle skips it."""
    session = session or clock.session_day()
    with transaction.atomic():
        portfolio = portfolio_get(owner=owner, portfolio_id=portfolio_id, for_update=True)
        positions = members(portfolio, for_update=True)
        holdings = _holdings(positions)
        if isinstance(holdings, str):
            if when_due:
                return Rebalanced(portfolio.id, skipped=holdings)
            raise DomainError("price_unknown", f"Cannot rebalance {portfolio.id}: {holdings}.",
                              status=409)
        if when_due:
            if portfolio.last_rebalanced_on == session:
                return Rebalanced(portfolio.id, skipped=DONE_THIS_SESSION)
            weights = list(zip(rule.actual_weights(portfolio.cash, holdings),
                               (h.weight for h in holdings), strict=True))
            if not rule.rebalance_due(portfolio.rebalance, portfolio.rebalance_band,
                                      _first_session(portfolio), session, weights):
                return Rebalanced(portfolio.id, skipped=NOT_DUE)
        result = rule.rebalance(portfolio.cash, holdings)
        done = Rebalanced(portfolio.id)
        order = sorted(range(len(positions)), key=lambda i: result.moves[i] > 0)  # returns first
        for i in order:
            move, position = result.moves[i], positions[i]
            if not move:
                continue
            source, target = (position, portfolio) if move < 0 else (portfolio, position)
            _ladder_moved(position)
            books.cash_transfer(portfolio=portfolio, source=source, target=target,
                                amount=abs(move), reason=books.REBALANCE)
            done.moves.append((books.account_name(source), books.account_name(target),
                               abs(move)))
        portfolio.last_rebalanced_on = session
        portfolio.save(update_fields=["last_rebalanced_on", "updated_at"])
    return done


def portfolios_rebalance_due(*, session: dt.date | None = None) -> list[Rebalanced]:
    """The trade cycle's step: every portfolio whose rule is not ``never`` rebalanced when due
    (:func:`portfolio_rebalance` with ``when_due``), one transaction each; a failure of one
    does not stop the others (it is returned as skipped with its reason). A periodic
    portfolio whose period has not turned is passed over from one read, without a lock or a
    price: the cycle runs every minute, a period turns a few times a year."""
    session = session or clock.session_day()
    out = []
    for row in (Portfolio.objects.exclude(rebalance=Rebalance.NEVER).order_by("id")
                .values("id", "rebalance", "last_rebalanced_on", "created_at")):
        if row["last_rebalanced_on"] == session or (
                row["rebalance"] != Rebalance.BAND and not rule.rebalance_due(
                    row["rebalance"], None, row["last_rebalanced_on"]
                    or clock.session_day(row["created_at"]), session)):
            out.append(Rebalanced(row["id"], skipped=NOT_DUE))
            continue
        try:
            out.append(portfolio_rebalance(portfolio_id=row["id"], session=session,
                                           when_due=True))
        except DomainError as exc:
            out.append(Rebalanced(row["id"], skipped=f"{exc.code}: {exc.message}"))
    return out
