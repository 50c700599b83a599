from django.apps import AppConfig


class AioAppConfig(AppConfig):
    name = "tests.aioapp"
    label = "aioapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.aioapp import signals

        signals.connect()
