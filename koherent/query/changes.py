"""The field changes of history rows: what each row changed, computed in batches.

:func:`effective_changes` compares each update with the object's previous history row
(:func:`previous_rows`: one query per model for all of them) and its tracked many-to-many
sets (:func:`m2m_snapshots`: one query per tracked many-to-many field); never one query per
row. The revert reads the rows before an assignation's with :func:`previous_rows` too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connections, router

from koherent._registry import TrackedModel, tracked_model
from koherent._sql import typed_values
from koherent.query._rows import _builder, _make_aware, _select_list
from koherent.query._sql import _date_param, _id_param, _quoted, _table
from koherent.query.entries import HistoryEntry

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = ["FieldChange", "effective_changes", "m2m_snapshots", "previous_rows"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one history row: its value before and after the change.

    ``field`` is the field's name (``order`` for a foreign key, its value the raw key). For a
    tracked many-to-many field the values are sorted lists of the related objects' keys. On a
    creation ``old`` is ``None``, on a deletion ``new`` is; on an update whose previous row is
    not in the history (the object predates its tracking) ``old`` is ``None`` too.
    """

    field: str
    old: Any
    new: Any


def effective_changes(
    items: Sequence[HistoryEntry | Model], *, using: str | None = None
) -> list[list[FieldChange]]:
    """The field changes of each entry (or history row), in the order given.

    A creation lists every tracked field (``old`` is ``None``) and its non-empty tracked
    many-to-many fields; a deletion every tracked field (``new`` is ``None``); an update the
    fields whose value differs from the object's previous history row, many-to-many fields
    included. Queries: one per model for the previous rows of its updates, plus one per
    tracked many-to-many field of a model with entries; never one per entry.
    """
    rows: list[Model] = [item.row if isinstance(item, HistoryEntry) else item for item in items]
    by_model: dict[TrackedModel, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_model[tracked_model(type(row))].append(index)
    result: list[list[FieldChange]] = [[] for _ in rows]
    for tracked, indexes in by_model.items():
        model_rows = [rows[i] for i in indexes]
        db = using or model_rows[0]._state.db or str(router.db_for_read(tracked.history_model))
        for i, changes in zip(indexes, _changes_of_model(db, tracked, model_rows), strict=True):
            result[i] = changes
    return result


def previous_rows(
    using: str, tracked: TrackedModel, points: Sequence[tuple[Any, dt.datetime, Any]]
) -> list[Model]:
    """The row just before each ``(object key, history_date, history_id)`` point, in one query.

    Points with no earlier row have none in the result. The points travel in the query as a
    ``VALUES`` list and each lookup is one backward step in the ``(<object key>,
    history_date, history_id)`` index (a ``LATERAL`` join on PostgreSQL, a correlated
    subquery elsewhere).
    """
    if not points:
        return []
    connection = connections[using]
    hm = tracked.history_model
    table = _table(hm, connection)
    key_field: Any = hm._meta.get_field(tracked.history_key)
    key = _quoted(key_field, connection)
    date_field: Any = hm._meta.get_field("history_date")
    date = _quoted(date_field, connection)
    pk = hm._meta.pk
    assert pk is not None
    hid = _quoted(pk, connection)
    params: list[Any] = []
    for object_id, when, history_id in points:
        params.append(key_field.get_db_prep_value(object_id, connection))
        params.append(_date_param(when, connection))
        params.append(_id_param(tracked, history_id, connection))
    columns, naive = _select_list(hm, connection, "p.")
    latest = f"ORDER BY q.{date} DESC, q.{hid} DESC LIMIT 1"
    if connection.vendor == "postgresql":
        values = typed_values([key_field, date_field, pk], len(points), connection)
        sql = (
            f"SELECT {columns} FROM (VALUES {values}) e(k, d, h) CROSS JOIN LATERAL "
            f"(SELECT q.* FROM {table} q WHERE q.{key} = e.k "
            f"AND (q.{date}, q.{hid}) < (e.d, e.h) {latest}) p"
        )
    else:
        if connection.vendor == "mysql":  # no column names for a VALUES list there
            rows = " UNION ALL ".join(
                ["SELECT %s AS column1, %s AS column2, %s AS column3"]
                + ["SELECT %s, %s, %s"] * (len(points) - 1)
            )
        else:
            rows = "VALUES " + ", ".join(["(%s, %s, %s)"] * len(points))
        sql = (
            f"SELECT {columns} FROM {table} p WHERE p.{hid} IN ("
            f"SELECT (SELECT q.{hid} FROM {table} q WHERE q.{key} = e.column1 "
            f"AND (q.{date}, q.{hid}) < (e.column2, e.column3) {latest}) "
            f"FROM ({rows}) e)"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    builder = _builder(hm, using, connection)
    direct = builder.builds_directly()
    return [builder.build(_make_aware(list(raw), naive, connection), direct) for raw in fetched]


def _previous_rows(db: str, tracked: TrackedModel, rows: Sequence[Model]) -> dict[Any, Model]:
    """The row before each of ``rows`` for the same object, by history id, in one query."""
    candidates: dict[Any, list[Model]] = defaultdict(list)
    points = [(tracked.object_id_of(row), row.history_date, row.pk) for row in rows]  # type: ignore[attr-defined]
    for prev in previous_rows(db, tracked, points):
        candidates[tracked.object_id_of(prev)].append(prev)
    result: dict[Any, Model] = {}
    for row in rows:
        key = (row.history_date, row.pk)  # type: ignore[attr-defined]
        earlier = [
            p
            for p in candidates.get(tracked.object_id_of(row), ())
            if (p.history_date, p.pk) < key  # type: ignore[attr-defined]
        ]
        if earlier:
            result[row.pk] = max(earlier, key=lambda p: (p.history_date, p.pk))  # type: ignore[attr-defined]
    return result


def m2m_snapshots(
    db: str, tracked: TrackedModel, history_ids: Iterable[Any]
) -> dict[str, dict[Any, list[Any]]]:
    """Per tracked m2m field name: history id -> sorted keys of the related objects.

    One query per tracked many-to-many field of the model.
    """
    ids = list(history_ids)
    result: dict[str, dict[Any, list[Any]]] = {}
    for m2m in tracked.m2m:
        sets: dict[Any, list[Any]] = {hid: [] for hid in ids}
        if ids:
            rows = m2m.history_model._default_manager.using(db).filter(history_id__in=ids)
            for hid, target in rows.values_list("history_id", m2m.target_attname):
                sets.setdefault(hid, []).append(target)
        result[m2m.field.name] = {hid: sorted(targets) for hid, targets in sets.items()}
    return result


def _changes_of_model(
    db: str, tracked: TrackedModel, rows: Sequence[Model]
) -> list[list[FieldChange]]:
    updates = [row for row in rows if row.history_type == "~"]  # type: ignore[attr-defined]
    previous = _previous_rows(db, tracked, updates)
    snapshot_ids = [row.pk for row in rows if row.history_type != "-"]  # type: ignore[attr-defined]
    snapshot_ids += [prev.pk for prev in previous.values()]
    snapshots = m2m_snapshots(db, tracked, snapshot_ids) if tracked.m2m else {}
    result: list[list[FieldChange]] = []
    for row in rows:
        kind = row.history_type  # type: ignore[attr-defined]
        changes: list[FieldChange] = []
        if kind == "+":
            for f in tracked.fields:
                changes.append(FieldChange(f.name, None, getattr(row, f.attname)))
            for name, sets in snapshots.items():
                if sets.get(row.pk):
                    changes.append(FieldChange(name, None, sets[row.pk]))
        elif kind == "-":
            for f in tracked.fields:
                changes.append(FieldChange(f.name, getattr(row, f.attname), None))
        else:
            prev = previous.get(row.pk)
            for f in tracked.fields:
                new = getattr(row, f.attname)
                old = None if prev is None else getattr(prev, f.attname)
                if prev is None or old != new:
                    changes.append(FieldChange(f.name, old, new))
            for name, sets in snapshots.items():
                new_set = sets.get(row.pk, [])
                old_set = None if prev is None else sets.get(prev.pk, [])
                if old_set != new_set:
                    changes.append(FieldChange(name, old_set, new_set))
        result.append(changes)
    return result
