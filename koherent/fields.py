"""``HistoryField``: a simple-history ``HistoricalRecords`` stamped with the audit context."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models, router
from simple_history.manager import HistoryDescriptor, HistoryManager
from simple_history.models import HistoricalRecords, HistoricForeignKey

from koherent import _handoff, _update, capture, legacy, stamping
from koherent._config import get_setting
from koherent._transactions import make_saves_atomic

if TYPE_CHECKING:
    from koherent.capture import CaptureMode

__all__ = ["HistoricForeignKey", "HistoryField", "KoherentHistoryManager"]


def __getattr__(name: str) -> Any:
    # koherent 0.2's names (ProvenanceField, GenericRelation), with a DeprecationWarning.
    return legacy.resolve(__name__, name)


_CAPTURE_MODES = capture.CAPTURE_MODES

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

    def bulk_history_create(
        self,
        objs: Any,
        batch_size: int | None = None,
        update: bool = False,
        default_user: Any = None,
        default_change_reason: str | None = "",
        default_date: Any = None,
        custom_historical_attrs: dict[str, Any] | None = None,
    ) -> Any:
        from koherent.records import ensure_record_for_model

        tracked = self.model.instance_type
        using = router.db_for_write(self.model)
        if capture.captured_by_trigger(tracked, using):
            # The triggers wrote the rows when the objects were written: apply what the
            # caller gives on top of them instead of writing a second row per object.
            return self._complete_trigger_rows(
                objs,
                using,
                update=update,
                default_user=default_user,
                default_change_reason=default_change_reason,
                default_date=default_date,
                custom_historical_attrs=custom_historical_attrs,
            )
        ensure_record_for_model(self.model)
        return super().bulk_history_create(
            objs,
            batch_size=batch_size,
            update=update,
            default_user=default_user,
            default_change_reason=default_change_reason,
            default_date=default_date,
            custom_historical_attrs={
                **self._context_columns(),
                **(custom_historical_attrs or {}),
            },
        )

    def _context_columns(self) -> dict[str, Any]:
        """The audit context's columns, read once for every row of a bulk call.

        Each is what the column's default gives (the context cannot change during the call),
        so the rows hold what ``Model.__init__`` would have put there, without calling every
        default once per row. The caller's ``custom_historical_attrs`` still win.
        """
        # Here, not at the top: the history base is a model, and this module imports before
        # Django is set up (tests/test_architecture.py).
        from koherent._history_base import KOHERENT_HISTORY_COLUMNS

        meta = self.model._meta
        columns: dict[str, Any] = {}
        for name in KOHERENT_HISTORY_COLUMNS:
            field = meta.get_field(name)
            if field.has_default():
                columns[field.attname] = field.get_default()
        return columns

    def _complete_trigger_rows(
        self,
        objs: Any,
        using: str,
        *,
        update: bool,
        default_user: Any,
        default_change_reason: str | None,
        default_date: Any,
        custom_historical_attrs: dict[str, Any] | None,
    ) -> list[Any]:
        """The latest row the triggers wrote in this transaction for each of ``objs``, with
        the user, change reason, date and extra attributes the bulk helper was given."""
        from django.db.models.expressions import RawSQL
        from simple_history.utils import get_change_reason_from_object

        tracked = self.model.instance_type
        pk_attname = tracked._meta.pk.attname
        objs = [o for o in objs if o.pk is not None]
        if not objs:
            return []
        rows = (
            self.model._default_manager.using(using)
            .filter(
                **{f"{pk_attname}__in": [o.pk for o in objs]},
                history_type="~" if update else "+",
                history_date__gte=RawSQL("transaction_timestamp()", ()),
            )
            .order_by(pk_attname, "-history_date", "-history_id")
            .distinct(pk_attname)
        )
        latest = {getattr(row, pk_attname): row for row in rows}
        changed: list[Any] = []
        fields: set[str] = set()
        for obj in objs:
            row = latest.get(obj.pk)
            if row is None:
                continue
            values: dict[str, Any] = dict(custom_historical_attrs or {})
            user = getattr(obj, "_history_user", None) or default_user
            if user is not None:
                values["history_user_id"] = user.pk
                values["user_pk"] = str(user.pk)
            reason = get_change_reason_from_object(obj) or default_change_reason
            if reason:
                values["history_change_reason"] = reason
            date = getattr(obj, "_history_date", None) or default_date
            if date is not None:
                values["history_date"] = date
            if values:
                for name, value in values.items():
                    setattr(row, name, value)
                fields.update(values)
                changed.append(row)
        if changed:
            self.model._default_manager.using(using).bulk_update(changed, sorted(fields))
        return list(latest.values())


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
    (see :mod:`koherent._transactions`). The history model is indexed on
    ``(assignation_id, history_date, history_id)`` and on ``(<object key>, history_date,
    history_id)`` (instead of simple-history's index on the object key alone), for the
    queries of :mod:`koherent.query` and :mod:`koherent.revert`.
    """

    def __init__(
        self,
        *,
        capture: CaptureMode | None = None,
        capture_unchanged: bool = False,
        **kwargs: Any,
    ) -> None:
        # The models are imported when a field is made (Django is set up by then).
        from koherent._history_base import KoherentHistoryBase

        if capture is not None and capture not in _CAPTURE_MODES:
            raise ImproperlyConfigured(
                f"HistoryField(capture={capture!r}): use one of "
                f"{', '.join(map(repr, _CAPTURE_MODES))}, or leave it out to follow "
                f"KOHERENT['CAPTURE']."
            )
        self.capture = capture
        self.capture_unchanged = capture_unchanged

        bases = tuple(b for b in kwargs.pop("bases", ()) if b is not models.Model)
        if not any(isinstance(b, type) and issubclass(b, KoherentHistoryBase) for b in bases):
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
        from koherent._history_base import KOHERENT_HISTORY_COLUMNS

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

    def configured_capture(self) -> CaptureMode:
        """This field's capture mode: its own, else ``KOHERENT["CAPTURE"]``."""
        if self.capture is not None:
            return self.capture
        mode = get_setting("CAPTURE")
        # An unknown value is reported by the system check koherent.E070; until it is
        # fixed, signals keep capturing.
        return mode if mode in _CAPTURE_MODES else "signal"

    def post_save(self, instance: models.Model, created: bool, **kwargs: Any) -> None:
        if capture.captured_by_trigger(type(instance), kwargs.get("using")):
            return  # the database wrote the row
        super().post_save(instance, created, **kwargs)

    def post_delete(self, instance: models.Model, using: str | None = None, **kwargs: Any) -> None:
        if capture.captured_by_trigger(type(instance), using):
            if self.cascade_delete_history:
                manager = getattr(instance, self.manager_name)
                manager.using(using).all().delete()
            return  # otherwise the database wrote the row
        super().post_delete(instance, using=using, **kwargs)

    def create_historical_record(
        self, instance: models.Model, history_type: str, using: str | None = None
    ) -> None:
        """simple-history's row for a save or delete, also recording what an update changed.

        For an update (``~``) the row's ``history_changed_fields`` lists the tracked fields
        whose value differs from the state the instance was loaded (or last saved) with
        (:func:`koherent._update.changed_fields_of`); the revert tells recorded changes from
        unrecorded ones with it.
        """
        fields = self.fields_included(instance)
        changed = _update.changed_fields_of(instance, fields) if history_type == "~" else None
        token = stamping._changed_fields.set(changed)
        try:
            super().create_historical_record(instance, history_type, using=using)
        finally:
            stamping._changed_fields.reset(token)
        if history_type != "-":
            _update.remember_saved_state(instance, fields)

    def finalize(self, sender: type[models.Model], **kwargs: Any) -> None:
        super().finalize(sender, **kwargs)
        tracked = self.cls is sender or (self.inherit and issubclass(sender, self.cls))
        if tracked and not sender._meta.abstract:
            mode = self.configured_capture()
            setattr(sender, capture.MODE_ATTRIBUTE, mode)
            sender._koherent_history_field = self  # type: ignore[attr-defined]
            if mode == "trigger":
                self._register_triggers(sender)
            make_saves_atomic(sender, _handoff.direct_save if mode == "trigger" else None)
            _update.register(sender, self)
            plain: Any = sender.__dict__.get(self.manager_name)
            if type(plain) is HistoryDescriptor:
                descriptor = KoherentHistoryDescriptor(
                    plain.model, manager=plain.manager_class, queryset=plain.queryset_class
                )
                setattr(sender, self.manager_name, descriptor)
            # Read by the system check koherent.W040 (reverts need the history of deletes).
            history_model = getattr(sender, self.manager_name).model
            history_model.koherent_cascade_delete_history = self.cascade_delete_history

    def _register_triggers(self, sender: type[models.Model]) -> None:
        _handoff.declare_trigger_model()
        _handoff.make_deletes_hand_off(sender)
        if sender._meta.proxy or sender._meta.parents:
            return  # refused by the system check koherent.E073
        try:
            from koherent import _triggers
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{sender._meta.label} is captured by triggers, which need django-pgtrigger: "
                f'pip install "koherent[postgres]" (and add "pgtrigger" to INSTALLED_APPS).'
            ) from exc
        _triggers.register(sender, capture_unchanged=self.capture_unchanged)
