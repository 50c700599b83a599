"""The tables of the assignation records: :class:`Assignation` and :class:`AssignationModel`,
and the database they live in (internal; the models are public as ``koherent.models.*``).

The record of an assignation is written lazily, with its first history row
(:mod:`koherent.records`); :func:`record_database` says where, as :mod:`koherent.routing`
explains.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, models, router
from django.utils import timezone

from koherent._validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_ORIGIN_LENGTH,
    MAX_TASK_ID_LENGTH,
    MAX_USER_PK_LENGTH,
)
from koherent.stamping import AssignationIdField

__all__ = ["Assignation", "AssignationModel", "record_database"]


class Assignation(models.Model):
    """One logical operation that wrote history: a request, a task, a script, a revert.

    Written lazily, by the first history row of the assignation (see :mod:`koherent.records`).
    """

    id = AssignationIdField(primary_key=True, max_length=MAX_ASSIGNATION_ID_LENGTH)
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
        return str(self.id)


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


def record_database(using: str | None = None, *, write: bool = False) -> str:
    """The database of the :class:`~koherent.models.Assignation` records that go with the
    history on ``using``: ``using`` itself when Koherent's tables may live there, else where
    the router sends ``Assignation``."""
    if not router.routers:  # no router: the records are wherever the history is
        return using or DEFAULT_DB_ALIAS
    if using is not None and router.allow_migrate_model(using, Assignation):
        return using
    if write:
        return str(router.db_for_write(Assignation))
    return str(router.db_for_read(Assignation))
