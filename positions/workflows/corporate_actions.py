"""Corporate actions (docs/strategy.md#dividends, #splits): each due dividend step and
each due split applied exactly once, each in its own transaction with its rows locked, through
the books writer (:mod:`positions.books`); a split also re-sizes the position's open orders
(:func:`orders.services.orders_resize_for_split`). The trade cycle runs both before it
evaluates; the API, the admin and ``manage.py apply_split`` apply a split that is already due
when they record it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q

from events.models import Event, EventType
from orders.models import Fill
from orders.services import (
    orders_ended_by_split_record,
    orders_held_cancel_for_split,
    orders_resize_for_split,
    resting_orders_replace,
)
from positions import books
from positions.models import Dividend, DividendStatus, Position, Price, Split, SplitStatus
from positions.selectors import position_get
from positions.services import ticker_normalize
from positions.splits import check_ratio, split_record
from positions.strategy import rules
from positions.workflows.alerts import alert_record_once
from volbal import clock
from volbal.errors import DomainError


def held_before(day: dt.date) -> dt.datetime:
    """THE boundary of a corporate action's entitlement (docs/strategy.md#market-data): what the
    books held before this instant, the start of ``day`` (a split's effective date, a dividend's
    ex-date) in the trading time zone, counts for the action; a position opened or a fill made
    at or after it does not. The ex-date step's shares, the ledger replay and the feed's
    recording of an action for a position all ask this."""
    return clock.start_of_trading_day(day)


def entitlement(*, opening_qty: Decimal, ex_date: dt.date, fills, splits) -> Decimal:
    """THE shares entitled to the dividend of ``ex_date``
    (docs/strategy.md#dividends-across-splits): those held at the start of the ex-date in its units.
    ``fills`` are the position's fills as ``(at, side, qty)``; ``splits`` its applied splits as
    ``(applied_at, effective_date, ratio, step)``. Counted: the fills before the ex-date began, and
    the splits effective on or before it; a split applied before the ex-date began moved the shares
    when it was applied (between the fills), one applied later (effective on the ex-date, or
    recorded late) counts after all of them. Splits effective after the ex-date do not count: a step
    run late undoes them. The live ex-date step, the correction a late split makes and the ledger
    replay all call this, with what the books held when each happened."""
    start = held_before(ex_date)
    moves = [(at, 0, ("fill", side, qty)) for at, side, qty in fills if at < start]
    moves += [(applied_at if applied_at < start else start, 1, ("split", ratio, step))
              for applied_at, effective_date, ratio, step in splits
              if effective_date <= ex_date]
    moves.sort(key=lambda move: move[:2])
    return rules.shares_entitled(opening_qty, [move[2] for move in moves])


def shares_at_start_of(*, position: Position, day: dt.date) -> Decimal:
    """The shares entitled to a dividend going ex on ``day`` (:func:`entitlement`), from the
    position's opening holding, its fills and its applied splits as stored."""
    fills = Fill.objects.filter(order__position=position,
                                created_at__lt=held_before(day))
    return entitlement(
        opening_qty=position.opening_qty, ex_date=day,
        fills=fills.values_list("created_at", "order__side", "qty"),
        splits=[(split.applied_at, split.effective_date, split.ratio, split.step)
                for split in Split.objects.filter(position=position,
                                                  status=SplitStatus.APPLIED,
                                                  effective_date__lte=day)])


def anchor_priced_since(*, position: Position, day: dt.date) -> bool:
    """Whether the anchor comes from a price of ``day`` or later (a fill's ``anchor_updated``
    or an evaluation's ``anchor_set`` at or after the first instant of ``day`` in the trading
    time zone). Such a price is already ex-dividend for a dividend going ex on ``day``."""
    return Event.objects.filter(
        position_id=position.pk, type__in=(EventType.ANCHOR_SET, EventType.ANCHOR_UPDATED),
        created_at__gte=clock.start_of_trading_day(day)).exists()


@dataclass
class AnchorTrail:
    """The dividend adjustments of the anchor since it was last a market price (a fill's or an
    evaluation's): the anchor before the first of them (``base``, in the units of now) and each
    one's ``(ex_date, dps, dividend_id)`` in the order made. THE rule for the anchor across a
    split applied after the ex-date step of a dividend it counts for
    (docs/strategy.md#dividends-across-splits): the anchor becomes what the split would have
    made had it come first, base / k less each dps. The live split (:func:`_apply`, from the
    position's events) and the ledger replay (from its replayed books) both keep one."""

    base: Decimal | None = None
    steps: list = field(default_factory=list)

    def priced(self) -> None:
        """The anchor became a market price: nothing before it is carried across a split."""
        self.base, self.steps = None, []

    def adjusted(self, *, before: Decimal, after: Decimal | None, ex_date: dt.date,
                 dps: Decimal, dividend_id: str) -> None:
        """A dividend step lowered the anchor from ``before`` to ``after``."""
        if after is None:  # the dividend left no anchor: the next evaluation sets one
            self.priced()
            return
        if not self.steps:
            self.base = before
        self.steps.append((ex_date, dps, dividend_id))

    def _uncounted(self, effective_date: dt.date) -> int:
        """How many of the first steps a split of ``effective_date`` does not count for (ex-
        dates before it: they came before the split in either order)."""
        n = 0
        while n < len(self.steps) and self.steps[n][0] < effective_date:
            n += 1
        return n

    def before_split(self, effective_date: dt.date) -> Decimal | None:
        """The anchor as it stood before the steps a split of ``effective_date`` counts for
        (what it was had the split come first), or None when it counts for none."""
        n = self._uncounted(effective_date)
        if n == len(self.steps):
            return None
        return self.base - sum((dps for _ex, dps, _id in self.steps[:n]), Decimal(0))

    def split(self, *, ratio, effective_date: dt.date) -> tuple[Decimal, list[str]] | None:
        """A split applied now: the anchor the ruling gives (may be 0 or less: the caller
        refuses) and the dividends it counts for, or None when it counts for none of the steps
        (its own Pa / k stands). The trail moves to the split's units."""
        n = self._uncounted(effective_date)
        counted = self.steps[n:]
        if not counted or any(ex < effective_date for ex, _dps, _id in counted):
            self.priced()  # nothing to correct (or ex-dates out of order: left as applied)
            return None
        self.base = rules.split_adjusted_price(self.before_split(effective_date), ratio)
        self.steps = counted
        anchor = self.base
        for _ex, dps, _id in counted:
            anchor -= dps
        return anchor, [div_id for _ex, _dps, div_id in counted]


def anchor_trail(position: Position) -> AnchorTrail:
    """The position's :class:`AnchorTrail` from its events since its anchor was last a market
    price (``anchor_set``, ``anchor_updated``)."""
    events = Event.objects.filter(position_id=position.pk)
    last_priced = (events.filter(type__in=(EventType.ANCHOR_SET, EventType.ANCHOR_UPDATED))
                   .order_by("-id").values_list("id", flat=True).first())
    if last_priced is not None:
        events = events.filter(id__gt=last_priced)
    trail = AnchorTrail()
    for event in events.filter(type__in=(EventType.ANCHOR_ADJUSTED_FOR_DIVIDEND,
                                         EventType.SPLIT_APPLIED)).order_by("id"):
        if event.type == EventType.SPLIT_APPLIED:
            split = Split.objects.get(pk=event.inputs["split_id"])
            trail.split(ratio=split.ratio, effective_date=split.effective_date)
        elif "split_id" not in event.inputs:  # a split's own correction: done by its split
            dividend = Dividend.objects.get(pk=event.inputs["dividend_id"])
            new = event.outputs["new"]
            trail.adjusted(before=Decimal(event.outputs["old"]),
                           after=None if new is None else Decimal(new),
                           ex_date=dividend.ex_date, dps=dividend.dps, dividend_id=dividend.id)
    return trail


def _go_effective(dividend: Dividend, position: Position) -> None:
    shares = shares_at_start_of(position=position, day=dividend.ex_date)
    # Processed late (or after a trade on the ex-date), the anchor may already be an
    # ex-dividend price: lowering it again would fire the sell trigger early.
    adjust = (position.anchor_price is not None
              and not anchor_priced_since(position=position, day=dividend.ex_date))
    done = books.ex_dividend(position=position, dividend_id=dividend.id,
                             ex_date=dividend.ex_date, dps=dividend.dps,
                             withholding_rate=dividend.withholding_rate, shares=shares,
                             adjust_anchor=adjust)
    dividend.status = DividendStatus.EFFECTIVE
    dividend.entitlement_qty, dividend.gross_amount, dividend.net_amount = (shares, done.gross,
                                                                           done.net)
    dividend.anchor_before, dividend.anchor_after = done.anchor_before, done.anchor_after
    dividend.effective_at = clock.now()
    dividend.save()
    resting_orders_replace(position=position,
                           reason=f"the ladder moved: dividend {dividend.id} went ex")


def _go_paid(dividend: Dividend, position: Position) -> None:
    books.dividend_paid(position=position, dividend_id=dividend.id,
                        pay_date=dividend.pay_date, net=dividend.net_amount)
    dividend.status = DividendStatus.PAID
    dividend.paid_at = clock.now()
    dividend.save(update_fields=["status", "paid_at"])
    resting_orders_replace(position=position,
                           reason=f"the ladder moved: dividend {dividend.id} was paid")


@dataclass(frozen=True)
class StepFailure:
    dividend_id: str
    position_id: str
    step: str  # "ex-date" or "pay-date"
    reason: str

    def __str__(self) -> str:
        return f"{self.dividend_id} ({self.position_id}): {self.step} step FAILED: {self.reason}"


@dataclass
class ProcessReport:
    effective: list[str] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)
    failed: list[StepFailure] = field(default_factory=list)


