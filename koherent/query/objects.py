"""The history of given objects: every row of each, oldest first, in one query per model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connections, router

from koherent._registry import tracked_model
from koherent._sql import chunks
from koherent.query.entries import HistoryEntry

__all__ = ["object_histories"]

#: The most parameters PostgreSQL's protocol carries in one statement.
_POSTGRES_MAX_PARAMS = 65_535


def object_histories(
    keys: Sequence[tuple[str, Any]], *, using: str | None = None
) -> list[list[HistoryEntry]]:
    """The history entries of each ``(model_label, object pk)`` key, oldest first, in the
    order given (``[]`` for an object without history).

    One query per tracked model (a long list of objects in chunks the database takes: SQLite
    limits parameters). ``using`` names the database; without it, each model's history is
    read from the database the router reads it from. Raises ``LookupError`` for a label
    Koherent does not track.
    """
    by_label: dict[str, list[Any]] = defaultdict(list)
    for label, pk in keys:
        by_label[label].append(pk)
    found: dict[tuple[str, Any], list[HistoryEntry]] = defaultdict(list)
    for label, pks in by_label.items():
        tracked = tracked_model(label)
        db = using or str(router.db_for_read(tracked.history_model))
        manager = tracked.history_model._default_manager.db_manager(db)
        size = connections[db].features.max_query_params or _POSTGRES_MAX_PARAMS
        for part in chunks(pks, size):
            rows = manager.filter(**{f"{tracked.pk_attname}__in": part}).order_by(
                "history_date", "pk"
            )
            for row in rows:
                found[(label, tracked.object_id_of(row))].append(HistoryEntry._build(tracked, row))
    return [found.get(key, []) for key in keys]
