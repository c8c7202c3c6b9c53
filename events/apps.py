from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "events"

    def ready(self):
        # Django app loading: the models are ready. The webhooks wake when events commit.
        from events.services import on_events_committed
        from events.webhooks.services import webhooks_wake

        on_events_committed(webhooks_wake)
