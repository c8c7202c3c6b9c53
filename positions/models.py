"""Positions, their strategy configuration, and ticker prices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from events import actor as actors
from events.actor import ActorSource
from positions.strategy import rules
from volbal import clock, ids
from volbal.renderers import decimal_text

QTY = {"max_digits": 24, "decimal_places": 8}
MONEY = {"max_digits": 22, "decimal_places": 6}
RATIO = {"max_digits": 12, "decimal_places": 8}

_D = rules.Config()  # the one place defaults come from


# The sizings of the strategy core (rules.SIZINGS) as choices: PROPORTIONAL, ORIGINAL, ...
Sizing = models.TextChoices("Sizing", [(s.upper(), s) for s in rules.SIZINGS], module=__name__)


class Broker(models.TextChoices):
    """Where a position's orders go (orders/brokers/): ``manual`` records fills typed in through
    the API or the admin; ``paper`` simulates the market from the stored prices; ``alpaca``
    trades through Alpaca's API (credentials from the environment, never stored)."""

    MANUAL = "manual"
    PAPER = "paper"
    ALPACA = "alpaca"


SLIPPAGE_BPS_MAX = rules.SLIPPAGE_BPS_MAX  # slippage_bps: 0 <= x < 10000, as the backtest

# How a position's orders are executed (not rules of the strategy): what the API and the admin
# take beside the strategy fields.
EXECUTION_FIELDS = ("broker", "slippage_bps", "auto_submit")

# Every per-position strategy field, in the order of docs/strategy.md#state-and-configuration.
STRATEGY_FIELDS = (
    "trigger_pct",
    "rebalance_ratio",
    "sizing",
    "fixed_fraction",
    "guard_low",
    "guard_high",
    "min_notional",
    "commission_rate",
    "max_orders_per_day",
    "fractional",
    "qty_step",
    "withholding_tax_rate",
    "max_price_jump",
)


def bounds_condition(constraint: str) -> Q:
    """The check constraint ``constraint`` of the strategy's bounds table (rules.BOUNDS) as a
    condition: every term holds, and a nullable field's terms hold when it is null."""
    terms = rules.constraint_lookups(constraint)
    q = Q()
    for field, lookup, value in terms:
        q &= (Q(**{f"{field}__lt": F(value)}) if lookup == "lt_field"
              else Q(**{f"{field}__{lookup}": value}))
    for field in dict.fromkeys(f for f, _, _ in terms):
        if rules.BOUNDS[field].nullable:
            q = Q(**{f"{field}__isnull": True}) | q
    return q


def bounds_constraints(model: str) -> list[models.CheckConstraint]:
    """The check constraints of ``model``'s fields in the bounds table (rules.BOUNDS:
    "position", "portfolio" or "holding", a position's place in its portfolio)."""
    return [models.CheckConstraint(condition=bounds_condition(name), name=name)
            for name in rules.constraint_names(model)]


# A portfolio's rebalancing choices (rules.REBALANCES): NEVER, MONTHLY, ..., BAND
Rebalance = models.TextChoices("Rebalance", [(r.upper(), r) for r in rules.REBALANCES],
                               module=__name__)


