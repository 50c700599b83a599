"""What a history read touched on the server, and the read without the history function.

On PostgreSQL the first page of an assignation's history is read by a function in the
database (:mod:`koherent.query._function`): the tables it reads are not in the SQL the client
sends, so :func:`tables_read` asks the server which tables the transaction scanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext

from koherent._registry import tracked_models
from koherent.query import _function

__all__ = ["first_page_in_one_query", "tables_read", "without_function"]


def first_page_in_one_query(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether a first page is read in one query on ``using`` (the function exists)."""
    return _function.reader(using) is not None


def _scans(using: str, tables: set[str]) -> dict[str, tuple[int, int]]:
    """Per table (``db_table``, which may name a schema): its scans in this transaction."""
    connection = connections[using]
    quoted = {connection.ops.quote_name(table): table for table in tables}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.name, s.seq_scan, COALESCE(s.idx_scan, 0) "
            "FROM unnest(%s::text[]) AS t(name) "
            "JOIN pg_stat_xact_user_tables s ON s.relid = to_regclass(t.name)",
            [sorted(quoted)],
        )
        return {quoted[name]: (seq, idx) for name, seq, idx in cursor.fetchall()}


@contextmanager
def tables_read(using: str = DEFAULT_DB_ALIAS) -> Iterator[set[str]]:
    """The history tables of tracked models read inside the block (filled after it).

    On PostgreSQL the server's count of the scans of each table in this transaction (the
    block must run in one, as a ``django_db`` test does); elsewhere the tables named in the
    SQL sent.
    """
    found: set[str] = set()
    connection = connections[using]
    tables = {t.history_model._meta.db_table for t in tracked_models()}
    if connection.vendor != "postgresql":
        with CaptureQueriesContext(connection) as queries:
            yield found
        quote = connection.ops.quote_name
        found.update(
            table for q in queries.captured_queries for table in tables if quote(table) in q["sql"]
        )
        return
    assert connection.in_atomic_block, "pg_stat_xact_user_tables counts one transaction"
    before = _scans(using, tables)
    yield found
    after = _scans(using, tables)
    found.update(
        table for table in tables if after.get(table, (0, 0)) != before.get(table, (0, 0))
    )


@contextmanager
def without_function(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The history function dropped inside the block (and what the process knew of it
    forgotten): reads take the two-query path. Created again after."""
    connection = connections[using]
    reader = _function.reader(using)
    assert reader is not None, "no history function to drop"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {connection.ops.quote_name(reader.name)}(text)")
    _function.clear_cache()
    try:
        yield
    finally:
        _function.install(using)
