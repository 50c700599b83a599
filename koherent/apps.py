"""Koherent's app config: everything wires itself here, from ``INSTALLED_APPS`` alone."""

from __future__ import annotations

from django.apps import AppConfig


class KoherentConfig(AppConfig):
    name = "koherent"
    verbose_name = "Koherent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from koherent import checks  # noqa: F401  (registers the system checks)
