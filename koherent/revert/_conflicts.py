"""The conflicts of a revert: what it would lose or break (internal).

- a row of another assignation after the assignation's first change to an object
  (:func:`read_conflicts`);
- a change no history row recorded, between an object's rows or since its last one
  (:func:`read_unrecorded`);
- an object outside the revert that a deletion would take with it, set to null, or that
  protects it (:func:`collect_deletions`, with Django's deletion collector).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models.deletion import ProtectedError, RestrictedError

from koherent import _django
from koherent._registry import tracked_model
from koherent._sql import chunks
from koherent.revert._values import Conflict, ConflictKind, RevertAction
from koherent.revert._work import ModelWork, Work, concrete

if TYPE_CHECKING:
    from django.db import models

__all__ = ["collect_deletions", "read_conflicts", "read_unrecorded"]


def _rows_since_first_change(
    work: ModelWork, using: str, batch: int
) -> Iterator[models.QuerySet[Any]]:
    """The history rows of the objects from the assignation's first change on: a queryset a
    batch of objects."""
    t = work.tracked
    manager = t.history_model._default_manager.using(using)
    since = min(o.first_date for o in work.objects.values())
    for chunk in chunks(list(work.objects), batch):
        yield manager.filter(**{f"{t.pk_attname}__in": chunk}, history_date__gte=since)


def read_conflicts(
    work: ModelWork, using: str, assignation_id: str, batch: int, exclude: set[str]
) -> list[Conflict]:
    """Rows of the objects after the assignation's first change, by other assignations."""
    t = work.tracked
    if not work.objects:
        return []
    earliest: dict[tuple[Any, str | None], dt.datetime] = {}
    for history in _rows_since_first_change(work, using, batch):
        rows = history.exclude(assignation_id=assignation_id).values_list(
            t.pk_attname, "assignation_id", "history_date", "pk"
        )
        for obj_pk, other, date, history_id in rows:
            obj = work.objects[obj_pk]
            if (date, history_id) <= (obj.first_date, obj.first_id):
                continue
            if other is not None and other in exclude:
                continue
            key = (obj_pk, other)
            if key not in earliest or date < earliest[key]:
                earliest[key] = date
    return [
        Conflict(ConflictKind.CHANGED_LATER, t.label, obj_pk, other, date)
        for (obj_pk, other), date in sorted(
            earliest.items(), key=lambda item: (str(item[0][0]), item[1])
        )
    ]


def _changed_fields(value: str | None) -> frozenset[str] | None:
    """The fields a history row's ``history_changed_fields`` says its write changed (None:
    the writer did not say)."""
    if value is None:
        return None
    return frozenset(name for name in value.split(",") if name)


def read_unrecorded(
    work: ModelWork, using: str, assignation_id: str, batch: int
) -> list[Conflict]:
    """Changes to the objects that no history row recorded.

    Each update row (``~``) written by a capture that knows which fields its write changed
    (``history_changed_fields``: signal saves of loaded instances, captured ``update()`` and
    ``bulk_update()``, the update trigger of trigger capture) is compared with the object's
    previous row: a field that differs between the two but that the write did not change was
    changed in between by something no row recorded (raw SQL, another process). From the row
    before the assignation's first change onward, every such gap is found, and the object's
    live state is compared with its last row (a change since then). Rows that do not say
    (the bulk helpers, rows older than the column) are taken as complete. Under trigger
    capture every write has its row, so nothing is found unless a write skipped its row
    (``save_without_historical_record``).
    """
    t = work.tracked
    if not work.objects:
        return []
    pk = t.pk_attname
    compared = [f for f in t.fields if not f.primary_key]
    has_changed = any(
        f.attname == "history_changed_fields" for f in t.history_model._meta.concrete_fields
    )
    # Plain tuples, not model instances (an operation's objects have thousands of rows):
    # (history date, history id, assignation, type, changed fields, *compared values).
    columns = [
        "history_date",
        "pk",
        "assignation_id",
        "history_type",
        *(["history_changed_fields"] if has_changed else []),
        *(f.attname for f in compared),
    ]
    chains: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    for history in _rows_since_first_change(work, using, batch):
        rows = history.order_by(pk, "history_date", "pk").values_list(pk, *columns)
        for obj_pk, *row in rows:
            if not has_changed:
                row.insert(4, None)  # the writer did not say what it changed
            chains[obj_pk].append(tuple(row))
    conflicts = []
    for obj in work.objects.values():
        start = (obj.first_date, obj.first_id)
        chain = [r for r in chains.get(obj.pk, ()) if (r[0], r[1]) >= start]
        prev: tuple[Any, ...] | None = None
        if obj.first_type == "~" and obj.target is not None:
            target = obj.target
            prev = (
                None,
                None,
                None,
                target.history_type,  # type: ignore[attr-defined]
                None,
                *(getattr(target, f.attname) for f in compared),
            )
        found: dict[str, dt.datetime | None] = {}
        own: set[str] | None = set()
        for row in chain:
            mine = row[2] == assignation_id
            recorded = _changed_fields(row[4]) if row[3] == "~" else None
            if recorded is not None and prev is not None and prev[3] != "-":
                for i, f in enumerate(compared, start=5):
                    if f.name not in recorded and prev[i] != row[i]:
                        found.setdefault(f.name, row[0])
            if mine and own is not None:
                own = None if recorded is None else own | recorded
            prev = row
        if obj.current is not None and prev is not None and prev[3] != "-":
            for i, f in enumerate(compared, start=5):
                if getattr(obj.current, f.attname) != prev[i]:
                    found.setdefault(f.name, None)
        if not found:
            continue
        obj.unrecorded = frozenset(found)
        obj.own_fields = None if own is None else frozenset(own)
        dates = [d for d in found.values() if d is not None]
        conflicts.append(
            Conflict(
                ConflictKind.UNRECORDED_CHANGE,
                t.label,
                obj.pk,
                None,
                min(dates) if dates else None,
                fields=tuple(f.name for f in compared if f.name in found),
            )
        )
    return conflicts


