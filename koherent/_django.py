"""Every use of Django's private internals, in one place (internal).

Koherent leans on a few attributes and methods Django does not document. Each is reached
through a function here, so that a new Django release is checked against this one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLInsertCompiler

__all__: list[str] = []


# -- requests ----------------------------------------------------------------------------------


def cached_async_user(request: Any) -> Any:
    """The user ``await request.auser()`` resolved (Django keeps it in ``_acached_user``), or
    ``None`` when it has not run."""
    return getattr(request, "_acached_user", None)


# -- transactions and connections --------------------------------------------------------------


def transaction_marker(connection: BaseDatabaseWrapper) -> object:
    """An object that stays the same while the current transaction neither commits nor rolls
    back (also to a savepoint): Django replaces ``run_on_commit`` with a new list each time."""
    return connection.run_on_commit


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
