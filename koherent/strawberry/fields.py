"""``history_field()``: a tracked model's own history as a field of its GraphQL type.

::

    @strawberry_django.type(Order)
    class OrderType:
        reference: strawberry.auto
        history: list[HistoryEntryType] = history_field()

The read permission is asked for the listing (``None``) and for the assignation of each entry;
entries of an assignation it refuses are left out.

The entries of every object of a list are loaded together: one query per tracked model, not
one per object (:func:`koherent.query.object_histories`; their changes and users through the
operation's loaders), in sync and async execution, for plain and nested lists and relay
connections alike: the extension announces the objects of each list as a field resolves it
(:meth:`~koherent.strawberry.loaders.Loaders.register_objects`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import strawberry

from koherent._registry import tracked_model
from koherent.loop import in_event_loop
from koherent.strawberry.loaders import current_loaders
from koherent.strawberry.permissions import areadable_entries, readable_entries, require_read
from koherent.strawberry.types import HistoryEntryType, run_db

if TYPE_CHECKING:
    from koherent import query


def _history(root: Any, info: strawberry.Info) -> list[HistoryEntryType]:
    tracked = tracked_model(type(root))
    key = (tracked.label, root.pk)
    loaders = current_loaders()

    def entries_of(entries: list[query.HistoryEntry]) -> list[HistoryEntryType]:
        return HistoryEntryType.list_of(entries)

    if in_event_loop():
        # Ask first, so that every object's key lands in the same batch.
        pending = loaders.object_histories.load(key)
        decided = ("GRAPHQL_READ_PERMISSION", None) in loaders.permissions

        async def load() -> list[HistoryEntryType]:
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
