"""``HistoryField``: a simple-history ``HistoricalRecords`` stamped with the audit context."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from simple_history.manager import HistoryDescriptor, HistoryManager
from simple_history.models import HistoricalRecords, HistoricForeignKey

from koherent import capture, stamping
from koherent.transactions import make_saves_atomic

__all__ = ["HistoricForeignKey", "HistoryField", "KoherentHistoryManager"]

#: The composite index every Koherent history model gets for the rows of an assignation.
ASSIGNATION_INDEX_FIELDS = ("assignation_id", "history_date", "history_id")
#: The fields after the tracked object's key in the index of an object's rows.
OBJECT_INDEX_SUFFIX = ("history_date", "history_id")


def _object_key_name(model: type[models.Model]) -> str:
    """The name the tracked model's primary key has in the history model."""
    pk = model._meta.pk
    assert pk is not None
    return pk.name if pk.is_relation else pk.attname


class KoherentHistoryManager(HistoryManager):  # type: ignore[misc]
    """simple-history's manager, recording the assignation of bulk-written history too."""

    def bulk_history_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        from koherent.records import ensure_record_for_model

        ensure_record_for_model(self.model)
        return super().bulk_history_create(objs, *args, **kwargs)


class KoherentHistoryDescriptor(HistoryDescriptor):  # type: ignore[misc]
    """simple-history's ``Model.history`` descriptor, building its manager class once.

    simple-history's descriptor makes a new manager class (``Manager.from_queryset``) on every
    access, and it is accessed on every tracked save, which made building that class a tenth
    of the Python time of a save. The class is the same every time, so it is built on first
    access and kept; each access still returns a new manager bound to the instance or model.
    """

    def __get__(self, instance: models.Model | None, owner: type[models.Model]) -> Any:
        manager_class = self.__dict__.get("_koherent_manager_class")
        if manager_class is None:
            manager_class = self.manager_class.from_queryset(self.queryset_class)
            self._koherent_manager_class = manager_class
        return manager_class(self.model, instance)


class HistoryField(HistoricalRecords):  # type: ignore[misc]
    """Track a model's history, each row stamped with user, app, assignation and task.

    Takes every argument of simple-history's ``HistoricalRecords``. Koherent sets these
    defaults: the user comes from the audit context (``get_user``), the ``history_user``
    foreign key has no database constraint (a deleted user never makes a save fail), bulk
    history goes through :class:`KoherentHistoryManager`, and the history model gets the
    indexed ``assignation_id`` and the ``app``, ``task_id`` and ``user_pk`` columns. Saves of
    the tracked model and their history rows run in one transaction
    (see :mod:`koherent.transactions`). The history model is indexed on
    ``(assignation_id, history_date, history_id)`` and on ``(<object key>, history_date,
    history_id)`` (instead of simple-history's index on the object key alone), for the
    queries of :mod:`koherent.query` and :mod:`koherent.revert`.
    """

    def __init__(self, **kwargs: Any) -> None:
        from koherent.models import KoherentHistoryBase

        bases = tuple(b for b in kwargs.pop("bases", ()) if b is not models.Model)
        if KoherentHistoryBase not in bases:
            bases = (KoherentHistoryBase, *bases)
        kwargs.setdefault("get_user", stamping.get_history_user)
        kwargs.setdefault("user_db_constraint", False)
        kwargs.setdefault("history_manager", KoherentHistoryManager)
        super().__init__(bases=bases, **kwargs)

    def get_meta_options(self, model: type[models.Model]) -> dict[str, Any]:
        """simple-history's Meta options, plus Koherent's two composite indexes.

        ``(assignation_id, history_date, history_id)`` serves "every row of an assignation"
        and its pages in time order (see :mod:`koherent.query`); ``(<object key>,
        history_date, history_id)`` serves "the rows of these objects, in order" and "the row
        before this one" (effective changes, revert). Each makes a single-column index on its
        first column unnecessary.
        """
        options: dict[str, Any] = super().get_meta_options(model)
        indexes = list(options.get("indexes", ()))
        indexes.append(models.Index(fields=list(ASSIGNATION_INDEX_FIELDS)))
        indexes.append(models.Index(fields=[_object_key_name(model), *OBJECT_INDEX_SUFFIX]))
        options["indexes"] = tuple(indexes)
        return options

    def create_history_model(self, model: type[models.Model], inherited: bool) -> Any:
        from koherent.models import KOHERENT_HISTORY_COLUMNS

        clashes = sorted(
            f.name for f in self.fields_included(model) if f.name in KOHERENT_HISTORY_COLUMNS
        )
        if clashes:
            raise ImproperlyConfigured(
                f"{model._meta.label} has field(s) {', '.join(clashes)}, which Koherent's "
                f"history model uses for the audit context; rename them or leave them out "
                f"of the history with HistoryField(excluded_fields=[...])."
            )
        # The object key is indexed by the composite index of get_meta_options() instead.
        original: list[str] = getattr(self, "no_db_index", [])
        self.no_db_index = [*original, _object_key_name(model)]
        try:
            return super().create_history_model(model, inherited)
        finally:
            self.no_db_index = original

    def create_historical_record(
        self, instance: models.Model, history_type: str, using: str | None = None
    ) -> None:
        """simple-history's row for a save or delete, also recording what an update changed.

        For an update (``~``) the row's ``history_changed_fields`` lists the tracked fields
        whose value differs from the state the instance was loaded (or last saved) with
        (:func:`koherent.capture.changed_fields_of`); the revert tells recorded changes from
        unrecorded ones with it.
        """
        fields = self.fields_included(instance)
        changed = capture.changed_fields_of(instance, fields) if history_type == "~" else None
        token = stamping._changed_fields.set(changed)
        try:
            super().create_historical_record(instance, history_type, using=using)
        finally:
            stamping._changed_fields.reset(token)
        if history_type != "-":
            capture.remember_saved_state(instance, fields)

    def finalize(self, sender: type[models.Model], **kwargs: Any) -> None:
        super().finalize(sender, **kwargs)
        tracked = self.cls is sender or (self.inherit and issubclass(sender, self.cls))
        if tracked and not sender._meta.abstract:
            make_saves_atomic(sender)
            capture.register(sender, self)
            plain: Any = sender.__dict__.get(self.manager_name)
            if type(plain) is HistoryDescriptor:
                descriptor = KoherentHistoryDescriptor(
                    plain.model, manager=plain.manager_class, queryset=plain.queryset_class
                )
                setattr(sender, self.manager_name, descriptor)
            # Read by the system check koherent.W040 (reverts need the history of deletes).
            history_model = getattr(sender, self.manager_name).model
            history_model.koherent_cascade_delete_history = self.cascade_delete_history
