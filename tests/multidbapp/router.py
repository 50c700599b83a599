"""The database router of the multi-database tests (the usual shape of a routed project).

The ``multidbapp`` tables, its history tables included, live on ``other``; everything else,
Koherent's own ``koherent_assignation`` table included, on ``default``.
"""

from __future__ import annotations

from typing import Any

ROUTED_APP = "multidbapp"
ROUTED_DB = "other"


class OtherDatabaseRouter:
    """Sends ``multidbapp`` to ``other``; has no opinion on the rest (``default``)."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return ROUTED_DB if model._meta.app_label == ROUTED_APP else None

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return ROUTED_DB if model._meta.app_label == ROUTED_APP else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # A history row on ``other`` names its user (on ``default``) without a constraint.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        if app_label == ROUTED_APP:
            return db == ROUTED_DB
        return db != ROUTED_DB
