"""koherent 0.2.0's GraphQL types, kept with their GraphQL names and fields (deprecated).

``ProvenanceEntry`` (a history row of a model declared with ``ProvenanceField``),
``HistoryKind`` and ``ModelChange`` keep the schema of a 0.2.0 service the same, so its
clients keep working while it moves to :class:`koherent.strawberry.HistoryEntryType`. The
``client`` field is there when ``authentikate``'s GraphQL types can be imported (0.2.0 took
them from there); ``app`` is new (the client id Koherent records).
"""

from __future__ import annotations

import datetime as dt
import functools
from enum import StrEnum
from typing import Any

import strawberry
import strawberry_django

from koherent.legacy import provenance_entry_model
from koherent.models import KoherentHistoryBase
from koherent.strawberry.types import HistoryUser, described


@strawberry.enum(description="The type of change that was made.")
class HistoryKind(StrEnum):
    """The type of change that was made (0.2.0's enum: simple-history's ``history_type``)."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"


@strawberry.type(description="A change made to a model.")
class ModelChange:
    """One field of one change (0.2.0's type)."""

    field: str = strawberry.field(description="The field that was changed.")
    old_value: str | None = strawberry.field(description="The old value of the field.")
    new_value: str | None = strawberry.field(description="The new value of the field.")


def _client_type() -> Any:
    try:
        from authentikate.strawberry.types import (  # type: ignore[import-not-found,unused-ignore]
            Client,
        )
    except ImportError:
        return None
    return Client


@functools.cache
def provenance_entry_type() -> type:
    """0.2.0's ``ProvenanceEntry`` type, built on first use (it needs the app registry)."""
    client_type = _client_type()

    class ProvenanceEntry:
        """A change made to a model."""

        app: str | None = strawberry_django.field(
            description="The client app the change came through."
        )

        @classmethod
        def is_type_of(cls, obj: Any, info: Any) -> bool:
            # Any Koherent history row: ProvenanceField's and HistoryField's alike.
            return isinstance(obj, cls | KoherentHistoryBase)

        @described("User who made the change.")
        def user(self) -> HistoryUser | None:
            return HistoryUser.of(self.history_user)  # type: ignore[attr-defined]

        @described("The type of change that was made.")
        def kind(self) -> HistoryKind:
            return HistoryKind(self.history_type)  # type: ignore[attr-defined]

        @described("The date of the change.")
        def date(self) -> dt.datetime:
            return self.history_date  # type: ignore[attr-defined,no-any-return]

        @described(
            "The assignation ID during which the change occurred. If it was "
            "happening outside of an assignation, it will be None."
        )
        def during(self) -> str | None:
            return self.assignation_id  # type: ignore[attr-defined,no-any-return]

        @described("The ID of the history entry.")
        def id(self) -> strawberry.ID:
            return strawberry.ID(str(self.history_id))  # type: ignore[attr-defined]

        @described("The effective changes made to the model.")
        def effective_changes(self) -> list[ModelChange]:
            old_record = self.prev_record  # type: ignore[attr-defined]
            if old_record is None:
                return []
            delta = self.diff_against(old_record)  # type: ignore[attr-defined]
            return [
                ModelChange(
                    field=change.field,
                    old_value=None if change.old is None else str(change.old),
                    new_value=None if change.new is None else str(change.new),
                )
                for change in delta.changes
            ]

    if client_type is not None:
        ProvenanceEntry.__annotations__["client"] = client_type | None
    decorate = strawberry_django.type(
        provenance_entry_model(),
        name="ProvenanceEntry",
        pagination=True,
        description="A provenance event for a model.",
    )
    result: type = decorate(ProvenanceEntry)
    return result