# What a step can fail with and still leave the others to run: a refusal, a value outside the
# rules' domain or beyond what a column holds, any database error (the step rolls back alone).
STEP_ERRORS = (DomainError, rules.RuleError, ArithmeticError, DatabaseError)


def dividends_process(*, today: dt.date | None = None, position_id: str | None = None
                      ) -> ProcessReport:
    """Move every due dividend through its steps up to ``today`` (default: the trading day),
    oldest step first. Each step is its own transaction with the position and the dividend
    locked and the status re-read, so concurrent runs apply it exactly once. A step that fails
    rolls back alone and is reported in ``failed`` on every run, recorded once per step and
    reason (``dividend_step_failed``, an alert); the other steps proceed, and the failed one is
    tried again on the next run."""
    today = today or clock.trading_day()
    # A split effective on or before an ex-date applies ahead of its dividend step
    # (docs/strategy.md#dividends-across-splits); one that cannot is reported by the trade
    # cycle's own splits_apply_due, and corrects the dividend when it applies later.
    splits_apply_due(today=today, position_id=position_id)
    due = Dividend.objects.filter(
        Q(status=DividendStatus.ANNOUNCED, ex_date__lte=today)
        | Q(status=DividendStatus.EFFECTIVE, pay_date__lte=today)
    )
    if position_id is not None:
        due = due.filter(position_id=position_id)
    steps = []
    for div_id, pos_id, status, ex_date, pay_date in due.values_list(
            "id", "position_id", "status", "ex_date", "pay_date"):
        if status == DividendStatus.ANNOUNCED:
            steps.append((ex_date, 0, div_id, pos_id))
        if pay_date <= today:
            steps.append((pay_date, 1, div_id, pos_id))
    report = ProcessReport()
    for _day, step, div_id, pos_id in sorted(steps):
        try:
            with transaction.atomic():
                position = Position.objects.select_for_update().get(pk=pos_id)
                dividend = Dividend.objects.select_for_update().get(pk=div_id)
                if step == 0 and dividend.status == DividendStatus.ANNOUNCED:
                    _go_effective(dividend, position)
                    report.effective.append(div_id)
                elif step == 1 and dividend.status == DividendStatus.EFFECTIVE:
                    _go_paid(dividend, position)
                    report.paid.append(div_id)
        except STEP_ERRORS as exc:
            failure = StepFailure(div_id, pos_id, ("ex-date", "pay-date")[step],
                                  exc.message if isinstance(exc, (DomainError, rules.RuleError))
                                  else f"{type(exc).__name__}: {str(exc).strip()}")
            report.failed.append(failure)
            _step_failed_alert(failure, today)
    return report