def collect_deletions(work: Work) -> list[Conflict]:
    """Run Django's deletion collector over the objects to delete; report what else it takes."""
    doomed: dict[type[models.Model], list[models.Model]] = {}
    wanted: set[tuple[type[models.Model], Any]] = set()
    for w in work.models:
        objs = [o.current for o in w.of(RevertAction.DELETE) if o.current is not None]
        if objs:
            doomed[w.tracked.model] = objs
            for obj in objs:
                wanted.add((concrete(w.tracked.model), obj.pk))
    if not doomed:
        return []
    conflicts: list[Conflict] = []
    try:
        collector = _django.deletion_collector(work.using, doomed.values())
    except (ProtectedError, RestrictedError) as exc:
        blocking = (
            exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        )
        for obj in list(blocking)[:100]:
            conflicts.append(Conflict(ConflictKind.PROTECTED, obj._meta.label, obj.pk))
        return conflicts
    work.deletion = collector
    dependents: list[models.Model] = []
    doomed_models = {concrete(m) for m in doomed}
    for model, instances in _django.collected_objects(collector):
        work.reached.add((model, "delete"))
        for obj in instances:
            key = (concrete(model), obj.pk)
            if key in wanted:
                continue
            if any(
                (parent, obj.pk) in wanted for parent in _children_sharing_pk(model, doomed_models)
            ):
                continue  # the parent row of a multi-table child being deleted
            dependents.append(obj)
    for model, updated in _django.collected_updates(collector):
        found_updates = updated[:100]
        if found_updates:
            work.reached.add((model, "change"))
        dependents.extend(found_updates)
    for qs in _django.collected_fast_deletes(collector):
        if _is_own_through_rows(qs.model, doomed_models):
            work.expected_fast_deletes.append(qs)
            continue
        found = list(qs[:100])
        if found:
            work.reached.add((qs.model, "delete"))
            dependents.extend(found)
        else:
            work.expected_fast_deletes.append(qs)
    conflicts.extend(_dependent_conflicts(work.using, dependents))
    return conflicts


def _children_sharing_pk(
    model: type[models.Model], doomed: set[type[models.Model]]
) -> list[type[models.Model]]:
    """The doomed models that are multi-table children of ``model``."""
    return [m for m in doomed if model in m._meta.get_parent_list()]


def _is_own_through_rows(through: type[models.Model], doomed: set[type[models.Model]]) -> bool:
    """Through rows of a many-to-many field declared on a model being deleted."""
    if not through._meta.auto_created:
        return False
    owner: Any = through._meta.auto_created
    return isinstance(owner, type) and concrete(owner) in doomed


def _dependent_conflicts(using: str, objects: Sequence[models.Model]) -> list[Conflict]:
    by_model: dict[type[models.Model], list[Any]] = defaultdict(list)
    for obj in objects:
        by_model[type(obj)].append(obj.pk)
    conflicts = []
    for model, pks in by_model.items():
        last: dict[Any, tuple[str | None, dt.datetime]] = {}
        try:
            t = tracked_model(model)
        except LookupError:
            t = None
        if t is not None:
            rows = (
                t.history_model._default_manager.using(using)
                .filter(**{f"{t.pk_attname}__in": pks[:1000]})
                .order_by("history_date", "pk")
                .values_list(t.pk_attname, "assignation_id", "history_date")
            )
            for pk, assignation_id, date in rows:
                last[pk] = (assignation_id, date)
        for pk in sorted(set(pks), key=str):
            assignation_id, date = last.get(pk, (None, None))
            conflicts.append(
                Conflict(ConflictKind.DEPENDENT, model._meta.label, pk, assignation_id, date)
            )
    return conflicts
