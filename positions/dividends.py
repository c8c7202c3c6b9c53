"""Dividends (docs/strategy.md#dividends): announcing one. Each due step is processed exactly
once by positions/workflows/corporate_actions.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction

from events.models import EventType
from events.services import event_record
from positions.models import Dividend, Position
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


