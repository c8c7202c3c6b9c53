"""Orders, their fills, and the idempotency records that make submission exactly-once."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from positions.models import MONEY, QTY, Broker, OrderType
from positions.strategy import rules
from volbal import ids
from volbal.renderers import decimal_text

# The sides of the strategy core (rules.SIDES) as choices: Side.BUY, Side.SELL
Side = models.TextChoices("Side", [(s, s) for s in rules.SIDES], module=__name__)


class OrderStatus(models.TextChoices):
    SUBMITTED = "submitted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"


OPEN_STATUSES = (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)


class TimeInForce(models.TextChoices):
    GTC = "gtc"  # open until filled or cancelled (the default)
    DAY = "day"  # expires at the close of the session it was placed in


class Order(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.order_id, editable=False)
    position = models.ForeignKey(
        "positions.Position", on_delete=models.PROTECT, related_name="orders"
    )
    side = models.CharField(max_length=4, choices=Side.choices)
    qty = models.DecimalField(**QTY)
    filled_qty = models.DecimalField(**QTY, default=Decimal("0"))
    avg_fill_price = models.DecimalField(**MONEY, null=True, blank=True)
    commission_paid = models.DecimalField(**MONEY, default=Decimal("0"))
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.SUBMITTED
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    source = models.CharField(max_length=16, default="api")  # api, evaluation, admin
    # The broker the order goes to (the position's when it was created), the broker's id for
    # it once routed, and when it was routed (null: not yet; a manual order is never routed).
    broker = models.CharField(max_length=16, default=Broker.MANUAL)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices,
                                     default=TimeInForce.GTC)
    # market, or limit at ``limit_price`` (on the exchange's tick). ``rung``: the ladder's rung
    # a resting order stands for (its side; docs/strategy.md#resting-orders), null otherwise.
    order_type = models.CharField(max_length=8, choices=OrderType.choices,
                                  default=OrderType.MARKET)
    limit_price = models.DecimalField(**MONEY, null=True, blank=True)
    rung = models.CharField(max_length=4, choices=Side.choices, null=True, blank=True)
    broker_order_id = models.CharField(max_length=64, null=True, blank=True)
    routed_at = models.DateTimeField(null=True, blank=True)
    # When a cycle last began placing it with a broker that holds orders (set under the order's
    # lock, before the call): a cancel meanwhile is a request, since the broker may hold it.
    placing_at = models.DateTimeField(null=True, blank=True)
    # A cancel asked for an order a broker holds (HOLDING_BROKERS): when it was asked, and when
    # it was sent to the broker; the order ends when the broker reports it ended.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_sent_at = models.DateTimeField(null=True, blank=True)
    # The calendar date in the trading time zone when the order was created: the daily cap.
    trading_day = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [
            models.Index(fields=("position", "trading_day"), name="order_pos_day"),
            models.Index(fields=("position", "status"), name="order_pos_status"),
            models.Index(fields=("broker", "status"), name="order_broker_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(qty__gt=0), name="order_qty_pos"),
            models.CheckConstraint(
                condition=Q(filled_qty__gte=0) & Q(filled_qty__lte=F("qty")),
                name="order_filled_range",
            ),
            models.CheckConstraint(condition=Q(side__in=Side.values), name="order_side_valid"),
            models.CheckConstraint(condition=Q(time_in_force__in=TimeInForce.values),
                                   name="order_tif_valid"),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_valid"
            ),
            models.CheckConstraint(
                condition=(Q(order_type=OrderType.MARKET, limit_price__isnull=True)
                           | Q(order_type=OrderType.LIMIT, limit_price__gt=0)),
                name="order_limit_price_iff_limit"),
            models.CheckConstraint(
                condition=Q(rung__isnull=True) | (Q(order_type=OrderType.LIMIT)
                                                   & Q(rung=F("side"))),
                name="order_rung_is_limit_side"),
            models.CheckConstraint(
                condition=Q(commission_paid__gte=0), name="order_commission_nonneg"
            ),
            models.CheckConstraint(
                condition=~Q(status=OrderStatus.FILLED) | Q(filled_qty=F("qty")),
                name="order_filled_complete",
            ),
            # a position rests at most one order per rung (docs/strategy.md#resting-orders)
            models.UniqueConstraint(
                fields=("position", "rung"),
                condition=Q(rung__isnull=False, status__in=OPEN_STATUSES),
                name="order_one_open_per_rung"),
            models.UniqueConstraint(
                fields=("position", "idempotency_key"),
                condition=Q(idempotency_key__isnull=False),
                name="order_one_per_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.side} {decimal_text(self.qty)}"

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Fill(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.fill_id, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    # Shown and sent as filled_qty, the seed's name in the fill body.
    qty = models.DecimalField("filled qty", **QTY)
    price = models.DecimalField(**MONEY)
    commission = models.DecimalField(**MONEY)
    # A broker's execution: its id makes the fill idempotent (a repeated poll never fills
    # twice). Null for a fill typed in by hand.
    broker = models.CharField(max_length=16, default=Broker.MANUAL)
    broker_fill_id = models.CharField(max_length=128, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(fields=("broker", "broker_fill_id"),
                                    condition=Q(broker_fill_id__isnull=False),
                                    name="fill_one_per_broker_fill_id"),
            models.CheckConstraint(condition=Q(qty__gt=0), name="fill_qty_pos"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_pos"),
            models.CheckConstraint(condition=Q(commission__gte=0), name="fill_commission_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {decimal_text(self.qty)} @ {decimal_text(self.price)}"


class IdempotencyRecord(models.Model):
    """One per (caller, method, path, key); inserted first, in the same transaction as the work."""

    identity = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    # The response's Location header (a 202 job's URL), answered again by a replay.
    location = models.CharField(max_length=2048, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("identity", "method", "path", "key"), name="idem_one_per_scope_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"
