from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    """The portfolios' room as an app (its table is positions.Portfolio, beside Position): so
    its admin screens and commands are found like every app's."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "positions.portfolios"
    label = "portfolios"
    verbose_name = "Portfolios"
