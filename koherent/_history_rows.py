"""History rows written in bulk, stamped by the audit context (internal).

Two writers bypass simple-history's one-row-per-signal path and write history rows
themselves: the capture of ``queryset.update()`` (:mod:`koherent._update`) and the revert
(:mod:`koherent.revert`). Both write through :func:`write_history` (one row per object, its
current state) and :func:`write_m2m_history` (the many-to-many snapshot of each new row).

On PostgreSQL a batch of rows is one ``INSERT ... SELECT ... FROM (VALUES ...)`` statement
(:func:`execute_values`, which the revert's bulk ``UPDATE`` uses too); elsewhere
``bulk_create``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, models

from koherent._sql import chunks, typed_values
from koherent.capture import captured_by_trigger
from koherent.records import touch

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from koherent._registry import TrackedModel

__all__ = ["execute_values", "write_history", "write_m2m_history"]


def write_history(
    t: TrackedModel,
    instances: Sequence[Any],
    history_type: str,
    using: str,
    date: dt.datetime,
    reason: str | None,
    batch: int,
) -> list[tuple[Any, Any]]:
    """History rows for ``instances`` (their current state), stamped by the context.

    Returns ``(object key, history id)`` pairs. What does not depend on the object (date,
    type, user, reason, the audit columns) is worked out once, from one row built the usual
    way (so the stamping defaults apply); on PostgreSQL it is sent once per statement, with the
    objects' values in a ``VALUES`` list, elsewhere each row goes through ``bulk_create``.
    The assignation's record, with the model on its list, is ensured first.
    """
    if not instances:
        return []
    hm = t.history_model
    touch(hm, using)  # the assignation's record lists the model (see koherent.records)
    if captured_by_trigger(t.model, using):
        return []  # the triggers wrote them with the writes (no m2m fields there: E073)
    user = hm.get_default_history_user(instances[0])  # type: ignore[attr-defined]
    relation = hasattr(hm, "history_relation")

    def row_for(obj: Any) -> models.Model:
        row = hm(
            history_date=date,
            history_type=history_type,
            history_user=user,
            history_change_reason=reason,
            **{f.attname: getattr(obj, f.attname) for f in t.fields},
        )
        if relation:
            row.history_relation_id = obj.pk  # type: ignore[attr-defined]
        return row

    if connections[using].vendor == "postgresql":
        return _insert_history(t, instances, row_for(instances[0]), using, batch)
    created = hm._default_manager.using(using).bulk_create(
        [row_for(obj) for obj in instances], batch_size=batch
    )
    return [(getattr(row, t.pk_attname), row.pk) for row in created]


def _insert_history(
    t: TrackedModel,
    instances: Sequence[Any],
    template: models.Model,
    using: str,
    batch: int,
) -> list[tuple[Any, Any]]:
    """``INSERT INTO history (...) SELECT v.*, <shared values> FROM (VALUES ...) v``."""
    hm = t.history_model
    connection = connections[using]
    qn = connection.ops.quote_name
    tracked = {f.attname for f in t.fields}
    pk: Any = hm._meta.pk
    per_object: list[Any] = []  # from the object (or, for unique fields, a fresh default)
    shared: list[Any] = []
    for f in hm._meta.concrete_fields:
        if f is pk and isinstance(f, models.AutoField):
            continue  # numbered by the database
        if f.attname in tracked or f.attname == "history_relation_id" or f is pk or f.unique:
            per_object.append(f)
        else:
            shared.append(f)
    shared_params = [f.get_db_prep_save(f.pre_save(template, True), connection) for f in shared]

    def value(f: Any, obj: Any) -> Any:
        if f.attname in tracked:
            raw = getattr(obj, f.attname)
        elif f.attname == "history_relation_id":
            raw = obj.pk
        else:
            raw = f.get_default()
        return f.get_db_prep_save(raw, connection)

    names = [f"koherent_v{i}" for i in range(len(per_object))]
    columns = ", ".join(qn(str(f.column)) for f in [*per_object, *shared])
    select = ", ".join([*names, *(f"CAST(%s AS {f.cast_db_type(connection)})" for f in shared)])
    key: Any = hm._meta.get_field(t.history_key)
    returning = f"{qn(str(pk.column))}, {qn(str(key.column))}"
    returned = execute_values(
        connection,
        f"INSERT INTO {qn(hm._meta.db_table)} ({columns}) SELECT {select} FROM",
        f"koherent_v({', '.join(names)}) RETURNING {returning}",
        per_object,
        instances,
        value,
        batch,
        leading=shared_params,
    )
    return [(object_key, history_id) for history_id, object_key in returned]


def execute_values(
    connection: BaseDatabaseWrapper,
    head: str,
    tail: str,
    fields: Sequence[Any],
    objects: Sequence[Any],
    value: Callable[[Any, Any], Any],
    batch: int,
    *,
    leading: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """Run ``{head} (VALUES ...) {tail}`` once per ``batch`` of ``objects``; the rows returned.

    Each object gives one row of the ``VALUES`` list: ``value(field, object)`` for each of
    ``fields``, typed by the first row (see :func:`koherent._sql.typed_values`). ``leading``
    parameters come before the rows' (placeholders of ``head``).
    """
    returned: list[tuple[Any, ...]] = []
    for chunk in chunks(objects, batch):
        params = list(leading)
        for obj in chunk:
            params.extend(value(f, obj) for f in fields)
        rows = typed_values(fields, len(chunk), connection)
        with connection.cursor() as cursor:
            cursor.execute(f"{head} (VALUES {rows}) {tail}", params)
            if cursor.description is not None:
                returned.extend(cursor.fetchall())
    return returned


def write_m2m_history(
    t: TrackedModel,
    written: Sequence[tuple[Any, Any]],
    using: str,
    batch: int,
) -> None:
    """simple-history's many-to-many snapshot of each new history row (its through rows)."""
    if not t.m2m or not written:
        return
    by_object = dict(written)
    for m2m in t.m2m:
        through = m2m.through._base_manager.using(using)
        names = [f.attname for f in m2m.through._meta.concrete_fields]
        snapshot = []
        for chunk in chunks(list(by_object), batch):
            for link in through.filter(**{f"{m2m.source_attname}__in": chunk}):
                values = {name: getattr(link, name) for name in names}
                history_id = by_object[getattr(link, m2m.source_attname)]
                snapshot.append(m2m.history_model(history_id=history_id, **values))
        m2m.history_model._default_manager.using(using).bulk_create(snapshot, batch_size=batch)
