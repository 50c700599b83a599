"""The opt-in admin app (``"koherent.admin"`` in ``INSTALLED_APPS``)."""

from __future__ import annotations

from django.apps import AppConfig


class KoherentAdminConfig(AppConfig):
    name = "koherent.admin"
    label = "koherent_admin"
    verbose_name = "Koherent admin"
