"""Every use of Django's private internals, in one place (internal).

Koherent leans on a few attributes and methods Django does not document. Each is reached
through a function here, so that a new Django release is checked against this one module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models.deletion import Collector

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model, QuerySet
    from django.db.models.sql.compiler import SQLInsertCompiler

__all__: list[str] = []


# -- requests ----------------------------------------------------------------------------------


def cached_async_user(request: Any) -> Any:
    """The user ``await request.auser()`` resolved (Django keeps it in ``_acached_user``), or
    ``None`` when it has not run."""
    return getattr(request, "_acached_user", None)


def lazy_object_resolved(value: Any) -> bool:
    """Whether a lazy object (``request.user``'s ``SimpleLazyObject``) was evaluated already;
    anything else counts as resolved."""
    from django.utils.functional import SimpleLazyObject, empty

    return not (isinstance(value, SimpleLazyObject) and value._wrapped is empty)


# -- transactions and connections --------------------------------------------------------------


def transaction_marker(connection: BaseDatabaseWrapper) -> object:
    """An object that stays the same while the current transaction neither commits nor rolls
    back (also to a savepoint): Django replaces ``run_on_commit`` with a new list each time."""
    return connection.run_on_commit


def add_execute_wrapper_first(connection: BaseDatabaseWrapper, wrapper: Any) -> None:
    """Install ``wrapper`` on ``connection`` for good, around every other execute wrapper
    (``connection.execute_wrapper()`` installs one for a block only, innermost)."""
    if wrapper not in connection.execute_wrappers:
        # First, so that it wraps every other wrapper, and so that the pop() of an
        # ``execute_wrapper()`` block entered before the connection opened removes its own.
        connection.execute_wrappers.insert(0, wrapper)


def queryset_write_database(queryset: QuerySet[Any]) -> str:
    """The database an ``update()`` of ``queryset`` writes to (as Django's ``update()`` picks
    it: the one the queryset was given, else the router's with its hints)."""
    from django.db import router

    db: str | None = queryset._db  # type: ignore[attr-defined]
    return db or router.db_for_write(queryset.model, **queryset._hints)  # type: ignore[attr-defined]


def prepare_queryset_write(queryset: QuerySet[Any]) -> None:
    """Make ``queryset`` read from the database it writes to (as ``update()`` does first)."""
    queryset._for_write = True  # type: ignore[attr-defined]


def forget_results(queryset: QuerySet[Any]) -> None:
    """Drop the rows ``queryset`` cached (as ``update()`` does after writing)."""
    queryset._result_cache = None


def connection_state(connection: BaseDatabaseWrapper, name: str) -> Any:
    """What Koherent keeps on ``connection`` under ``name`` (``None`` when nothing)."""
    return getattr(connection, f"_koherent_{name}", None)


def set_connection_state(connection: BaseDatabaseWrapper, name: str, value: Any) -> None:
    """Keep ``value`` on ``connection`` under ``name`` (for as long as the connection lives)."""
    setattr(connection, f"_koherent_{name}", value)


# -- inserts -----------------------------------------------------------------------------------


def fetch_returned_rows(
    connection: BaseDatabaseWrapper, cursor: Any, compiler: SQLInsertCompiler
) -> list[Any]:
    """The rows an ``INSERT ... RETURNING`` compiled by ``compiler`` returned on ``cursor``."""
    ops: Any = connection.ops
    if hasattr(ops, "fetch_returned_rows"):  # Django 6.0
        return list(ops.fetch_returned_rows(cursor, compiler.returning_params))
    return [ops.fetch_returned_insert_columns(cursor, compiler.returning_params)]  # Django 5.2


# -- deletion ----------------------------------------------------------------------------------
#
# The revert deletes with Django's own deletion collector: what it would take with the objects
# (cascades, parent rows of multi-table children), what it would set to null, what it refuses
# (``ProtectedError``, ``RestrictedError``), and in what order. It writes the history rows
# itself, so the rows are deleted without signals (``QuerySet._raw_delete``).


def raw_delete(queryset: QuerySet[Any], using: str) -> int:
    """Delete the rows of ``queryset`` in one statement: no signals, no cascades."""
    return queryset._raw_delete(using)


def deletion_collector(using: str, groups: Iterable[Sequence[Model]]) -> Collector:
    """Django's deletion collector over ``groups`` of objects (each a list of one model's).

    Raises ``ProtectedError`` or ``RestrictedError`` when a relation refuses the deletion.
    """
    collector = Collector(using=using)
    for objs in groups:
        collector.collect(objs)
    return collector


def collected_objects(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The objects the collector deletes, by model, in its order (see :func:`deletion_order`)."""
    return [(model, list(objs)) for model, objs in collector.data.items() if objs]


def collected_updates(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The rows the deletion updates (``SET_NULL``, ``SET(...)``), by the model of the field."""
    updates: list[tuple[type[Model], list[Model]]] = []
    for (field, _value), groups in collector.field_updates.items():
        for objs in groups:
            rows: Iterable[Model] = objs  # type: ignore[assignment]  # querysets, not models
            updates.append((field.model, list(rows)))
    return updates


def collected_fast_deletes(collector: Collector) -> list[QuerySet[Any]]:
    """The querysets the collector deletes in one statement each, without loading them."""
    return list(collector.fast_deletes)


def deletion_order(collector: Collector) -> list[tuple[type[Model], list[Model]]]:
    """The collected objects by model, referring models first (the collector's sort)."""
    collector.sort()
    return collected_objects(collector)


def run_deletion(collector: Collector) -> int:
    """Django's own deletion of what the collector holds: cascades and signals included."""
    deleted, _ = collector.delete()
    return deleted
