"""The append-only audit log. The database refuses UPDATE and DELETE (see migration 0002)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from volbal.renderers import AuditJSONEncoder


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
    ORDER_ROUTED = "order_routed"
    BROKER_REJECTED = "broker_rejected"
    BROKER_ERROR = "broker_error"
    BROKER_FILL_MISMATCH = "broker_fill_mismatch"
    ORDER_EXPIRED = "order_expired"


class Event(models.Model):
    position = models.ForeignKey(
        "positions.Position", on_delete=models.PROTECT, related_name="events"
    )
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    type = models.CharField(max_length=40, choices=EventType.choices)
    inputs = models.JSONField(default=dict, encoder=AuditJSONEncoder)
    outputs = models.JSONField(default=dict, encoder=AuditJSONEncoder)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        indexes = [
            models.Index(fields=("position", "id"), name="event_pos_id"),
            models.Index(fields=("position", "type", "id"), name="event_pos_type_id"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.position_id} #{self.pk}"
