from django.apps import AppConfig


class VolbalConfig(AppConfig):
    name = "volbal"

    def ready(self) -> None:
        from volbal import lookups, pg_loaders

        lookups.register()  # field__any (volbal/lookups.py)
        pg_loaders.register()  # timestamptz read by psycopg's own loader (volbal/pg_loaders.py)
