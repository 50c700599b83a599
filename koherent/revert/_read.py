"""Reading what an assignation did, object by object (internal).

Per tracked model: each object's first history row under the assignation, its current row
(locked for a revert that writes), the state to go back to, and its many-to-many rows, then and
now. Every read is one statement per model and batch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from koherent._sql import chunks
from koherent.query import previous_rows
from koherent.revert._values import REVERT_ORIGIN
from koherent.revert._work import ModelWork, ObjectWork
from koherent.routing import record_database

if TYPE_CHECKING:
    from django.db import models

__all__ = ["lock_and_read_current", "read_m2m", "read_rows", "read_targets", "revert_chain"]


def revert_chain(using: str, assignation_id: str) -> tuple[tuple[str, ...], set[str]]:
    """The live reverts of ``assignation_id`` and every assignation in its revert chain.

    A revert is live when no live revert of it exists. One query per level of the chain.
    """
    from koherent.models import Assignation

    children: dict[str, list[str]] = defaultdict(list)
    frontier = [assignation_id]
    seen = {assignation_id}
    while frontier:
        found = list(
            Assignation.objects.using(record_database(using))
            .filter(origin=REVERT_ORIGIN, parent_id__in=frontier)
            .values_list("id", "parent_id")
        )
        frontier = []
        for child, parent in found:
            if child not in seen:
                seen.add(child)
                children[parent].append(child)
                frontier.append(child)

    def live(node: str) -> bool:
        return not any(live(child) for child in children.get(node, ()))

    reverted_by = tuple(sorted(c for c in children.get(assignation_id, ()) if live(c)))
    return reverted_by, seen - {assignation_id}


def read_rows(work: ModelWork, using: str, assignation_id: str) -> None:
    """Each object's first row under the assignation (a window function: one row per object)."""
    t = work.tracked
    first = Window(
        RowNumber(),
        partition_by=[F(t.history_key)],
        order_by=[F("history_date").asc(), F("pk").asc()],
    )
    rows = (
        t.history_model._default_manager.using(using)
        .filter(assignation_id=assignation_id)
        .annotate(koherent_n=first)
        .filter(koherent_n=1)
        .values_list(t.pk_attname, "pk", "history_date", "history_type")
    )
    for pk, history_id, date, history_type in rows:
        work.objects[pk] = ObjectWork(
            pk=pk, first_id=history_id, first_date=date, first_type=history_type
        )


def lock_and_read_current(work: ModelWork, using: str, batch: int, lock: bool) -> None:
    """Each object's current row (none: it does not exist), ``SELECT ... FOR UPDATE`` with
    ``lock``."""
    t = work.tracked
    manager = t.model._base_manager.using(using)
    pks = list(work.objects)
    for chunk in chunks(pks, batch):
        qs = manager.filter(pk__in=chunk)
        if lock:
            qs = qs.select_for_update()
        for obj in qs:
            work.objects[obj.pk].current = obj


def read_targets(work: ModelWork, using: str, batch: int) -> None:
    """Each object's target state: a deletion row, or the row before its first change.

    simple-history writes a deletion row after the through rows are gone, so the many-to-many
    state of a deleted object is read from the row before its deletion row.
    """
    t = work.tracked
    manager = t.history_model._default_manager.using(using)
    pk = t.pk_attname
    deleted = [o.first_id for o in work.objects.values() if o.first_type == "-"]
    points = [
        (o.pk, o.first_date, o.first_id)
        for o in work.objects.values()
        if o.first_type == "~" or (o.first_type == "-" and t.m2m)
    ]
    deletion_rows: dict[Any, models.Model] = {}
    for chunk in chunks(deleted, batch):
        for row in manager.filter(pk__in=chunk):
            deletion_rows[getattr(row, pk)] = row
    before: dict[Any, models.Model] = {}
    limited = connections[using].features.max_query_params is not None
    for part in chunks(points, max(1, batch // 3) if limited else batch):  # 3 params a point
        for row in previous_rows(using, t, part):
            before[getattr(row, pk)] = row
    for obj in work.objects.values():
        prev = before.get(obj.pk)
        if obj.first_type == "+":
            obj.target = None
        elif obj.first_type == "-":
            obj.target = deletion_rows.get(obj.pk)
            if prev is not None and prev.history_type != "-":  # type: ignore[attr-defined]
                obj.m2m_from = prev
        elif prev is None:
            obj.unknown = True
        elif prev.history_type == "-":  # type: ignore[attr-defined]
            obj.target = None
        else:
            obj.target = prev
            obj.m2m_from = prev


def read_m2m(work: ModelWork, using: str, batch: int) -> None:
    """Target and current through rows of the tracked many-to-many fields."""
    t = work.tracked
    if not t.m2m:
        return
    by_history: dict[Any, ObjectWork] = {
        o.m2m_from.pk: o for o in work.objects.values() if o.m2m_from is not None
    }
    for m2m in t.m2m:
        name = m2m.field.name
        history_ids = list(by_history)
        for chunk in chunks(history_ids, batch):
            rows = m2m.history_model._default_manager.using(using).filter(history_id__in=chunk)
            for row in rows:
                by_history[row.history_id].m2m_target.setdefault(name, []).append(row)  # type: ignore[attr-defined]
        present = [o.pk for o in work.objects.values() if o.current is not None]
        through = m2m.through._base_manager.using(using)
        for chunk in chunks(present, batch):
            for row in through.filter(**{f"{m2m.source_attname}__in": chunk}):
                work.objects[getattr(row, m2m.source_attname)].m2m_current.setdefault(
                    name, []
                ).append(row)