class Portfolio(models.Model):
    """Positions grouped under one owner with unallocated cash F (``cash``) and a rebalancing
    rule (docs/portfolios.md, docs/strategy.md#portfolios). Its cash is written only by
    positions.books (deposits, withdrawals, transfers), like a position's."""

    id = models.CharField(primary_key=True, max_length=32, default=ids.portfolio_id,
                          editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portfolios"
    )
    name = models.CharField(max_length=100)
    cash = models.DecimalField(**MONEY, default=Decimal("0"))
    # What the portfolio was opened with: the ledger check replays its cash movements from here.
    opening_cash = models.DecimalField(**MONEY, default=Decimal("0"), editable=False)
    rebalance = models.CharField(max_length=12, choices=Rebalance.choices,
                                 default=Rebalance.NEVER)
    rebalance_band = models.DecimalField(**RATIO, null=True, blank=True)
    # The session of the last rebalance (a period rebalances once, at its first cycle).
    last_rebalanced_on = models.DateField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("owner", "created_at", "id"), name="pfl_owner_created")]
        constraints = [
            models.CheckConstraint(condition=Q(cash__gte=0), name="pfl_cash_nonneg"),
            models.CheckConstraint(condition=Q(opening_cash__gte=0),
                                   name="pfl_opening_cash_nonneg"),
            *bounds_constraints("portfolio"),
            models.CheckConstraint(
                condition=~Q(rebalance=Rebalance.BAND) | Q(rebalance_band__isnull=False),
                name="pfl_band_when_band"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"


class Position(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.position_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions"
    )
    ticker = models.CharField(max_length=16, db_index=True)
    qty = models.DecimalField(**QTY)
    cash = models.DecimalField(**MONEY)
    dividend_receivable = models.DecimalField(**MONEY, default=Decimal("0"))
    anchor_price = models.DecimalField(**MONEY, null=True, blank=True)
    # What the position was opened with: the ledger check replays fills and dividends from here.
    opening_qty = models.DecimalField(**QTY, editable=False)
    opening_cash = models.DecimalField(**MONEY, editable=False)

    trigger_pct = models.DecimalField(**RATIO, default=_D.trigger_pct)
    rebalance_ratio = models.DecimalField(
        max_digits=16, decimal_places=8, default=_D.rebalance_ratio
    )
    sizing = models.CharField(max_length=16, choices=Sizing.choices, default=_D.sizing)
    fixed_fraction = models.DecimalField(**RATIO, default=_D.fixed_fraction)
    guard_low = models.DecimalField(**RATIO, default=_D.guard_low)
    guard_high = models.DecimalField(**RATIO, default=_D.guard_high)
    min_notional = models.DecimalField(**MONEY, default=_D.min_notional)
    commission_rate = models.DecimalField(**RATIO, default=_D.commission_rate)
    max_orders_per_day = models.PositiveIntegerField(default=_D.max_orders_per_day)
    fractional = models.BooleanField(default=_D.fractional)
    qty_step = models.DecimalField(**QTY, null=True, blank=True, default=_D.qty_step)
    withholding_tax_rate = models.DecimalField(**RATIO, default=_D.withholding_tax_rate)
    max_price_jump = models.DecimalField(**RATIO, default=_D.max_price_jump)

    broker = models.CharField(max_length=16, choices=Broker.choices, default=Broker.MANUAL)
    # The paper broker fills this many basis points worse than the market price.
    slippage_bps = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    # The trade cycle submits this position's proposals (off: they are only recorded).
    auto_submit = models.BooleanField(default=False)
    # A trade cycle has claimed the position until then (several cycles split the positions).
    cycle_lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    # The time of the stored price the last submitting price-less evaluation used: a cron
    # --submit run never evaluates a position twice at the same stored price.
    evaluated_price_ts = models.DateTimeField(null=True, blank=True, editable=False)
    # The price-jump guard's reference (docs/strategy.md#price-jump-guard): the last price the
    # position accepted, as observed (a stored price or a fill, before any split since it: the
    # position uses it split-adjusted like any price), and its market time. Null: none yet,
    # the anchor is the reference. Written with the evaluation's marks and by a confirmation.
    guard_ref_price = models.DecimalField(**MONEY, null=True, blank=True, editable=False)
    guard_ref_ts = models.DateTimeField(null=True, blank=True, editable=False)

    # The portfolio it belongs to, if any, and its target share of the portfolio's value
    # (Σ per portfolio ≤ 1, checked by positions.portfolios.services under the portfolio's lock).
    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="positions")
    target_weight = models.DecimalField(**RATIO, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=("owner", "created_at", "id"), name="pos_owner_created")]
        constraints = [
            models.CheckConstraint(condition=Q(qty__gte=0), name="pos_qty_nonneg"),
            models.CheckConstraint(condition=Q(cash__gte=0), name="pos_cash_nonneg"),
            models.CheckConstraint(
                condition=Q(dividend_receivable__gte=0), name="pos_receivable_nonneg"
            ),
            models.CheckConstraint(
                condition=Q(anchor_price__isnull=True) | Q(anchor_price__gt=0),
                name="pos_anchor_pos",
            ),
            models.CheckConstraint(
                condition=Q(opening_qty__gte=0) & Q(opening_cash__gte=0), name="pos_opening_nonneg"
            ),
            # the strategy fields' bounds, generated from the one table (rules.BOUNDS)
            *bounds_constraints("position"),
            models.CheckConstraint(condition=Q(broker__in=Broker.values),
                                   name="pos_broker_valid"),
            models.CheckConstraint(
                condition=Q(slippage_bps__gte=0) & Q(slippage_bps__lt=SLIPPAGE_BPS_MAX),
                name="pos_slippage_range",
            ),
            *bounds_constraints("holding"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.ticker}"

    def config(self) -> rules.Config:
        """The strategy configuration as the pure rules module takes it."""
        return rules.Config(**{name: getattr(self, name) for name in STRATEGY_FIELDS})

    def state(self) -> rules.State:
        return rules.State(
            qty=self.qty,
            cash=self.cash,
            receivable=self.dividend_receivable,
            anchor=self.anchor_price,
        )


def price_ts_error(ts: dt.datetime) -> str | None:
    """Why a price cannot carry this time, or None. A time more than
    VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS ahead of now is refused: it would stay the ticker's
    latest price, and price-less evaluations would act on it, until that time came. The API,
    the admin (``Price.clean``), the prices service and import_prices all ask here."""
    allowance = settings.VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS
    if ts > clock.now() + dt.timedelta(seconds=allowance):
        return (f"{ts.isoformat()} is in the future: a price may be at most {allowance} seconds "
                "ahead of now (VOLBAL_PRICE_FUTURE_ALLOWANCE_SECONDS).")
    return None


class Price(models.Model):
    """An observed price of a ticker; the latest per ticker serves a price-less evaluation."""

    ticker = models.CharField(max_length=16)
    price = models.DecimalField(**MONEY)
    ts = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Who recorded it (events.actor), set by the prices service: the user through the API or
    # the admin, or the command (import_prices).
    recorded_source = models.CharField(max_length=8, choices=ActorSource.choices,
                                       default=actors.current_source)
    recorded_user_id = models.BigIntegerField(null=True, blank=True,
                                              default=actors.current_user_id)
    recorded_by = models.CharField(max_length=150, default=actors.current_name)
    # An operator's confirmation of a price the price-jump guard held back (positions.splits).
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    confirmed_by = models.CharField(max_length=150, blank=True, default="", editable=False)
    # The market-data feed it was fetched from (``alpaca``, ``file``: docs/marketdata.md); empty
    # for a price posted, typed in or imported.
    source = models.CharField(max_length=16, blank=True, default="")
    # The value confirmed: a confirmation binds the ticker, the time and the value (a price
    # re-posted at the same time with another value is not confirmed until confirmed again).
    confirmed_price = models.DecimalField(**MONEY, null=True, blank=True, editable=False)

    class Meta:
        ordering = ("ticker", "ts")
        # (ticker, -ts) also serves the paper broker's "first price after the order" (by ts).
        indexes = [models.Index(fields=("ticker", "-ts"), name="price_ticker_latest")]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="price_pos"),
            models.UniqueConstraint(fields=("ticker", "ts"), name="price_unique_ticker_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.ticker} {decimal_text(self.price)} @ {self.ts:%Y-%m-%d %H:%M %Z}"

    def clean(self) -> None:
        error = self.ts is not None and price_ts_error(self.ts)
        if error:
            raise ValidationError({"ts": error})


class TradeCycle(models.Model):
    """One run of the trade cycle (``manage.py trade``): what it did, kept for the admin."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=64)
    market_open = models.BooleanField()
    session = models.DateField(null=True, blank=True)
    dividends_effective = models.PositiveIntegerField(default=0)
    dividends_paid = models.PositiveIntegerField(default=0)
    orders_expired = models.PositiveIntegerField(default=0)
    positions_claimed = models.PositiveIntegerField(default=0)
    evaluated = models.PositiveIntegerField(default=0)
    proposals = models.PositiveIntegerField(default=0)
    submitted = models.PositiveIntegerField(default=0)
    routed = models.PositiveIntegerField(default=0)
    fills = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ("-started_at", "-id")

    def __str__(self) -> str:
        return f"cycle {self.pk} {self.started_at:%Y-%m-%d %H:%M:%S}"


class TradeSchedule(models.Model):
    """The trade cycle's schedule on the job queue (one row, ``manage.py trade --schedule S``):
    whether it runs, every how many seconds, and the one queued task that carries it on
    (positions/workflows/schedule.py). A task that is not this one does nothing: two schedules
    never pile up."""

    enabled = models.BooleanField(default=False)
    interval_seconds = models.FloatField(default=60.0)
    task_id = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1),
                                              name="trade_schedule_single_row"),
                       models.CheckConstraint(condition=models.Q(interval_seconds__gt=0),
                                              name="trade_schedule_interval_pos")]

    def __str__(self) -> str:
        return (f"every {self.interval_seconds:g} s" if self.enabled else "stopped")


class DividendStatus(models.TextChoices):
    ANNOUNCED = "announced"
    EFFECTIVE = "effective"
    PAID = "paid"


class Dividend(models.Model):
    """A dividend on one position: announced, then effective on the ex-date (receivable), then
    paid on the pay-date (cash). Each step happens exactly once (status + row locks)."""

    id = models.CharField(primary_key=True, max_length=32, default=ids.dividend_id,
                          editable=False)
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="dividends")
    ex_date = models.DateField()
    pay_date = models.DateField()
    dps = models.DecimalField(**MONEY)
    # Shown and sent as withholding_tax_rate, the position's name for the same rate (the
    # column keeps its name: the rate this dividend was announced with).
    withholding_rate = models.DecimalField("withholding tax rate", **RATIO)
    status = models.CharField(max_length=10, choices=DividendStatus.choices,
                              default=DividendStatus.ANNOUNCED)
    # Set on the ex-date step.
    entitlement_qty = models.DecimalField(**QTY, null=True, blank=True)
    gross_amount = models.DecimalField(**MONEY, null=True, blank=True)
    net_amount = models.DecimalField(**MONEY, null=True, blank=True)
    anchor_before = models.DecimalField(**MONEY, null=True, blank=True)
    anchor_after = models.DecimalField(**MONEY, null=True, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # The action's key at the feed it came from (docs/marketdata.md#the-port); empty when typed
    # in. Unique per position: a fetched dividend is recorded once however often it is fetched.
    source_key = models.CharField(max_length=128, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("ex_date", "id")
        indexes = [models.Index(fields=("status", "ex_date"), name="div_status_ex"),
                   models.Index(fields=("status", "pay_date"), name="div_status_pay")]
        constraints = [
            models.UniqueConstraint(fields=("position", "ex_date"), name="div_one_per_ex_date"),
            models.UniqueConstraint(fields=("position", "source_key"), condition=~Q(source_key=""),
                                    name="div_one_per_source_key"),
            models.CheckConstraint(condition=Q(pay_date__gte=F("ex_date")),
                                   name="div_pay_after_ex"),
            models.CheckConstraint(condition=Q(dps__gt=0), name="div_dps_pos"),
            models.CheckConstraint(
                condition=Q(withholding_rate__gte=0) & Q(withholding_rate__lt=1),
                name="div_withholding_range",
            ),
            models.CheckConstraint(condition=Q(status__in=DividendStatus.values),
                                   name="div_status_valid"),
            models.CheckConstraint(
                condition=Q(status=DividendStatus.ANNOUNCED)
                | (Q(net_amount__isnull=False) & Q(net_amount__gte=0)
                   & Q(gross_amount__gte=F("net_amount")) & Q(entitlement_qty__gte=0)),
                name="div_amounts_when_effective",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {decimal_text(self.dps)}/share ex {self.ex_date}"


class SplitStatus(models.TextChoices):
    ANNOUNCED = "announced"
    APPLIED = "applied"


class Split(models.Model):
    """A stock split on one position: ``new_rate`` new shares for ``old_rate`` old ones, in
    lowest terms (1:3: a 1-for-3 reverse split; k = new/old exactly, :attr:`ratio`), applied
    once on ``effective_date`` (positions.splits). One per position and date (the
    constraint), its status re-read under row locks: applied exactly once."""

    id = models.CharField(primary_key=True, max_length=32, default=ids.split_id, editable=False)
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="splits")
    new_rate = models.PositiveIntegerField()
    old_rate = models.PositiveIntegerField()
    effective_date = models.DateField()
    status = models.CharField(max_length=10, choices=SplitStatus.choices,
                              default=SplitStatus.ANNOUNCED)
    # Set when applied: before and after, the step quantities were rounded to and the price
    # the fraction was paid at (the ledger check replays the split from these).
    qty_before = models.DecimalField(**QTY, null=True, blank=True)
    qty_after = models.DecimalField(**QTY, null=True, blank=True)
    step = models.DecimalField(**QTY, null=True, blank=True)
    price_before = models.DecimalField(**MONEY, null=True, blank=True)
    cash_in_lieu = models.DecimalField(**MONEY, null=True, blank=True)
    anchor_before = models.DecimalField(**MONEY, null=True, blank=True)
    anchor_after = models.DecimalField(**MONEY, null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    # As Dividend.source_key: the feed's key of the action, unique per position.
    source_key = models.CharField(max_length=128, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("effective_date", "id")
        indexes = [models.Index(fields=("status", "effective_date"), name="split_status_date")]
        constraints = [
            models.UniqueConstraint(fields=("position", "effective_date"),
                                    name="split_one_per_date"),
            models.UniqueConstraint(fields=("position", "source_key"), condition=~Q(source_key=""),
                                    name="split_one_per_source_key"),
            models.CheckConstraint(condition=Q(new_rate__gt=0) & Q(old_rate__gt=0),
                                   name="split_rates_pos"),
            models.CheckConstraint(condition=Q(status__in=SplitStatus.values),
                                   name="split_status_valid"),
            models.CheckConstraint(
                condition=Q(status=SplitStatus.ANNOUNCED)
                | (Q(applied_at__isnull=False) & Q(qty_after__gte=0) & Q(cash_in_lieu__gte=0)
                   & Q(step__gt=0)),
                name="split_values_when_applied",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.ratio_text} on {self.effective_date}"

    @property
    def ratio(self) -> Fraction:
        """k = new/old shares, exactly (docs/strategy.md#splits)."""
        return Fraction(self.new_rate, self.old_rate)

    @ratio.setter
    def ratio(self, k) -> None:
        k = Fraction(k)
        self.new_rate, self.old_rate = k.numerator, k.denominator

    @property
    def ratio_text(self) -> str:
        return f"{self.new_rate}:{self.old_rate}"



class TickerFeed(models.Model):
    """What the market-data feed last said about one ticker (docs/marketdata.md#the-cycle):
    the last price fetched (its time and the feed), the last failure, since when the ticker
    has been failing (the ``feed_error`` alert's episode), and the last day its corporate
    actions were fetched through (once per session). Written by positions.workflows.feed."""

    ticker = models.CharField(primary_key=True, max_length=16)
    source = models.CharField(max_length=16, blank=True, default="")
    price = models.DecimalField(**MONEY, null=True, blank=True)
    price_ts = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_at = models.DateTimeField(null=True, blank=True)
    # The first failure since the last success (None while the feed answers): the episode.
    failing_since = models.DateTimeField(null=True, blank=True)
    actions_through = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ("ticker",)

    def __str__(self) -> str:
        return self.ticker