def _step_failed_alert(failure: StepFailure, today: dt.date) -> None:
    """``dividend_step_failed``, an alert: once per dividend, step and reason, however often
    the step is tried again (the trade cycle tries every minute)."""
    reason = hashlib.sha256(failure.reason.encode()).hexdigest()[:16]
    message = (f"Alert: dividend {failure.dividend_id}: the {failure.step} step failed and is "
               f"tried again on every run (this alert is not repeated while it fails the same "
               f"way): {failure.reason}")
    alert_record_once(
        type=EventType.DIVIDEND_STEP_FAILED,
        episodes={failure.position_id: f"{failure.dividend_id}:{failure.step}:{reason}"},
        build=lambda _pos: (message, {"dividend_id": failure.dividend_id, "step": failure.step,
                                      "as_of": today.isoformat()},
                            {"error": failure.reason}))


def split_announce(*, owner, position_id: str, ratio, effective_date: dt.date) -> Split:
    """Record a split on the owner's position (404 for another owner's) and apply it at once
    when it is already due. ``ratio`` is exact (:func:`positions.splits.check_ratio`). Returns
    the split as it stands."""
    ratio = check_ratio(ratio)
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        split = split_record(position, ratio, effective_date)
        if effective_date <= clock.trading_day():
            _apply(split, position)
    return split


