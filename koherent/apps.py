"""Koherent's app config: everything wires itself here, from ``INSTALLED_APPS`` alone."""

from __future__ import annotations

from django.apps import AppConfig


class KoherentConfig(AppConfig):
    name = "koherent"
    verbose_name = "Koherent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate, pre_migrate

        from koherent import _handoff, checks  # noqa: F401  (registers the system checks)
        from koherent.operations import refuse_unsafe_client_removals
        from koherent.query import _function, functions

        # koherent 0.2's client column is never dropped before it is carried into app.
        pre_migrate.connect(refuse_unsafe_client_removals, sender=self)
        # PostgreSQL: the function reading an assignation's first page in one query.
        post_migrate.connect(_function.on_post_migrate, sender=self)
        # ... and the functions of earlier code left there, named on migrate's output.
        post_migrate.connect(functions.on_post_migrate, sender=self)
        # Every new PostgreSQL connection hands the audit context to the capture triggers.
        connection_created.connect(_handoff.on_connection_created, dispatch_uid="koherent.capture")
        _handoff.install_on_open_connections()
