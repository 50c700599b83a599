"""Every use of Django's private internals, in one place (internal).

Koherent leans on a few attributes and methods Django does not document. Each is reached
through a function here, so that a new Django release is checked against this one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import QuerySet
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
