"""The webhook delivery task on the job queue (django-tasks, database backend) and its queueing:
woken after a commit that wrote events of a subscribed owner (``webhooks_wake``, subscribed to
the log by ``events.apps``), queued again at a retry's time; run by ``manage.py db_worker``.

The task has a queue of its own, ``webhooks``: a receiver that answers slowly holds a webhooks
worker for at most one delivery's deadline (``events.webhooks.delivery``), never the workers of
the jobs and the trade cycle on ``default``. Run ``manage.py db_worker --queue-name webhooks``
beside the default workers (``manage.py serve`` runs one worker for every queue)."""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.db import connection, transaction
from django_tasks import task

from events.actor import Actor, acting
from events.webhooks.delivery import Outcome, endpoint_deliver
from events.webhooks.models import WebhookEndpoint
from volbal import clock

QUEUE = "webhooks"


@task(queue_name=QUEUE)
def webhook_deliver(endpoint_id: str) -> dict:
    """Send the endpoint's next events; what was done."""
    with acting(Actor.worker("webhooks")):
        outcome = endpoint_run(endpoint_id)
    return {"delivered": outcome.delivered, "failed_attempts": outcome.failed_attempts,
            "gave_up": outcome.gave_up}


def endpoint_run(endpoint_id: str, *, batch: int = 100) -> Outcome:
    """The delivery task's body: clear the queued flag (events written from now on queue a new
    task), send, and queue the next run: at once when the batch ran out, at the backoff's time
    when the head failed, when the lease ends when another worker holds it."""
    WebhookEndpoint.objects.filter(pk=endpoint_id).update(wake_queued=False)
    outcome = endpoint_deliver(endpoint_id, batch=batch)
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True).first()
    if endpoint is None:
        return outcome
    now = clock.now()
    if outcome.more:
        webhook_schedule(endpoint_id=endpoint_id)
    elif endpoint.next_attempt_at and endpoint.next_attempt_at > now:
        webhook_schedule(endpoint_id=endpoint_id, run_after=endpoint.next_attempt_at)
    elif not outcome.claimed and endpoint.lease_until and endpoint.lease_until > now:
        webhook_schedule(endpoint_id=endpoint_id, run_after=endpoint.lease_until)
    return outcome


def webhook_schedule(*, endpoint_id: str, run_after: dt.datetime | None = None,
                     force: bool = False) -> bool:
    """Queue the endpoint's delivery task (at ``run_after``, default now) unless one is queued
    already (``force``: queue anyway). Whether a task was queued. The flag is set and the task
    row inserted in one transaction: both commit or neither."""
    with transaction.atomic():
        marked = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True, wake_queued=False) \
            .update(wake_queued=True)
        if not marked and not force:
            return False
        pending = webhook_deliver.using(run_after=run_after) if run_after else webhook_deliver
        pending.enqueue(endpoint_id)
    return True


def webhooks_wake(stream_ids) -> int:
    """After a commit that wrote events of ``stream_ids`` (positions, and portfolios for their
    own events): queue the delivery task of every active endpoint of their owners that has
    none queued. How many were queued.

    Every committed write runs this once, so it is one plain statement (no queryset to
    compile): usually it finds nothing."""
    ids = list(stream_ids)
    quote = connection.ops.quote_name
    # by name from the app registry: the log is below positions (events.models.Event)
    position_t = quote(apps.get_model("positions", "Position")._meta.db_table)
    portfolio_t = quote(apps.get_model("positions", "Portfolio")._meta.db_table)
    marks = ", ".join(["%s"] * len(ids))
    sql = (f"SELECT w.id FROM {quote(WebhookEndpoint._meta.db_table)} w "
           f"WHERE w.active AND NOT w.wake_queued AND w.owner_id IN "
           f"(SELECT p.owner_id FROM {position_t} p WHERE p.id IN ({marks}) UNION ALL "
           f"SELECT f.owner_id FROM {portfolio_t} f WHERE f.id IN ({marks}))")
    with connection.cursor() as cursor:
        cursor.execute(sql, ids + ids)
        found = [row[0] for row in cursor.fetchall()]
    return sum(webhook_schedule(endpoint_id=pk) for pk in found)
