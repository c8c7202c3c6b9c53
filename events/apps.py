from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "events"

    def ready(self):
        # Django's place for wiring that needs the loaded models: the log wakes the webhooks'
        # delivery after each commit that wrote events, without importing them.
        from events.services import events_committed_subscribe
        from events.webhooks.tasks import webhooks_wake

        events_committed_subscribe(webhooks_wake)
