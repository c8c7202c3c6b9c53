from django.apps import AppConfig


class VolbalConfig(AppConfig):
    name = "volbal"

    def ready(self) -> None:
        from volbal.lookups import register

        register()  # field__any (volbal/lookups.py)
