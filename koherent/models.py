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
        from koherent.records import insert_history_row

        def insert() -> Any:
            return super(KoherentHistoryBase, self)._do_insert(  # type: ignore[misc]
                manager, using, fields, returning_fields, raw
            )

        return insert_history_row(self, using, fields, returning_fields, raw, insert)


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

    Written lazily, by the first history row of the assignation (see :mod:`koherent.records`).
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
    models_recorded = models.BooleanField(
        default=False,
        help_text=(
            "Whether every tracked model the assignation wrote to is listed in its touched "
            "models (records written before Koherent kept that list are not)."
        ),
    )

    class Meta:
        ordering = ("-created", "id")
        verbose_name = "assignation"
        verbose_name_plural = "assignations"

    def __str__(self) -> str:
        return self.id


class AssignationModel(models.Model):
    """A tracked model an assignation wrote history for: one row per model per assignation.

    Written with the assignation's first history row of that model (see
    :mod:`koherent.records`), so that reading an assignation's history
    (:func:`koherent.query.history_for_assignation`) reads only the tables it touched.
    """

    assignation = models.ForeignKey(
        Assignation,
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,  # the unique constraint's index starts with it
        related_name="touched_models",
    )
    #: The tracked model's label, ``app_label.ModelName``.
    model = models.CharField(max_length=255)

    class Meta:
        verbose_name = "model touched by an assignation"
        verbose_name_plural = "models touched by assignations"
        constraints = [
            models.UniqueConstraint(
                fields=["assignation", "model"], name="koherent_assignation_model_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.assignation_id}: {self.model}"


def __getattr__(name: str) -> Any:
    # koherent 0.2's ProvenanceEntryModel, with a DeprecationWarning (koherent.legacy).
    from koherent import legacy

    return legacy.resolve(__name__, name)
