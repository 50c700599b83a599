"""History rows as plain values: :class:`ChangeKind`, :class:`HistoryEntry`, a page of them."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from koherent._registry import TrackedModel, tracked_model
from koherent.query._cursor import _cursor_of, _encode_cursor

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = ["ChangeKind", "HistoryEntry", "HistoryPage"]


class ChangeKind(enum.StrEnum):
    """What a history row records."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"

    @classmethod
    def of(cls, history_type: str) -> ChangeKind:
        """The kind of simple-history's ``history_type`` (``+``, ``~``, ``-``)."""
        return _KINDS[history_type]


_KINDS = {"+": ChangeKind.CREATE, "~": ChangeKind.UPDATE, "-": ChangeKind.DELETE}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One history row of a tracked model, as a plain value.

    Build one with :meth:`from_row`; :attr:`row` is the history row itself.
    """

    kind: ChangeKind
    date: dt.datetime
    #: The primary key of the user who made the change, as text (``None`` if unknown).
    user_id: str | None
    app: str | None
    assignation_id: str | None
    task_id: str | None
    #: ``app_label.ModelName`` of the tracked model.
    model_label: str
    #: The tracked object's primary key.
    object_id: Any
    #: The history row's primary key.
    history_id: Any
    row: Model = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_row(cls, row: Model) -> HistoryEntry:
        """The entry of a history row of a tracked model."""
        tracked = tracked_model(type(row))
        return cls._build(tracked, row)

    @classmethod
    def _build(cls, tracked: TrackedModel, row: Model) -> HistoryEntry:
        return cls(
            kind=ChangeKind.of(row.history_type),  # type: ignore[attr-defined]
            date=row.history_date,  # type: ignore[attr-defined]
            user_id=row.user_pk,  # type: ignore[attr-defined]
            app=row.app,  # type: ignore[attr-defined]
            assignation_id=row.assignation_id,  # type: ignore[attr-defined]
            task_id=row.task_id,  # type: ignore[attr-defined]
            model_label=tracked.label,
            object_id=tracked.object_id_of(row),
            history_id=row.pk,
            row=row,
        )

    @property
    def key(self) -> tuple[str, Any]:
        """``(model_label, history_id)``: what :func:`load_entries` takes back."""
        return (self.model_label, self.history_id)

    @property
    def cursor(self) -> str:
        """The opaque cursor of this entry (pass it as ``after=`` to get the rows after it)."""
        return _encode_cursor(self.date, self.model_label, self.history_id)

    @property
    def model(self) -> type[Model]:
        """The tracked model class."""
        return tracked_model(self.model_label).model


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of an assignation's history, in order."""

    rows: tuple[Model, ...]
    #: True when more rows follow (fetch them with ``after=page.end_cursor``).
    has_next: bool

    @property
    def entries(self) -> list[HistoryEntry]:
        """The rows as :class:`HistoryEntry` values."""
        return [HistoryEntry.from_row(row) for row in self.rows]

    @property
    def start_cursor(self) -> str | None:
        return _cursor_of(self.rows[0]) if self.rows else None

    @property
    def end_cursor(self) -> str | None:
        return _cursor_of(self.rows[-1]) if self.rows else None