@dataclass
class TickerSplitReport:
    recorded: list[str] = field(default_factory=list)  # split ids
    existing: list[str] = field(default_factory=list)  # positions with this split already
    conflicts: list[str] = field(default_factory=list)  # positions with another ratio that day
    applied: list[str] = field(default_factory=list)
    # (position id, reason): a due split it refused (nothing recorded: 409 by the API) or a
    # split of the ticker recorded earlier that could not apply
    failed: list[tuple[str, str]] = field(default_factory=list)


def split_announce_ticker(*, ticker: str, ratio, effective_date: dt.date,
                          progress=None) -> TickerSplitReport:
    """Record a split for every position in ``ticker`` (the command's and the admin's), each
    position in its own transaction, applying it there when it is due (as the API does: a
    position that refuses it, ``split_out_of_range``, keeps nothing of it and is ``failed``),
    then apply any other due split of the ticker (:func:`splits_apply_due`). Running it again
    records nothing twice: a position with the same split is ``existing``, one with another
    ratio on that date a ``conflict``."""
    ratio = check_ratio(ratio)
    ticker = ticker_normalize(ticker)
    report = TickerSplitReport()
    ids = list(Position.objects.filter(ticker=ticker).values_list("id", flat=True))
    for n, pid in enumerate(ids, 1):
        with transaction.atomic():
            position = Position.objects.select_for_update().get(pk=pid)
            found = Split.objects.filter(position=position, effective_date=effective_date).first()
            if found is None:
                split = split_record(position, ratio, effective_date)
                if effective_date <= clock.trading_day():
                    applying = splits_apply_due(position_id=pid)  # older due ones first
                    refused = dict(applying.failed).get(split.id)
                    if refused is not None:  # nothing of it is kept, as by the API
                        transaction.set_rollback(True)
                        report.failed.append((pid, refused))
                    else:
                        report.recorded.append(split.id)
                        report.applied += applying.applied
                else:
                    report.recorded.append(split.id)
            elif found.ratio == ratio:
                report.existing.append(pid)
            else:
                report.conflicts.append(pid)
        if progress is not None:
            progress(n, len(ids))
    applying = splits_apply_due(ticker=ticker)
    report.applied += applying.applied
    owners = dict(Split.objects.filter(id__in=[sid for sid, _ in applying.failed])
                  .values_list("id", "position_id"))
    report.failed += [(owners.get(sid, sid), why) for sid, why in applying.failed]
    return report


def _price_before(ticker: str, day: dt.date) -> Price | None:
    """The ticker's last stored price before ``day`` (in the trading time zone)."""
    return (Price.objects.filter(ticker=ticker, ts__lt=clock.start_of_trading_day(day))
            .order_by("-ts").first())


