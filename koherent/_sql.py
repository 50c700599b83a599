"""SQL building blocks shared by the history reads and the revert (internal).

Both read and write many rows in one statement: a list cut into parameter-sized chunks, and a
``VALUES`` list whose first row casts each parameter to its column's type (PostgreSQL infers the
types of a ``VALUES`` list from its first row; an untyped ``%s`` would be ``text``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["chunks", "text_literal", "typed_values"]


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def text_literal(value: str) -> str:
    """``value`` as an SQL string literal (quotes doubled), for SQL written once and kept:
    a trigger's or a function's body, where no parameter can be bound."""
    return "'" + value.replace("'", "''") + "'"


def typed_values(fields: Sequence[Any], rows: int, connection: BaseDatabaseWrapper) -> str:
    """The rows of a ``VALUES`` list of ``rows`` rows, one placeholder a field each.

    The first row casts each placeholder to its field's database type, the others do not need
    to: ``(CAST(%s AS integer), CAST(%s AS timestamp with time zone)), (%s, %s), ...``.
    """
    first = "(" + ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" for f in fields) + ")"
    other = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return ", ".join([first, *[other] * (rows - 1)])
