from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import pre_migrate

#: The PostgreSQL schema of ``capture.Placed`` (table ``"koherent_other"."capture_placed"``).
SCHEMA = "koherent_other"


def create_schema(using: str, **kwargs: Any) -> None:
    """Tables made without migrations (``--nomigrations``) need the schema first too; the
    migration that creates the table creates it as well."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")


class CaptureConfig(AppConfig):
    name = "tests.capture"
    label = "capture"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        pre_migrate.connect(create_schema, sender=self)
