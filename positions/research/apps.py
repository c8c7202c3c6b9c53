from django.apps import AppConfig


class ResearchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "positions.research"
    label = "research"
    verbose_name = "Research"
