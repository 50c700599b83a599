"""Which models Koherent tracks, and how their history is laid out.

A model is tracked when its simple-history model carries Koherent's columns (it was made by
:class:`~koherent.fields.HistoryField` or :class:`~koherent.models.KoherentHistoryModel`).
:class:`TrackedModel` describes one of them once (the history model, the primary key, the
tracked fields, the many-to-many fields whose history simple-history keeps), so the query and
revert code reads a ready description instead of walking ``_meta`` again for every row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models, router
from simple_history.models import HistoricalRecords


@dataclass(frozen=True, slots=True)
class TrackedM2M:
    """A many-to-many field whose history simple-history records (``m2m_fields=[...]``)."""

    #: The field on the tracked model.
    field: models.ManyToManyField[Any, Any]
    #: simple-history's model of the through rows, one set per history row.
    history_model: type[models.Model]
    #: The through model of the relation.
    through: type[models.Model]
    #: Attribute names (on the through model) of the tracked object's and the target's keys.
    source_attname: str
    target_attname: str
    #: Through-model fields copied into each m2m history row (the through pk excluded).
    value_attnames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TrackedModel:
    """A model tracked by Koherent, and its history model."""

    model: type[models.Model]
    history_model: type[models.Model]
    #: ``app_label.ModelName`` of the tracked model (Django's ``Model._meta.label``).
    label: str
    #: Attribute name of the tracked model's primary key (also the history model's column).
    pk_attname: str
    #: Name of the history model's field holding the tracked object's key.
    history_key: str
    #: The tracked model's fields that the history keeps, in the model's order.
    fields: tuple[models.Field[Any, Any], ...]
    m2m: tuple[TrackedM2M, ...] = field(default=())

    @property
    def attnames(self) -> tuple[str, ...]:
        """Attribute names of :attr:`fields` (``order_id`` for a foreign key ``order``)."""
        return tuple(f.attname for f in self.fields)

    def object_id_of(self, row: models.Model) -> Any:
        """The tracked object's primary key, read from a history row."""
        return getattr(row, self.pk_attname)


def _is_koherent_history(history_model: type[models.Model]) -> bool:
    from koherent._history_base import KoherentHistoryBase

    return issubclass(history_model, KoherentHistoryBase)


def _describe(model: type[models.Model]) -> TrackedModel | None:
    manager_name = getattr(model._meta, "simple_history_manager_attribute", None)
    if manager_name is None or model._meta.proxy or model._meta.abstract:
        return None
    history_model: type[models.Model] = getattr(model, manager_name).model
    if not _is_koherent_history(history_model):
        return None
    tracked_fields = tuple(history_model.tracked_fields)  # type: ignore[attr-defined]
    m2m: list[TrackedM2M] = []
    for m2m_field in history_model._history_m2m_fields:  # type: ignore[attr-defined]
        m2m_history = HistoricalRecords.m2m_models.get(m2m_field)
        if m2m_history is None:  # pragma: no cover - simple-history registers every one
            continue
        through = m2m_field.remote_field.through
        source = m2m_field.m2m_field_name()
        target = m2m_field.m2m_reverse_field_name()
        source_attname = through._meta.get_field(source).attname
        target_attname = through._meta.get_field(target).attname
        values = tuple(
            f.attname
            for f in through._meta.concrete_fields
            if not f.primary_key and f.attname != source_attname
        )
        m2m.append(
            TrackedM2M(
                field=m2m_field,
                history_model=m2m_history,
                through=through,
                source_attname=source_attname,
                target_attname=target_attname,
                value_attnames=values,
            )
        )
    return TrackedModel(
        model=model,
        history_model=history_model,
        label=model._meta.label,
        pk_attname=model._meta.pk.attname,
        history_key=model._meta.pk.name if model._meta.pk.is_relation else model._meta.pk.attname,
        fields=tracked_fields,
        m2m=tuple(m2m),
    )


@functools.cache
def _all() -> tuple[TrackedModel, ...]:
    found = (_describe(model) for model in apps.get_models())
    return tuple(sorted((t for t in found if t is not None), key=lambda t: t.label))


#: Per database: the routers and models the answer was worked out from, and the answer.
_per_database: dict[str, tuple[Any, tuple[TrackedModel, ...], tuple[TrackedModel, ...]]] = {}


def tracked_models(using: str | None = None) -> tuple[TrackedModel, ...]:
    """Every model Koherent tracks, sorted by label.

    With ``using``, only the models whose history the database router lets live there (asked
    once per database, again when the routers or the tracked models change).
    """
    everything = _all()
    if using is None:
        return everything
    routers = router.routers
    cached = _per_database.get(using)
    if cached is not None and cached[0] is routers and cached[1] is everything:
        return cached[2]
    found = tuple(t for t in everything if router.allow_migrate_model(using, t.history_model))
    _per_database[using] = (routers, everything, found)
    return found


def tracked_model(model_or_label: type[models.Model] | str) -> TrackedModel:
    """The description of one tracked model, by class or ``app_label.ModelName``.

    Raises ``LookupError`` for a model Koherent does not track.
    """
    if isinstance(model_or_label, str):
        label = model_or_label.lower()
        for tracked in _all():
            if tracked.label.lower() == label:
                return tracked
        raise LookupError(f"{model_or_label!r} is not a model tracked by Koherent")
    for tracked in _all():
        if tracked.model is model_or_label or tracked.history_model is model_or_label:
            return tracked
    raise LookupError(f"{model_or_label.__name__} is not a model tracked by Koherent")


def clear_cache() -> None:
    """Forget the tracked models (after models were added at run time, in tests), and the
    tables the trigger capture hands the context over for."""
    from koherent import _handoff

    _all.cache_clear()
    _per_database.clear()
    _handoff.forget_tables()
