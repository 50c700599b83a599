"""The abstract base of every Koherent history model: the audit context of each row
(internal; public as ``koherent.models.KoherentHistoryBase``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

from koherent import stamping
from koherent._validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_TASK_ID_LENGTH,
    MAX_USER_PK_LENGTH,
)
from koherent.records import insert_history_row

__all__ = ["KOHERENT_HISTORY_COLUMNS", "KoherentHistoryBase"]


#: The columns Koherent adds to every history model (a tracked model may not use these names).
KOHERENT_HISTORY_COLUMNS = (
    "assignation_id",
    "app",
    "task_id",
    "user_pk",
    "history_changed_fields",
)


def _context_column(
    field_class: type[models.CharField[Any, Any]],
    max_length: int,
    default: Callable[[], str | None],
    help_text: str,
) -> Any:
    """A column of the audit context: filled by ``default`` when the row is built."""
    return field_class(
        max_length=max_length,
        null=True,
        blank=True,
        editable=False,
        default=default,
        help_text=help_text,
    )


class KoherentHistoryBase(models.Model):
    """Abstract base of every Koherent history model: the audit context of each row.

    The defaults read the audit context when the row is built, so rows written by ``save()``,
    ``delete()``, simple-history's bulk helpers and Koherent's capture of ``update()`` are all
    stamped. ``assignation_id`` is indexed together with ``history_date`` and ``history_id``
    (the index is added by :class:`~koherent.fields.HistoryField`). ``history_changed_fields``
    says which tracked fields an update row's write changed (see :mod:`koherent.capture`).
    """

    assignation_id = _context_column(
        stamping.AssignationIdField,
        MAX_ASSIGNATION_ID_LENGTH,
        stamping.current_assignation_id,
        "The assignation (logical operation) this change was part of.",
    )
    app = _context_column(
        models.CharField,
        MAX_APP_LENGTH,
        stamping.current_app,
        "The client app the change came through.",
    )
    task_id = _context_column(
        models.CharField,
        MAX_TASK_ID_LENGTH,
        stamping.current_task_id,
        "The id of the Celery task that made the change, if a task did.",
    )
    user_pk = _context_column(
        stamping.UserPkField,
        MAX_USER_PK_LENGTH,
        stamping.current_user_pk,
        "The primary key of the user who made the change, kept as text.",
    )
    history_changed_fields = models.TextField(
        null=True,
        blank=True,
        editable=False,
        default=stamping.current_changed_fields,
        help_text=(
            "For an update: the fields its write changed, comma-separated (empty: none). "
            "Empty (NULL) when the writer could not tell."
        ),
    )

    class Meta:
        abstract = True

    def _do_insert(
        self,
        manager: Any,
        using: str,
        fields: Any,
        returning_fields: Any,
        raw: bool,
    ) -> Any:
        # The row's assignation record and its entry in the record's list of touched models
        # are written with the row, in the same query where the backend allows it.
        def insert() -> Any:
            return super(KoherentHistoryBase, self)._do_insert(  # type: ignore[misc]
                manager, using, fields, returning_fields, raw
            )

        return insert_history_row(self, using, fields, returning_fields, raw, insert)
