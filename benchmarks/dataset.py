"""The query data set: the same history, written with ``COPY``, in each contender's own tables.

``rows`` history rows spread evenly over ``models`` tracked models; ``rows /
changes_per_assignation`` assignations (operations), each of which changed
``changes_per_assignation / models`` objects of every model. Every object is created by one
operation and then updated by :data:`VERSIONS` - 1 later ones, so with the full size each of
the 10 models has 10,000 objects and 100,000 history rows. Rows are written in time order (an
operation's rows are adjacent, as they would be in a live table), with increasing history ids.

The same operations become, per contender:

* Koherent: rows of the ``Historical<Model>`` tables, stamped with the assignation id;
* django-pghistory: rows of the ``<Model>Event`` tables, each pointing at the operation's
  ``pghistory_context`` row;
* django-auditlog: ``LogEntry`` rows with the operation's correlation id (``cid``);
* django-reversion: one ``Revision`` per operation and one ``Version`` per change.

The set is built once per size and kept (``bench_dataset`` records what was built); a changed
specification or an interrupted build rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import connection

#: Versions of every object: one creation, then updates.
VERSIONS = 10
#: Bumped when the way the data is generated changes (forces a rebuild).
BUILDER_VERSION = 1
CONTENDERS = ("koherent", "pghistory", "auditlog", "reversion")
_NAMESPACE = uuid.UUID("6f1d3c52-8a1e-4f4e-9a51-2f7b0c9c1e11")
_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Spec:
    rows: int
    models: int
    changes_per_assignation: int

    @property
    def slots(self) -> int:
        """Objects of each model changed by one operation."""
        return self.changes_per_assignation // self.models

    @property
    def assignations(self) -> int:
        return self.rows // self.changes_per_assignation

    @property
    def objects_per_model(self) -> int:
        return self.slots * self.assignations // VERSIONS

    def validate(self) -> None:
        if self.changes_per_assignation % self.models:
            raise ValueError("changes_per_assignation must be a multiple of models")
        if self.rows % self.changes_per_assignation or self.assignations % VERSIONS:
            raise ValueError(f"rows / changes_per_assignation must be a multiple of {VERSIONS}")

    def key(self) -> str:
        return json.dumps(
            {"builder": BUILDER_VERSION, **self.__dict__, "versions": VERSIONS}, sort_keys=True
        )


@dataclass(frozen=True)
class Change:
    """One history row: operation ``a`` changed object ``obj`` of model ``m`` (version ``v``)."""

    a: int
    m: int
    obj: int
    v: int
    seq: int  # 1-based position in the model's history table (time order)

    @property
    def created(self) -> bool:
        return self.v == 0

    @property
    def name(self) -> str:
        return f"object {self.obj}"

    @property
    def value(self) -> int:
        return self.v * 1000 + self.obj % 1000

    def date(self, slot: int) -> dt.datetime:
        return _EPOCH + dt.timedelta(seconds=self.a, milliseconds=self.m, microseconds=slot)


def changes(spec: Spec, m: int) -> Iterator[tuple[Change, int]]:
    """The changes of model ``m``, in time order, with each one's slot."""
    per_epoch = spec.assignations // VERSIONS
    seq = 0
    for a in range(spec.assignations):
        v, within = divmod(a, per_epoch)
        for slot in range(spec.slots):
            seq += 1
            obj = slot * per_epoch + within + 1
            yield Change(a=a, m=m, obj=obj, v=v, seq=seq), slot


def assignation_id(a: int) -> str:
    """Koherent's assignation id and auditlog's correlation id of operation ``a``."""
    return str(uuid.uuid5(_NAMESPACE, f"assignation {a}"))


def context_id(a: int) -> uuid.UUID:
    """pghistory's context id of operation ``a``."""
    return uuid.uuid5(_NAMESPACE, f"context {a}")


def revision_id(a: int) -> int:
    return a + 1


# -- writing -----------------------------------------------------------------------------------


