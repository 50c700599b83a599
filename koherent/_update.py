"""Signal capture beyond ``save()``: ``queryset.update()`` and ``bulk_update()``.

(Internal; the public names are in :mod:`koherent.capture`.)

simple-history writes a history row from the ``post_save`` and ``post_delete`` signals, so
``queryset.update()`` (and Django's ``bulk_update()``, which runs one ``update()`` per batch)
changed rows without any history. For a model tracked with
:class:`~koherent.fields.HistoryField`, Koherent captures them: an ``update()`` writes one
history row per object it matched, stamped like any other row (user, app, assignation, task;
the assignation's record is written as for a save), in the same transaction as the update.

**How it attaches.** ``QuerySet.update`` and ``QuerySet.bulk_update`` are wrapped once, when
the first ``HistoryField`` model is prepared. The wrapper asks one dictionary whether the
queryset's (concrete) model is tracked and otherwise calls Django's method straight away. That
covers every way a queryset reaches the database: the default manager, custom managers and
querysets (``Manager.from_queryset``, ``QuerySet.as_manager()``, a ``get_queryset()`` that
builds its own queryset class, an ``update()`` override calling ``super()``), related managers
(``order.items.update(...)``), ``_base_manager`` and ``aupdate()``, with nothing to change in
the project's managers. Deriving a queryset class per model (the other way considered) misses
related managers, ``_base_manager`` and managers that build their queryset themselves, and
changes the class the project's code sees.

**How the rows are found.** Where the database has ``UPDATE ... RETURNING`` (PostgreSQL,
SQLite 3.35 or newer) the update returns the tracked columns of every row it changed: one
statement, then one ``INSERT`` of history rows per 1,000 objects. Elsewhere (MySQL and MariaDB,
which has ``RETURNING`` only for ``INSERT`` and ``DELETE``; multi-table inherited models, whose
update spans several tables) the primary keys are read first, locked with ``SELECT ... FOR
UPDATE`` where the database has it, the update is run on exactly those rows, and their new
state is read back; all in one transaction.

**What the rows say.** Each row records the state after the update (``history_type`` ``~``,
``history_change_reason`` empty) and, in ``history_changed_fields``, the tracked fields the
update assigned. Signal saves record there the fields that differ from the state the instance
was loaded with; the revert uses both to tell a recorded change from one nobody recorded (see
:mod:`koherent.revert`).

**Not captured here:** raw SQL, other processes (a psql session, another service writing the
same tables), and a plain ``bulk_create()`` (``bulk_create_with_history`` writes history for
creations; a plain ``bulk_create`` with ``update_conflicts`` cannot tell creations from
updates, and MySQL returns no keys to write rows for). ``queryset.delete()`` needs nothing:
simple-history's delete receivers make Django delete object by object and write each row.
``bulk_update_with_history`` keeps writing its own rows (with its ``default_user``,
``default_change_reason``, ``default_date``): the ``bulk_update()`` it calls is not captured
again, so there is one row per object, not two.

:func:`_captures_updates_in_python` is the one place that decides, per model, whether these
writes are captured in Python.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import sql
from django.db.models.query import QuerySet
from django.utils import timezone

from koherent._django import forget_results, prepare_queryset_write, queryset_write_database
from koherent._registry import TrackedModel, tracked_model
from koherent._transactions import in_one_transaction
from koherent.capture import caller_writes_history, captured_by_trigger, history_written_by_caller
from koherent.stamping import _changed_fields

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

#: History rows per ``INSERT`` statement.
HISTORY_BATCH_SIZE = 1000
#: Primary keys per ``IN`` list when the rows are read first.
_KEY_BATCH_SIZE = 5000

#: The tracked models (concrete classes) and their ``HistoryField``.
_tracked: dict[type[models.Model], Any] = {}
_install_lock = threading.Lock()
_installed = False
_original_update: Callable[..., int] = QuerySet.update
_original_bulk_update: Callable[..., int] = QuerySet.bulk_update

#: Attribute of a tracked instance holding the state it was loaded (or last saved) with.
_LOADED = "_koherent_loaded"
_MARK = "_koherent_tracks_loaded_state"


def _captures_updates_in_python(model: type[models.Model], using: str | None = None) -> bool:
    """Whether Koherent writes the history of ``model``'s ``update()`` / ``bulk_update()``.

    The one place where the capture mode of a model is decided: a model whose history the
    database writes itself (trigger capture on PostgreSQL, see
    :func:`koherent.capture.capture_mode`) gets no row from here, or its update would have two.
    """
    return not captured_by_trigger(model, using)


def register(model: type[models.Model], history_field: Any) -> None:
    """Capture the updates of ``model`` (called by ``HistoryField`` when the model is ready)."""
    _tracked[model] = history_field
    _track_loaded_state(model)
    install()


def install() -> None:
    """Wrap ``QuerySet.update`` and ``QuerySet.bulk_update`` (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        QuerySet.update = _update  # type: ignore[method-assign]
        QuerySet.bulk_update = _bulk_update  # type: ignore[method-assign]
        _installed = True


# -- the wrappers ------------------------------------------------------------------------------


def _history_field_for(model: type[models.Model]) -> Any:
    concrete = model._meta.concrete_model or model
    return _tracked.get(concrete)


def _update(self: QuerySet[Any], **kwargs: Any) -> int:
    field = _history_field_for(self.model) if kwargs else None
    if (
        field is None
        or caller_writes_history()
        or self.query.is_sliced
        or self.query.combinator
        or not getattr(settings, "SIMPLE_HISTORY_ENABLED", True)
        or not _captures_updates_in_python(self.model, _write_db(self))
    ):
        return _original_update(self, **kwargs)
    return _captured_update(self, kwargs, field)


def _write_db(qs: QuerySet[Any]) -> str:
    """The database an ``update()`` of ``qs`` writes to (as Django's ``update()`` picks it)."""
    return queryset_write_database(qs)


_update.alters_data = True  # type: ignore[attr-defined]
functools.update_wrapper(_update, _original_update)


def _bulk_update(
    self: QuerySet[Any], objs: Any, fields: Any, batch_size: int | None = None
) -> int:
    if _history_field_for(self.model) is not None and _called_by_bulk_update_with_history():
        with history_written_by_caller():
            return _original_bulk_update(self, objs, fields, batch_size=batch_size)
    return _original_bulk_update(self, objs, fields, batch_size=batch_size)


_bulk_update.alters_data = True  # type: ignore[attr-defined]
functools.update_wrapper(_bulk_update, _original_bulk_update)


def _called_by_bulk_update_with_history() -> bool:
    """Is simple-history's ``bulk_update_with_history`` (which writes its rows) the caller?

    It calls the manager's ``bulk_update`` and then writes a history row per object; the
    wrapper sees it two or three frames up (through the manager's proxy method).
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        code = frame.f_code
        if (
            code.co_name == "bulk_update_with_history"
            and frame.f_globals.get("__name__") == "simple_history.utils"
        ):
            return True
        frame = frame.f_back
    return False


# -- capturing an update -----------------------------------------------------------------------


def _captured_update(qs: QuerySet[Any], kwargs: dict[str, Any], history_field: Any) -> int:
    model = qs.model
    try:
        t = tracked_model(model._meta.concrete_model or model)
    except LookupError:  # not a Koherent history model after all
        return _original_update(qs, **kwargs)
    prepare_queryset_write(qs)
    using = qs.db
    history_db = using if history_field.use_base_model_db else router.db_for_write(t.history_model)
    opts = model._meta
    tracked_names = {f.name for f in t.fields}
    assigned = {opts.get_field(name).name for name in kwargs}
    changed = ",".join(f.name for f in t.fields if f.name in assigned and f.name in tracked_names)
    connection = connections[using]

    def run() -> int:
        result = None
        if _can_return_from_update(connection) and not opts.parents:
            result = _update_returning(qs, kwargs, t, connection)
        if result is None:
            result = _update_then_read(qs, kwargs, t, connection)
        rows, count = result
        if rows:
            _write_rows(t, rows, history_db, changed)
        return count

    # The update and its history rows commit or roll back together, in the caller's
    # transaction when there is one.
    result: int = in_one_transaction(using, run)
    return result


def _can_return_from_update(connection: BaseDatabaseWrapper) -> bool:
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        import sqlite3

        return sqlite3.sqlite_version_info >= (3, 35)
    return False


def _update_returning(
    qs: QuerySet[Any],
    kwargs: dict[str, Any],
    t: TrackedModel,
    connection: BaseDatabaseWrapper,
) -> tuple[list[tuple[Any, ...]], int] | None:
    """``UPDATE ... RETURNING`` the tracked columns; None when the update spans tables."""
    query: Any = qs.query.chain(sql.UpdateQuery)
    query.add_update_values(kwargs)
    if query.related_updates:
        return None
    query.clear_select_clause()
    compiler = query.get_compiler(connection.alias)
    statement, params = compiler.as_sql()
    if not statement:
        return [], 0
    qn = connection.ops.quote_name
    returning = ", ".join(qn(str(f.column)) for f in t.fields)
    with (
        transaction.mark_for_rollback_on_error(using=connection.alias),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"{statement} RETURNING {returning}", params)
        rows: list[Any] = list(cursor.fetchall())
    table = t.model._meta.db_table
    converters = compiler.get_converters([f.get_col(table) for f in t.fields])
    if converters:
        rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
    forget_results(qs)
    return rows, len(rows)


def _update_then_read(
    qs: QuerySet[Any],
    kwargs: dict[str, Any],
    t: TrackedModel,
    connection: BaseDatabaseWrapper,
) -> tuple[list[tuple[Any, ...]], int]:
    """Read (and lock) the matching keys, update those rows, read their new state."""
    keys_qs = qs.order_by()
    if connection.features.has_select_for_update_of:
        keys_qs = keys_qs.select_for_update(of=("self",))
    elif connection.features.has_select_for_update:
        keys_qs = keys_qs.select_for_update()
    pks = list(keys_qs.values_list("pk", flat=True))
    if not pks:
        return [], 0
    limit = connection.features.max_query_params
    size = min(_KEY_BATCH_SIZE, limit // 2) if limit else _KEY_BATCH_SIZE
    attnames = [f.attname for f in t.fields]
    base = t.model._base_manager.using(connection.alias)
    count = 0
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(pks), size):
        chunk = pks[start : start + size]
        count += _original_update(qs.filter(pk__in=chunk), **kwargs)
        rows.extend(base.filter(pk__in=chunk).values_list(*attnames))
    return rows, count


def _write_rows(
    t: TrackedModel, rows: Sequence[tuple[Any, ...]], using: str, changed: str
) -> None:
    """One history row per updated object, in bulk, stamped by the context."""
    from koherent._history_rows import write_history as _write_history
    from koherent._history_rows import write_m2m_history as _write_m2m_history

    attnames = [f.attname for f in t.fields]
    pk_index = attnames.index(t.pk_attname)
    with contextlib.suppress(TypeError):  # history ids in key order, whatever RETURNING gave
        rows = sorted(rows, key=lambda row: row[pk_index])
    objects: list[Any] = []
    for row in rows:
        obj = SimpleNamespace(**dict(zip(attnames, row, strict=True)))
        obj.pk = row[pk_index]
        objects.append(obj)
    if objects:
        # The history user is asked once, of the first object: a real instance, for a
        # ``get_user`` hook of the project's that reads the tracked model's attributes.
        objects[0] = t.model(**dict(zip(attnames, rows[0], strict=True)))
    # The assignation's record and this model on its list: written by _write_history.
    token = _changed_fields.set(changed)
    try:
        written = _write_history(t, objects, "~", using, timezone.now(), None, HISTORY_BATCH_SIZE)
    finally:
        _changed_fields.reset(token)
    if t.m2m and all(history_id is not None for _, history_id in written):
        _write_m2m_history(t, written, using, HISTORY_BATCH_SIZE)


# -- what a save changed -----------------------------------------------------------------------


def _track_loaded_state(model: type[models.Model]) -> None:
    """Keep, on each instance of ``model``, the field values it was loaded with.

    ``from_db`` keeps a reference to the loaded row (no copy), ``refresh_from_db`` updates it
    for the fields it reloads, and every history row written for the instance by a save
    replaces it with the saved state (:func:`remember_saved_state`).
    """
    from_db: Any = model.from_db
    if getattr(from_db, _MARK, False):
        return
    original_from_db = from_db.__func__

    def koherent_from_db(
        cls: type[models.Model], db: str | None, field_names: Any, values: Any
    ) -> models.Model:
        instance = original_from_db(cls, db, field_names, values)
        instance.__dict__[_LOADED] = (field_names, values)
        return instance  # type: ignore[no-any-return]

    setattr(koherent_from_db, _MARK, True)
    model.from_db = classmethod(koherent_from_db)  # type: ignore[assignment]

    original_refresh: Callable[..., None] = model.refresh_from_db

    @functools.wraps(original_refresh)
    def refresh_from_db(self: models.Model, *args: Any, **kwargs: Any) -> None:
        original_refresh(self, *args, **kwargs)
        fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
        loaded = _loaded_state(self)
        if loaded is None:
            return
        concrete = {f.name: f.attname for f in self._meta.concrete_fields}
        if fields is None:
            names = list(concrete.values())
        else:  # field names or attnames; relations that are not columns are skipped
            attnames = set(concrete.values())
            names = [concrete.get(n, n) for n in fields if n in concrete or n in attnames]
        deferred = self.get_deferred_fields()
        for attname in names:
            if attname not in deferred:
                loaded[attname] = getattr(self, attname)
        self.__dict__[_LOADED] = loaded

    model.refresh_from_db = refresh_from_db  # type: ignore[method-assign]


def _loaded_state(instance: models.Model) -> dict[str, Any] | None:
    state = instance.__dict__.get(_LOADED)
    if state is None:
        return None
    if isinstance(state, dict):
        return state
    names, values = state
    loaded = dict(zip(names, values, strict=False))
    instance.__dict__[_LOADED] = loaded
    return loaded


#: Values that can change in place (``obj.data["key"] = ...``), so a snapshot by reference
#: cannot tell: such fields always count as changed by a save.
_MUTABLE = (dict, list, set, bytearray)


def changed_fields_of(
    instance: models.Model, fields: Sequence[models.Field[Any, Any]]
) -> str | None:
    """The tracked fields a save of ``instance`` changes, comma-separated (``None``: unknown).

    A field changed when its value differs from the one the instance was loaded (or last
    saved) with. An instance that was never loaded (built in Python with its key) has no such
    state: ``None``.
    """
    loaded = _loaded_state(instance)
    if loaded is None:
        return None
    names = []
    missing = object()
    for f in fields:
        if f.primary_key:
            continue
        before = loaded.get(f.attname, missing)
        if before is missing:
            continue  # deferred: the save did not write it
        now = instance.__dict__.get(f.attname, missing)
        if now is missing:
            continue
        if isinstance(now, _MUTABLE) or now != before:
            names.append(f.name)
    return ",".join(names)


def remember_saved_state(instance: models.Model, fields: Sequence[models.Field[Any, Any]]) -> None:
    """After a history row for a save: the saved state is what the next save compares to."""
    state = {}
    for f in fields:
        if f.attname in instance.__dict__:
            state[f.attname] = instance.__dict__[f.attname]
    instance.__dict__[_LOADED] = state
