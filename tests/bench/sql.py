"""Helpers of the benchmark and speed tests: the SQL a block sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection


@contextmanager
def capture_sql() -> Iterator[list[str]]:
    """The SQL text of every statement sent inside the block (with DEBUG off too)."""
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements
