"""The webhook delivery task on the one job queue (django-tasks, database backend). Queued by
``services.webhook_schedule`` (after a commit that wrote events of a subscribed owner, and
again at a retry's time); run by ``manage.py db_worker``."""

from __future__ import annotations

from django_tasks import task


@task()
def webhook_deliver(endpoint_id: str) -> dict:
    """Send the endpoint's next events; what was done."""
    from events.actor import Actor, acting
    from events.webhooks.delivery import endpoint_run

    with acting(Actor.worker("webhooks")):
        outcome = endpoint_run(endpoint_id)
    return {"delivered": outcome.delivered, "failed_attempts": outcome.failed_attempts,
            "gave_up": outcome.gave_up}
