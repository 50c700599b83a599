"""Koherent's models: the abstract history base, the abstract tracked model, the record."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from koherent import stamping
from koherent.fields import HistoryField
from koherent.validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_ORIGIN_LENGTH,
    MAX_TASK_ID_LENGTH,
    MAX_USER_PK_LENGTH,
)

#: The columns Koherent adds to every history model (a tracked model may not use these names).
KOHERENT_HISTORY_COLUMNS = (
    "assignation_id",
    "app",
    "task_id",
    "user_pk",
    "history_changed_fields",
)


class KoherentHistoryBase(models.Model):
    """Abstract base of every Koherent history model: the audit context of each row.

    The defaults read the audit context when the row is built, so rows written by ``save()``,
    ``delete()``, simple-history's bulk helpers and Koherent's capture of ``update()`` are all
    stamped. ``assignation_id`` is indexed together with ``history_date`` and ``history_id``
    (the index is added by :class:`~koherent.fields.HistoryField`). ``history_changed_fields``
    says which tracked fields an update row's write changed (see :mod:`koherent.capture`).
    """

    assignation_id = models.CharField(
        max_length=MAX_ASSIGNATION_ID_LENGTH,
        null=True,
        blank=True,
        editable=False,
        default=stamping.current_assignation_id,
        help_text="The assignation (logical operation) this change was part of.",
    )
    app = models.CharField(
        max_length=MAX_APP_LENGTH,
        null=True,
        blank=True,
        editable=False,
        default=stamping.current_app,
        help_text="The client app the change came through.",
    )
    task_id = models.CharField(
        max_length=MAX_TASK_ID_LENGTH,
        null=True,
        blank=True,
        editable=False,
        default=stamping.current_task_id,
        help_text="The id of the Celery task that made the change, if a task did.",
    )
    user_pk = stamping.UserPkField(
        max_length=MAX_USER_PK_LENGTH,
        null=True,
        blank=True,
        editable=False,
        default=stamping.current_user_pk,
        help_text="The primary key of the user who made the change, kept as text.",
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        from koherent.records import ensure_record_for_row

        ensure_record_for_row(self, kwargs.get("using"))
        super().save(*args, **kwargs)


class KoherentHistoryModel(models.Model):
    """Abstract model giving every concrete subclass a Koherent history.

    ``class Order(KoherentHistoryModel): ...`` is the same as adding
    ``history = HistoryField()`` to ``Order``.
    """

    history = HistoryField(inherit=True)

    class Meta:
        abstract = True


class Assignation(models.Model):
    """One logical operation that wrote history: a request, a task, a script, a revert.

    Written lazily, by the first history row of the assignation.
    """

    id = models.CharField(primary_key=True, max_length=MAX_ASSIGNATION_ID_LENGTH)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        related_name="+",
    )
    user_pk = models.CharField(max_length=MAX_USER_PK_LENGTH, null=True, blank=True)
    app = models.CharField(max_length=MAX_APP_LENGTH, null=True, blank=True, db_index=True)
    origin = models.CharField(max_length=MAX_ORIGIN_LENGTH, default="manual", db_index=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="children",
    )
    task_id = models.CharField(max_length=MAX_TASK_ID_LENGTH, null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-created", "id")
        verbose_name = "assignation"
        verbose_name_plural = "assignations"

    def __str__(self) -> str:
        return self.id