def _apply(split: Split, position: Position) -> None:
    """Apply one due split to its locked position (docs/strategy.md#splits): shares × k with the
    fraction in cash, anchor ÷ k, open orders' remaining quantity × k; ``split_applied``. Then
    each dividend whose ex-date step already ran and that the split counts for (effective on
    or before its ex-date) is corrected (:func:`_correct_entitlements`), and so is the anchor
    those steps lowered (:class:`AnchorTrail`). With no stored price before the effective
    date, the cash in lieu is paid at the anchor as it stood before those steps."""
    k = split.ratio
    step = rules.qty_step(position.config())
    before = _price_before(position.ticker, split.effective_date)
    trail = anchor_trail(position)
    if before is not None:
        p0 = before.price
    else:  # the anchor as it stood before the dividend steps the split counts for
        p0 = trail.before_split(split.effective_date) or position.anchor_price
    resting_orders_replace(position=position,
                           reason=f"the ladder moved: split {split.id} took effect")
    orders_held_cancel_for_split(position=position, reason=f"split {split.id} took effect: the "
                                 "broker holds it in the old shares")
    orders = orders_resize_for_split(position_id=position.id, ratio=k, step=step)
    old_qty, old_anchor = position.qty, position.anchor_price
    result = books.split(position=position, split_id=split.id, ratio=k,
                         effective_date=split.effective_date, step=step, price_before=p0,
                         orders=orders)
    orders_ended_by_split_record(
        orders=orders, reason=f"split {split.id} ({rules.split_ratio_text(k)}) leaves it "
        "nothing to trade")
    split.status = SplitStatus.APPLIED
    split.qty_before, split.qty_after, split.step = old_qty, result.qty, step
    split.price_before, split.cash_in_lieu = p0, result.cash_in_lieu
    split.anchor_before, split.anchor_after = old_anchor, result.anchor
    split.applied_at = clock.now()
    split.save()
    _correct_entitlements(split, position)
    corrected = trail.split(ratio=k, effective_date=split.effective_date)
    if corrected is not None and corrected[0] != position.anchor_price:
        books.anchor_corrected_for_split(position=position, split_id=split.id,
                                         dividend_ids=corrected[1], anchor=corrected[0])


def _correct_entitlements(split: Split, position: Position) -> None:
    """A split applied after the ex-date step of a dividend it counts for (recorded late, or
    on the ex-date after the dividend run): the entitlement, computed again
    (:func:`shares_at_start_of`), and the difference in the net amount booked by its own event
    (:func:`positions.books.dividend_corrected`), never silently
    (docs/strategy.md#dividends-across-splits)."""
    for dividend in Dividend.objects.select_for_update().filter(
            position=position, ex_date__gte=split.effective_date,
            status__in=(DividendStatus.EFFECTIVE, DividendStatus.PAID)).order_by("ex_date"):
        shares = shares_at_start_of(position=position, day=dividend.ex_date)
        if shares == dividend.entitlement_qty:
            continue
        gross, net = books.dividend_corrected(
            position=position, dividend_id=dividend.id, split_id=split.id,
            ex_date=dividend.ex_date, dps=dividend.dps,
            withholding_rate=dividend.withholding_rate, shares_before=dividend.entitlement_qty,
            shares=shares, net_before=dividend.net_amount,
            paid=dividend.status == DividendStatus.PAID)
        dividend.entitlement_qty, dividend.gross_amount, dividend.net_amount = shares, gross, net
        dividend.save(update_fields=["entitlement_qty", "gross_amount", "net_amount"])


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (split id, reason)


def _splits_due(today: dt.date):
    return Split.objects.filter(status=SplitStatus.ANNOUNCED, effective_date__lte=today)


def positions_with_splits_due(*, today: dt.date | None = None) -> list[str]:
    """The positions with a recorded split effective by ``today`` not applied yet: the trade
    cycle asks their brokers for fills first, so what a broker executed before a split is booked
    before it, in the shares it was executed in."""
    return sorted(set(_splits_due(today or clock.trading_day())
                      .values_list("position_id", flat=True)))


def splits_apply_due(*, today: dt.date | None = None, ticker: str | None = None,
                     position_id: str | None = None) -> ApplyReport:
    """Apply every recorded split effective on or before ``today`` (default: the trading day)
    that is not applied yet, oldest first: the trade cycle calls this before it evaluates.
    Each split is its own transaction with the position and the split locked and the status
    re-read, so however often or concurrently it runs each split applies exactly once. A split
    that cannot apply rolls back alone and is reported in ``failed``."""
    today = today or clock.trading_day()
    due = _splits_due(today)
    if ticker is not None:
        due = due.filter(position__ticker=ticker)
    if position_id is not None:
        due = due.filter(position_id=position_id)
    report = ApplyReport()
    for split_id, pos_id in due.order_by("effective_date", "id").values_list("id",
                                                                             "position_id"):
        try:
            with transaction.atomic():
                position = Position.objects.select_for_update().get(pk=pos_id)
                split = Split.objects.select_for_update().get(pk=split_id)
                if split.status == SplitStatus.ANNOUNCED:
                    _apply(split, position)
                    report.applied.append(split_id)
        except (DomainError, rules.RuleError, ArithmeticError, IntegrityError,
                DatabaseError) as exc:
            report.failed.append((split_id, getattr(exc, "message", None) or str(exc)))
    return report

