"""The PostgreSQL functions that read an assignation's first page (``HISTORY_FUNCTION``).

``migrate`` creates one per database, named ``koherent_history_<digest>`` after its text: a
change of the tracked models or their columns gives a new function, and the one of the code
before stays, for the processes of that code still running; ``migrate`` names those on its
output (:func:`on_post_migrate`). :func:`history_functions` says which is this code's and which
are left from earlier code; :func:`drop_stale_history_functions` drops those
(``manage.py koherent_history_function --drop-stale``) once no process of the earlier code
runs: such a process reads without its function outside a transaction, and gets the error
inside one.

Only Koherent's own functions are ever listed or dropped: named ``koherent_history_`` and 16
hexadecimal digits, taking ``(p_assignation text)``, in a schema on the search path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from koherent._config import get_setting
from koherent._logging import error_reason, get_logger
from koherent.query import _function

__all__ = ["HistoryFunctions", "drop_stale_history_functions", "history_functions"]

logger = get_logger("koherent")

#: The name of a function ``migrate`` creates: the prefix and a 16-digit digest.
_NAME = re.compile(rf"^{_function.PREFIX}[0-9a-f]{{16}}$")


@dataclass(frozen=True)
class HistoryFunctions:
    """The history functions of one database."""

    #: The database alias.
    database: str
    #: The function this code reads with, or ``None`` where it reads without one (not
    #: PostgreSQL, records kept in another database, ``HISTORY_FUNCTION = "never"``).
    current: str | None
    #: Whether :attr:`current` exists in the database (``migrate`` creates it).
    installed: bool
    #: Koherent's other history functions in the database: earlier code's.
    stale: tuple[str, ...]


def history_functions(using: str = DEFAULT_DB_ALIAS) -> HistoryFunctions:
    """The history functions of database ``using`` (one catalogue query on PostgreSQL)."""
    current = _current_name(using)
    names = _installed_names(using)
    return HistoryFunctions(
        database=using,
        current=current,
        installed=current is not None and current in names,
        stale=tuple(name for name in names if name != current),
    )


def drop_stale_history_functions(using: str = DEFAULT_DB_ALIAS) -> tuple[str, ...]:
    """Drop the history functions of database ``using`` that this code does not read with,
    in one transaction (all or none); the names dropped. This code's function is kept."""
    stale = list(history_functions(using).stale)
    if not stale:
        return ()
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for name in stale:
            cursor.execute(f"DROP FUNCTION IF EXISTS {quote(name)}(text)")
    _function.forget(using, stale)
    return tuple(stale)


def on_post_migrate(
    using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, stdout: Any = None, **kwargs: Any
) -> None:
    """``post_migrate`` receiver (after the one creating this code's function): name the
    functions of earlier code on ``migrate``'s output, since a migrate is when a new function
    makes the old one stale.

    A database whose catalogue cannot be read (a role without ``SELECT`` on ``pg_proc``, say)
    is logged, and ``migrate`` goes on: the notice is never a reason for it to fail.
    """
    if verbosity < 1 or stdout is None:
        return
    try:
        # In a savepoint: a failure leaves a transaction around it usable.
        with transaction.atomic(using=using):
            found = history_functions(using)
    except DatabaseError as exc:
        logger.warning(
            "koherent: could not list the history functions of database %s (%s)",
            using,
            error_reason(exc),
        )
        return
    if found.stale:
        stdout.write(
            f"  Koherent: history functions of earlier code left in database {using}: "
            f"{', '.join(found.stale)}. Drop them with "
            "`manage.py koherent_history_function --drop-stale` once no process of that code "
            "runs."
        )


def _current_name(alias: str) -> str | None:
    """The function this code reads with in ``alias`` (see :attr:`HistoryFunctions.current`)."""
    if get_setting("HISTORY_FUNCTION") not in _function._USED:
        return None
    found = _function._definition(alias)
    return None if found is None else found.name


def _installed_names(alias: str) -> list[str]:
    """Koherent's history functions in ``alias``, sorted (none outside PostgreSQL)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname LIKE %s AND n.nspname = ANY(current_schemas(false)) "
            "AND pg_get_function_identity_arguments(p.oid) = 'p_assignation text' "
            "ORDER BY p.proname",
            [_function.PREFIX.replace("_", r"\_") + "%"],
        )
        names = [str(row[0]) for row in cursor.fetchall()]
    return [name for name in names if _NAME.match(name)]
