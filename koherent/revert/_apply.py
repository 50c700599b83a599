"""The writes of a revert, in an order foreign keys allow (internal).

Re-creations first (referenced models before the models referring to them), then restores,
then deletions (referring models first), so no statement ever points at a row that is not
there. Each batch is one statement; the revert writes its history rows itself, stamped by
the context like any other (:mod:`koherent._history_rows`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.utils import timezone

from koherent import _django, _history_rows
from koherent._handoff import table_reason
from koherent._registry import TrackedModel, tracked_model
from koherent._sql import chunks
from koherent.capture import captured_by_trigger, history_written_by_caller
from koherent.revert._values import ConflictKind, ProgressCallback, RevertAction
from koherent.revert._work import ObjectWork, Work, concrete

if TYPE_CHECKING:
    from django.db.models.deletion import Collector

__all__ = ["apply"]


def apply(work: Work, *, force: bool, progress: ProgressCallback | None) -> tuple[int, int, int]:
    """Make the writes of ``work``; ``(deleted, restored, recreated)``."""
    total = sum(len(w.of(a)) for w in work.models for a in RevertAction)
    done = 0

    def advance(stage: str, count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(stage, done, total)

    writer = _Writer(work.using, work.batch_size, timezone.now(), work.assignation_id)
    written = dict.fromkeys(RevertAction, 0)
    # 1. Re-create, referenced models first; 2. restore, same order.
    for action, write in (
        (RevertAction.RECREATE, writer.recreate),
        (RevertAction.RESTORE, writer.restore),
    ):
        for w in work.models:
            for chunk in chunks(w.of(action), work.batch_size):
                written[action] += write(w.tracked, chunk)
                advance(action.value, len(chunk))
    # 3. Delete, referring models first.
    if work.deletion is not None:
        written[RevertAction.DELETE] = writer.delete(work, work.deletion, force=force)
        advance("delete", written[RevertAction.DELETE])
    return (
        written[RevertAction.DELETE],
        written[RevertAction.RESTORE],
        written[RevertAction.RECREATE],
    )


@dataclass
class _Writer:
    using: str
    batch: int
    now: dt.datetime
    reverted: str

    @property
    def reason(self) -> str:
        return f"revert of {self.reverted}"[:100]

    def reasoned(self, model: type[models.Model]) -> contextlib.AbstractContextManager[None]:
        """The revert's change reason on the rows the triggers write for ``model``'s table
        (a model captured by signals gets its rows from :meth:`history`)."""
        if captured_by_trigger(model, self.using):
            return table_reason(model, self.reason)
        return contextlib.nullcontext()

    def history(self, t: TrackedModel, instances: Sequence[Any], history_type: str) -> None:
        """The history rows of ``instances``, with their many-to-many snapshots."""
        rows = _history_rows.write_history(
            t, instances, history_type, self.using, self.now, self.reason, self.batch
        )
        _history_rows.write_m2m_history(t, rows, self.using, self.batch)

    def recreate(self, t: TrackedModel, objects: Sequence[ObjectWork]) -> int:
        instances = [_target_instance(t, o.target) for o in objects if o.target is not None]
        if t.model._meta.parents:
            # Multi-table children cannot be bulk-created; save() inserts the parent
            # rows too, and simple-history writes the history rows.
            for instance in instances:
                instance.save(force_insert=True, using=self.using)
            self.set_m2m(t, objects)
        else:
            with self.reasoned(t.model):
                t.model._base_manager.using(self.using).bulk_create(
                    instances, batch_size=self.batch
                )
            self.set_m2m(t, objects)
            self.history(t, instances, "+")
        return len(instances)

    def restore(self, t: TrackedModel, objects: Sequence[ObjectWork]) -> int:
        instances = []
        fields: set[str] = set()
        m2m_names = {m.field.name for m in t.m2m}
        for o in objects:
            assert o.current is not None
            assert o.target is not None
            for f in t.fields:
                if f.name in o.changed_fields:
                    setattr(o.current, f.attname, getattr(o.target, f.attname))
                    fields.add(f.name)
            instances.append(o.current)
        if fields:
            with self.reasoned(t.model):
                _bulk_update(t.model, instances, sorted(fields), self.using, self.batch)
        if any(name in m2m_names for o in objects for name in o.changed_fields):
            self.set_m2m(t, objects)
        self.history(t, instances, "~")
        return len(instances)

    def delete(self, work: Work, collector: Collector, *, force: bool) -> int:
        doomed = {
            (concrete(w.tracked.model), o.current.pk): o.current
            for w in work.models
            for o in w.of(RevertAction.DELETE)
            if o.current is not None
        }
        if any(c.kind is ConflictKind.DEPENDENT for c in work.conflicts):
            # Forced past objects outside the revert: Django's own deletion, cascades and
            # signals included (simple-history writes those rows, stamped with the revert).
            assert force
            _django.run_deletion(collector)
            return len(doomed)
        for qs in work.expected_fast_deletes:
            with self.reasoned(qs.model):
                _django.raw_delete(qs, self.using)
        for model, objs in _django.deletion_order(collector):
            with self.reasoned(model):
                self.raw_delete(model._base_manager, [obj.pk for obj in objs])
        by_model: dict[type[models.Model], list[models.Model]] = defaultdict(list)
        for obj in doomed.values():
            by_model[type(obj)].append(obj)
        for model, objs in by_model.items():
            _history_rows.write_history(
                tracked_model(model), objs, "-", self.using, self.now, self.reason, self.batch
            )
        return len(doomed)

    def raw_delete(self, manager: models.Manager[Any], pks: Sequence[Any]) -> None:
        """Delete the rows of ``pks`` a batch a statement, without signals: the revert
        writes the history itself."""
        for chunk in chunks(pks, self.batch):
            _django.raw_delete(manager.using(self.using).filter(pk__in=chunk), self.using)

    def set_m2m(self, t: TrackedModel, objects: Sequence[ObjectWork]) -> None:
        """Bring the through rows of ``objects`` to their target sets."""
        for m2m in t.m2m:
            name = m2m.field.name
            stale: list[Any] = []
            missing: list[models.Model] = []
            for obj in objects:
                target_rows = {
                    getattr(r, m2m.target_attname): r for r in obj.m2m_target.get(name, ())
                }
                current_rows = {
                    getattr(r, m2m.target_attname): r for r in obj.m2m_current.get(name, ())
                }
                stale.extend(r.pk for key, r in current_rows.items() if key not in target_rows)
                for key, row in target_rows.items():
                    if key not in current_rows:
                        values = {a: getattr(row, a) for a in m2m.value_attnames}
                        values[m2m.source_attname] = obj.pk
                        missing.append(m2m.through(**values))
            self.raw_delete(m2m.through._base_manager, stale)
            if missing:
                m2m.through._base_manager.using(self.using).bulk_create(
                    missing, batch_size=self.batch
                )


def _target_instance(t: TrackedModel, row: models.Model) -> models.Model:
    """A model instance holding the tracked fields of a history row."""
    values = {f.attname: getattr(row, f.attname) for f in t.fields}
    return t.model(**values)


def _bulk_update(
    model: type[models.Model],
    objs: Sequence[models.Model],
    names: Sequence[str],
    using: str,
    batch: int,
) -> None:
    """Write ``names`` of ``objs``: one ``UPDATE ... FROM (VALUES ...)`` per batch on
    PostgreSQL (Django's ``bulk_update`` builds a ``CASE`` per field, quadratic in the batch),
    Django's ``bulk_update`` elsewhere."""
    connection = connections[using]
    concrete_fields = {f.name: f for f in model._meta.concrete_fields}
    fields = [concrete_fields[name] for name in names]
    if connection.vendor != "postgresql" or model._meta.parents or not objs:
        with history_written_by_caller():  # the revert writes these rows itself
            model._base_manager.using(using).bulk_update(objs, list(names), batch_size=batch)
        return
    qn = connection.ops.quote_name
    pk = model._meta.pk
    assert pk is not None
    columns = [pk, *fields]
    table = qn(model._meta.db_table)
    assignments = ", ".join(f"{qn(str(f.column))} = v.{qn(str(f.column))}" for f in fields)
    names_sql = ", ".join(qn(str(f.column)) for f in columns)
    _history_rows.execute_values(
        connection,
        f"UPDATE {table} SET {assignments} FROM",
        f"AS v({names_sql}) WHERE {table}.{qn(str(pk.column))} = v.{qn(str(pk.column))}",
        columns,
        objs,
        lambda f, obj: f.get_db_prep_save(getattr(obj, str(f.attname)), connection),
        batch,
    )
