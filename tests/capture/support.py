"""Helpers of the trigger capture tests."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Model


def rows(model: type[Model], **filters: Any) -> list[Any]:
    """The history rows of ``model``, oldest first."""
    history: Any = model.history.model  # type: ignore[attr-defined]
    return list(history.objects.filter(**filters).order_by("history_date", "history_id"))


def stamp(row: Any) -> tuple[Any, ...]:
    """What a history row was stamped with: (user id, user pk, app, assignation, task)."""
    return (row.history_user_id, row.user_pk, row.app, row.assignation_id, row.task_id)


UNATTRIBUTED = (None, None, None, None, None)


def raw(sql: str, params: Any = None) -> int:
    """Run ``sql`` through Django's cursor (and so through the execute wrappers)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def raw_unwrapped(sql: str) -> None:
    """Run ``sql`` on the driver's own cursor: no Django execute wrapper sees it."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute(sql)
