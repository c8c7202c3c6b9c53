"""Dividends (Flow D): announce, then process each due step exactly once."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import DatabaseError, transaction
from django.db.models import Q, Sum

from events.models import EventType
from events.services import event_record
from positions import books
from positions.alerts import alert_record_once
from positions.models import Dividend, DividendStatus, Position
from positions.selectors import position_get
from positions.strategy import rules
from volbal import clock
from volbal.columns import capacity, out_of_range
from volbal.errors import DomainError
from volbal.renderers import decimal_text as fmt


def _invalid(field_name: str, message: str) -> DomainError:
    return DomainError("validation_error", f"Invalid input. {field_name}: {message}", status=400,
                       fields={field_name: message})


def dividend_announce(*, owner, position_id: str, ex_date: dt.date, pay_date: dt.date,
                      dps: Decimal, withholding_rate: Decimal | None = None) -> Dividend:
    """Announce a dividend on a position (``ex_div_announced``). The withholding rate defaults
    to the position's. One dividend per position and ex-date: another is 409
    ``dividend_exists``."""
    if pay_date < ex_date:
        raise _invalid("pay_date", "The pay date must be on or after the ex-date.")
    if dps <= 0:
        raise _invalid("dps", "The dividend per share must be greater than zero.")
    if withholding_rate is not None and not (0 <= withholding_rate < 1):
        raise _invalid("withholding_tax_rate",
                       "The withholding tax rate must be at least 0 and below 1.")
    with transaction.atomic():
        position = position_get(owner=owner, position_id=position_id, for_update=True)
        if Dividend.objects.filter(position=position, ex_date=ex_date).exists():
            raise DomainError("dividend_exists", f"This position already has a dividend with "
                              f"ex-date {ex_date}.", status=409)
        opened = clock.trading_day(position.created_at)
        if ex_date < opened:
            raise _invalid("ex_date", f"The ex-date {ex_date} is before the position was opened "
                           f"({opened}): its books did not hold the shares then.")
        rate = position.withholding_tax_rate if withholding_rate is None else withholding_rate
        _refuse_unstorable(position, dps, rate)
        dividend = Dividend.objects.create(position=position, ex_date=ex_date,
                                           pay_date=pay_date, dps=dps, withholding_rate=rate)
        event_record(
            position_id=position.id, type=EventType.EX_DIV_ANNOUNCED,
            message=f"Dividend {fmt(dps)} per share announced: ex-date {ex_date}, pay-date "
            f"{pay_date}, withholding {fmt(rate)}.",
            inputs={"ex_date": ex_date, "pay_date": pay_date, "dps": dps,
                    "withholding_tax_rate": rate},
            outputs={"dividend_id": dividend.id, "status": dividend.status},
        )
    return dividend


def _refuse_unstorable(position: Position, dps: Decimal, rate: Decimal) -> None:
    """400 on ``dps`` when the dividend on the shares held now could not be stored: its gross
    or net amount, the receivable it adds to, or the cash it is paid into (a dividend run would
    otherwise fail on it every day). Fills before the ex-date can still raise the entitlement:
    the run refuses such a step on its own (see :func:`dividends_process`)."""
    gross, net = rules.dividend_amounts(dps=dps, shares=position.qty, withholding_rate=rate)
    receivable = position.dividend_receivable + net
    too_large = out_of_range((Dividend, "gross_amount", gross), (Dividend, "net_amount", net),
                             (Position, "dividend_receivable", receivable),
                             (Position, "cash", position.cash + receivable))
    if too_large:
        raise _invalid("dps", f"On the {fmt(position.qty)} shares held, {fmt(dps)} per share "
                       f"comes to {fmt(gross)}: the {too_large} could not hold it (less than "
                       f"{fmt(capacity(Position, 'cash'))}).")


def shares_at_start_of(*, position: Position, day: dt.date) -> Decimal:
    """Shares held at the first instant of ``day`` in the trading time zone: today's holding
    with every fill since then undone (the opening holding counts as held before)."""
    from orders.models import Fill

    since = clock.start_of_trading_day(day)
    fills = Fill.objects.filter(order__position=position, created_at__gte=since)
    bought = fills.filter(order__side="BUY").aggregate(s=Sum("qty"))["s"] or Decimal(0)
    sold = fills.filter(order__side="SELL").aggregate(s=Sum("qty"))["s"] or Decimal(0)
    return position.qty - bought + sold


def anchor_priced_since(*, position: Position, day: dt.date) -> bool:
    """Whether the anchor comes from a price of ``day`` or later (a fill's ``anchor_updated``
    or an evaluation's ``anchor_set`` at or after the first instant of ``day`` in the trading
    time zone). Such a price is already ex-dividend for a dividend going ex on ``day``."""
    from events.models import Event

    return Event.objects.filter(
        position=position, type__in=(EventType.ANCHOR_SET, EventType.ANCHOR_UPDATED),
        created_at__gte=clock.start_of_trading_day(day)).exists()


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


def _go_paid(dividend: Dividend, position: Position) -> None:
    books.dividend_paid(position=position, dividend_id=dividend.id,
                        pay_date=dividend.pay_date, net=dividend.net_amount)
    dividend.status = DividendStatus.PAID
    dividend.paid_at = clock.now()
    dividend.save(update_fields=["status", "paid_at"])


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
