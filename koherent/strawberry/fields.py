"""``history_field()``: a tracked model's own history as a field of its GraphQL type.

::

    @strawberry_django.type(Order)
    class OrderType:
        reference: strawberry.auto
        history: list[HistoryEntry] = history_field()

The read permission is asked for the listing (``None``) and for the assignation of each entry;
entries of an assignation it refuses are left out.

The entries of every object of a list are loaded together: one query per tracked model, not
one per object (and their changes and users through the operation's loaders), in sync and
async execution, for plain and nested lists and relay connections alike: the extension
announces the objects of each list as a field resolves it
(:meth:`~koherent.strawberry.loaders.Loaders.register_objects`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import strawberry
from django.db import connections

from koherent import query
from koherent.registry import tracked_model
from koherent.strawberry.loaders import current_loaders, in_async_execution
from koherent.strawberry.permissions import areadable_entries, readable_entries, require_read
from koherent.strawberry.types import HistoryEntry, run_db


def load_object_histories(keys: list[tuple[str, Any]]) -> list[list[query.HistoryEntry]]:
    """The history entries of ``(model_label, object pk)`` keys, oldest first: one query per
    model."""
    by_label: dict[str, list[Any]] = defaultdict(list)
    for label, pk in keys:
        by_label[label].append(pk)
    found: dict[tuple[str, Any], list[query.HistoryEntry]] = defaultdict(list)
    for label, pks in by_label.items():
        tracked = tracked_model(label)
        manager = tracked.history_model._default_manager
        # A long list is read in chunks the database takes (SQLite: 999 parameters by
        # Django's count; PostgreSQL's protocol carries at most 65,535).
        chunk = connections[manager.db].features.max_query_params or _POSTGRES_MAX_PARAMS
        for start in range(0, len(pks), chunk):
            rows = manager.filter(
                **{f"{tracked.pk_attname}__in": pks[start : start + chunk]}
            ).order_by("history_date", "pk")
            for row in rows:
                entry = query.HistoryEntry.from_row(row)
                found[(label, tracked.object_id_of(row))].append(entry)
    return [found.get(key, []) for key in keys]


_POSTGRES_MAX_PARAMS = 65_535


def _history(root: Any, info: strawberry.Info) -> list[HistoryEntry]:
    tracked = tracked_model(type(root))
    key = (tracked.label, root.pk)
    loaders = current_loaders()

    def entries_of(entries: list[query.HistoryEntry]) -> list[HistoryEntry]:
        return HistoryEntry.list_of(entries)

    if in_async_execution():
        # Ask first, so that every object's key lands in the same batch.
        pending = loaders.object_histories.load(key)
        decided = ("GRAPHQL_READ_PERMISSION", None) in loaders.permissions

        async def load() -> list[HistoryEntry]:
            if decided:
                require_read(info)
            else:
                await run_db(require_read, info)
            return entries_of(await areadable_entries(info, await pending))

        return load()  # type: ignore[return-value]
    require_read(info)
    return entries_of(readable_entries(info, loaders.object_histories.load(key)))


def history_field(*, description: str | None = None) -> Any:
    """A field listing the object's history entries, oldest first."""
    return strawberry.field(
        resolver=_history,
        description=description or "The changes of this object, oldest first.",
    )
