"""The research job row: a sweep, a walk-forward or a backtest above the synchronous size limit
(``POST /v1/backtests``), run as a background job. Its table keeps its first name,
``positions_sweep`` (the model moved here from the positions app; no row moved).

The task table of django-tasks is only the transport (docs/architecture.md#background-jobs): what a
user sees (status, progress, cancel, results, a crash) lives here."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from volbal import clock, ids


def job_id() -> str:
    return ids.new_id("swp")


class JobKind(models.TextChoices):
    SWEEP = "sweep"
    WALKFORWARD = "walkforward"
    BACKTEST = "backtest"  # one backtest too large to answer synchronously


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class ResearchJob(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=job_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="research_jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    params = models.JSONField(help_text="The request, normalised (decimals as strings).")
    status = models.CharField(max_length=16, choices=JobStatus.choices,
                              default=JobStatus.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    # The document the API shows (ranked cells or windows, benchmarks; a backtest's result)
    # and, for a sweep, the values the heatmap is drawn from (for a backtest, from its creation,
    # the request itself: its series may be megabytes, kept out of params and of the lists);
    # the files are rendered once, when the job succeeds.
    results = models.JSONField(null=True, blank=True)
    state = models.JSONField(null=True, blank=True, editable=False)
    results_csv = models.TextField(blank=True, default="", editable=False)
    results_xlsx = models.BinaryField(null=True, blank=True, editable=False)
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    worker_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, editable=False, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "positions_sweep"
        verbose_name = "research job"
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("owner", "created_at", "id"), name="sweep_owner_created")]
        constraints = [
            models.CheckConstraint(condition=Q(progress_done__lte=F("progress_total")),
                                   name="sweep_progress_within_total"),
            models.CheckConstraint(condition=Q(kind__in=JobKind.values),
                                   name="sweep_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values),
                                   name="sweep_status_valid"),
            models.CheckConstraint(
                condition=Q(status=JobStatus.SUCCEEDED, results__isnull=False)
                | ~Q(status=JobStatus.SUCCEEDED),
                name="sweep_succeeded_has_results"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.kind} {self.status}"

    @property
    def fraction(self) -> float:
        return self.progress_done / self.progress_total if self.progress_total else 0.0