def _copy(model: Any, values: Callable[[], Iterator[dict[str, Any]]]) -> int:
    """COPY the rows ``values()`` yields (dicts keyed by attname) into ``model``'s table."""
    fields = model._meta.concrete_fields
    columns = [f.column for f in fields]
    attnames = [f.attname for f in fields]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    written = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy,
    ):
        for row in values():
            missing = set(attnames) - set(row)
            if missing:
                raise RuntimeError(
                    f"the data set gives no value for {model._meta.label}."
                    f"{', '.join(sorted(missing))}; update benchmarks/dataset.py"
                )
            copy.write_row([row[name] for name in attnames])
            written += 1
    return written


def _reset_sequence(model: Any) -> None:
    from django.core.management.color import no_style

    statements = connection.ops.sequence_reset_sql(no_style(), [model])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def _current_objects(spec: Spec, m: int) -> Iterator[dict[str, Any]]:
    for obj in range(1, spec.objects_per_model + 1):
        last = Change(a=0, m=m, obj=obj, v=VERSIONS - 1, seq=0)
        yield {"id": obj, "name": last.name, "value": last.value}


def _build_koherent(spec: Spec, user_id: int) -> None:
    for m in range(spec.models):
        model = apps.get_model("bench_koherent", f"Tracked{m}")
        history = model.history.model

        def rows(m: int = m) -> Iterator[dict[str, Any]]:
            for c, slot in changes(spec, m):
                yield {
                    "id": c.obj,
                    "name": c.name,
                    "value": c.value,
                    "history_id": c.seq,
                    "history_date": c.date(slot),
                    "history_change_reason": None,
                    "history_type": "+" if c.created else "~",
                    "history_user_id": user_id,
                    "assignation_id": assignation_id(c.a),
                    "app": "bench",
                    "task_id": None,
                    "user_pk": str(user_id),
                    "history_changed_fields": None,
                }

        _copy(model, lambda m=m: _current_objects(spec, m))
        _copy(history, rows)
        _reset_sequence(model)
        _reset_sequence(history)


def _build_pghistory(spec: Spec, user_id: int) -> None:
    context = apps.get_model("pghistory", "Context")
    metadata = json.dumps({"user": user_id, "app": "bench"})

    def contexts() -> Iterator[dict[str, Any]]:
        for a in range(spec.assignations):
            when = _EPOCH + dt.timedelta(seconds=a)
            yield {
                "id": context_id(a),
                "created_at": when,
                "updated_at": when,
                "metadata": metadata,
            }

    _copy(context, contexts)
    for m in range(spec.models):
        model = apps.get_model("bench_pghistory", f"Tracked{m}")
        event = apps.get_model("bench_pghistory", f"Tracked{m}Event")

        def rows(m: int = m) -> Iterator[dict[str, Any]]:
            for c, slot in changes(spec, m):
                yield {
                    "pgh_id": c.seq,
                    "pgh_created_at": c.date(slot),
                    "pgh_label": "insert" if c.created else "update",
                    "pgh_obj_id": c.obj,
                    "pgh_context_id": context_id(c.a),
                    "id": c.obj,
                    "name": c.name,
                    "value": c.value,
                }

        _copy_without_triggers(model, lambda m=m: _current_objects(spec, m))
        _copy(event, rows)
        _reset_sequence(model)
        _reset_sequence(event)


