"""The router of the routed trigger-capture tests: the multi-database tests' router, which also
sends ``capture.Routed`` and its history to the ``other`` database."""

from __future__ import annotations

from typing import Any

from tests.multidbapp.router import ROUTED_DB, OtherDatabaseRouter

ROUTED_MODELS = ("capture.Routed", "capture.HistoricalRouted")


class RoutedCaptureRouter(OtherDatabaseRouter):
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        if model._meta.label in ROUTED_MODELS:
            return ROUTED_DB
        return super().db_for_read(model, **hints)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        if model._meta.label in ROUTED_MODELS:
            return ROUTED_DB
        return super().db_for_write(model, **hints)

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        model = hints.get("model")
        if model is not None and model._meta.label in ROUTED_MODELS:
            return db == ROUTED_DB
        return super().allow_migrate(db, app_label, **hints)
