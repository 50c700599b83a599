"""The PostgreSQL functions that read an assignation's first page (``HISTORY_FUNCTION``).

``migrate`` creates one per database, named ``koherent_history_<digest>`` after its text: a
change of the tracked models or their columns gives a new function, and the one of the code
before stays, for the processes of that code still running. :func:`history_functions` says
which is this code's and which are left from earlier code; :func:`drop_stale_history_functions`
drops those (``manage.py koherent_history_function --drop-stale``) once no process of the
earlier code runs: such a process reads without its function outside a transaction, and gets
the error inside one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS

from koherent.query import _function

__all__ = ["HistoryFunctions", "drop_stale_history_functions", "history_functions"]


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
    current = _function.current_name(using)
    names = _function.installed_names(using)
    return HistoryFunctions(
        database=using,
        current=current,
        installed=current is not None and current in names,
        stale=tuple(name for name in names if name != current),
    )


def drop_stale_history_functions(using: str = DEFAULT_DB_ALIAS) -> tuple[str, ...]:
    """Drop the history functions of database ``using`` that this code does not read with,
    in one transaction; the names dropped. This code's function is kept."""
    return tuple(_function.drop_stale(using))