def _copy_without_triggers(model: Any, values: Callable[[], Iterator[dict[str, Any]]]) -> None:
    """COPY into a pghistory-tracked table without its triggers writing events."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    try:
        _copy(model, values)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def _build_auditlog(spec: Spec, user_id: int) -> None:
    from django.contrib.contenttypes.models import ContentType

    entry = apps.get_model("auditlog", "LogEntry")
    models = [apps.get_model("bench_auditlog", f"Tracked{m}") for m in range(spec.models)]
    types = [ContentType.objects.get_for_model(model).pk for model in models]

    def rows() -> Iterator[dict[str, Any]]:
        seq = 0
        streams = [changes(spec, m) for m in range(spec.models)]
        # Entries of all models interleaved in time order (one table for everything).
        for _ in range(spec.assignations):
            for m, stream in enumerate(streams):
                for _slot in range(spec.slots):
                    c, slot = next(stream)
                    seq += 1
                    diff: dict[str, list[str]] = {"value": [str(c.value - 1000), str(c.value)]}
                    if c.created:
                        diff = {
                            "id": ["None", str(c.obj)],
                            "name": ["None", c.name],
                            "value": ["None", str(c.value)],
                        }
                    yield {
                        "id": seq,
                        "content_type_id": types[m],
                        "object_pk": str(c.obj),
                        "object_id": c.obj,
                        "object_repr": c.name,
                        "serialized_data": None,
                        "action": 0 if c.created else 1,
                        "changes_text": "",
                        "changes": json.dumps(diff),
                        "actor_id": user_id,
                        "cid": assignation_id(c.a),
                        "remote_addr": None,
                        "remote_port": None,
                        "timestamp": c.date(slot),
                        "additional_data": None,
                        "actor_email": "",
                    }

    for m, model in enumerate(models):
        _copy(model, lambda m=m: _current_objects(spec, m))
        _reset_sequence(model)
    _copy(entry, rows)
    _reset_sequence(entry)


def _build_reversion(spec: Spec, user_id: int) -> None:
    from django.contrib.contenttypes.models import ContentType

    revision = apps.get_model("reversion", "Revision")
    version = apps.get_model("reversion", "Version")
    models = [apps.get_model("bench_reversion", f"Tracked{m}") for m in range(spec.models)]
    types = [ContentType.objects.get_for_model(model).pk for model in models]
    labels = [model._meta.label_lower for model in models]

    def revisions() -> Iterator[dict[str, Any]]:
        for a in range(spec.assignations):
            yield {
                "id": revision_id(a),
                "date_created": _EPOCH + dt.timedelta(seconds=a),
                "user_id": user_id,
                "comment": "",
            }

    def rows() -> Iterator[dict[str, Any]]:
        seq = 0
        streams = [changes(spec, m) for m in range(spec.models)]
        for _ in range(spec.assignations):
            for m, stream in enumerate(streams):
                for _slot in range(spec.slots):
                    c, _ = next(stream)
                    seq += 1
                    data = [
                        {
                            "model": labels[m],
                            "pk": c.obj,
                            "fields": {"name": c.name, "value": c.value},
                        }
                    ]
                    yield {
                        "id": seq,
                        "revision_id": revision_id(c.a),
                        "object_id": str(c.obj),
                        "content_type_id": types[m],
                        "db": "default",
                        "format": "json",
                        "serialized_data": json.dumps(data),
                        "object_repr": c.name,
                    }

    for m, model in enumerate(models):
        _copy(model, lambda m=m: _current_objects(spec, m))
        _reset_sequence(model)
    _copy(revision, revisions)
    _copy(version, rows)
    _reset_sequence(revision)
    _reset_sequence(version)


BUILDERS: dict[str, Callable[[Spec, int], None]] = {
    "koherent": _build_koherent,
    "pghistory": _build_pghistory,
    "auditlog": _build_auditlog,
    "reversion": _build_reversion,
}


def ensure(spec: Spec, log: Callable[[str], None]) -> bool:
    """Build the data set unless the database already holds this one. True when built."""
    from benchmarks.contexts import bench_user
    from benchmarks.harness import reset_database

    spec.validate()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (name text PRIMARY KEY, spec text)"
        )
        cursor.execute("SELECT spec FROM bench_dataset WHERE name = 'query'")
        row = cursor.fetchone()
    if row is not None and row[0] == spec.key():
        log("reusing the kept data set")
        return False
    log(f"building the data set: {spec.rows:,} history rows per contender")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM bench_dataset WHERE name = 'query'")
    reset_database()
    user_id = bench_user().pk
    for name, build in BUILDERS.items():
        build(spec, user_id)
        log(f"  {name}: written")
    from benchmarks.harness import benchmark_tables

    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        for table in benchmark_tables():
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
        cursor.execute("INSERT INTO bench_dataset VALUES ('query', %s)", [spec.key()])
    log("data set built and analysed")
    return True
