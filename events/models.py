"""The append-only audit log. The database refuses UPDATE and DELETE (see migration 0002)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from events import actor as actors
from events.actor import USER_SOURCES, ActorSource

# The webhook tables are this app's too (events/webhooks/): Django registers an app's models by
# importing its models module. Nothing here uses them.
from events.webhooks.models import (  # noqa: F401
    WebhookAttempt,
    WebhookCursor,
    WebhookDelivery,
    WebhookEndpoint,
)
from volbal.renderers import AuditJSONDecoder, AuditJSONEncoder


class EventType(models.TextChoices):
    POSITION_CREATED = "position_created"
    CONFIG_CHANGED = "config_changed"
    ANCHOR_SET = "anchor_set"
    EVALUATION = "evaluation"
    ORDER_SUBMITTED = "order_submitted"
    ORDER_TRIMMED_GUARDRAIL = "order_trimmed_guardrail"
    ORDER_REJECTED_MIN = "order_rejected_min"
    ORDER_FILLED = "order_filled"
    ORDER_PARTIALLY_FILLED = "order_partially_filled"
    ORDER_CANCELLED = "order_cancelled"
    FILL_REJECTED = "fill_rejected"
    ANCHOR_UPDATED = "anchor_updated"
    EX_DIV_ANNOUNCED = "ex_div_announced"
    EX_DIV_EFFECTIVE = "ex_div_effective"
    ANCHOR_ADJUSTED_FOR_DIVIDEND = "anchor_adjusted_for_dividend"
    DIVIDEND_CASH_RECEIVED = "dividend_cash_received"
    # a split recorded on or before an ex-date already processed changes its entitlement
    # (docs/strategy.md#dividends-across-splits)
    DIVIDEND_ENTITLEMENT_CORRECTED = "dividend_entitlement_corrected"
    DIVIDEND_STEP_FAILED = "dividend_step_failed"
    ORDER_ROUTED = "order_routed"
    BROKER_REJECTED = "broker_rejected"
    BROKER_ERROR = "broker_error"
    BROKER_FILL_MISMATCH = "broker_fill_mismatch"
    ORDER_EXPIRED = "order_expired"
    ORDER_CANCEL_REQUESTED = "order_cancel_requested"  # asked of a broker holding the order
    ORDER_CANCEL_ROUTED = "order_cancel_routed"  # the broker took the cancel request
    SPLIT_ANNOUNCED = "split_announced"
    SPLIT_APPLIED = "split_applied"
    PRICE_JUMP_UNCONFIRMED = "price_jump_unconfirmed"  # an alert: submission held back
    PRICE_CONFIRMED = "price_confirmed"
    # Alerts (docs/alerts.md#types): see ALERT_TYPES below
    PRICE_STALE = "price_stale"  # no price for the ticker during a session for too long
    CYCLE_MISSED = "cycle_missed"  # the trade cycle did not run on schedule
    LEDGER_DIFFERENCE = "ledger_difference"  # the nightly verify_ledger found a difference
    WEBHOOK_FAILED = "webhook_failed"  # a webhook delivery gave up after its retries
    FEED_ERROR = "feed_error"  # the market-data feed failed to price the position's ticker
    # Portfolios and cash movements (docs/portfolios.md#events: their shapes are stable)
    PORTFOLIO_CREATED = "portfolio_created"
    PORTFOLIO_CHANGED = "portfolio_changed"
    CASH_DEPOSITED = "cash_deposited"
    CASH_WITHDRAWN = "cash_withdrawn"
    CASH_TRANSFERRED = "cash_transferred"


# The event types that are alerts: something an operator or owner must look at. They are
# ordinary events (so webhooks carry them, and the log keeps them); the API and the admin can
# filter on this set.
ALERT_TYPES = frozenset({
    EventType.PRICE_JUMP_UNCONFIRMED,
    EventType.PRICE_STALE,
    EventType.CYCLE_MISSED,
    EventType.BROKER_ERROR,
    EventType.LEDGER_DIFFERENCE,
    EventType.DIVIDEND_STEP_FAILED,
    EventType.WEBHOOK_FAILED,
    EventType.FEED_ERROR,
})


class Event(models.Model):
    # The position's and the order's ids are plain indexed columns, not foreign keys: the log
    # is below positions and orders (docs/architecture.md#layers-and-the-direction-of-imports)
    # and outlives their rows, as it outlives any user row (actor_user_id).
    position_id = models.CharField(max_length=32, db_index=True)
    # The portfolio an event is of (a portfolio's own events have an empty position_id; a
    # position's cash movement in a portfolio names both), a plain column like the others.
    portfolio_id = models.CharField(max_length=32, null=True, blank=True, db_index=True)
    order_id = models.CharField(max_length=32, null=True, blank=True, db_index=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    inputs = models.JSONField(default=dict, encoder=AuditJSONEncoder, decoder=AuditJSONDecoder)
    outputs = models.JSONField(default=dict, encoder=AuditJSONEncoder, decoder=AuditJSONDecoder)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # Who acted (events.actor): where the work came from, and the user (id and username) or the
    # command or worker. The user's id is a plain number: the log outlives any user row.
    actor_source = models.CharField(max_length=8, choices=ActorSource.choices,
                                    default=actors.current_source)
    actor_user_id = models.BigIntegerField(null=True, blank=True, default=actors.current_user_id)
    actor_name = models.CharField(max_length=150, default=actors.current_name)

    class Meta:
        ordering = ("id",)
        indexes = [
            models.Index(fields=("position_id", "id"), name="event_pos_id"),
            models.Index(fields=("position_id", "type", "id"), name="event_pos_type_id"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(actor_source__in=ActorSource.values),
                                   name="event_actor_source_valid"),
            models.CheckConstraint(condition=~Q(actor_name=""), name="event_actor_named"),
            models.CheckConstraint(
                condition=~Q(actor_source__in=USER_SOURCES) | Q(actor_user_id__isnull=False),
                name="event_actor_user_when_request"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.position_id} #{self.pk}"

    @property
    def actor(self) -> actors.Actor:
        return actors.Actor(source=self.actor_source, name=self.actor_name,
                           user_id=self.actor_user_id)

