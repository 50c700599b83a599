"""How many history rows assignations wrote: per tracked model, or in all.

One implementation for every front end: :func:`model_counts` counts the rows of many
assignations per tracked model with one ``UNION ALL`` of a grouped count per history table,
using the assignation index; :func:`change_counts` adds them up; an
:class:`~koherent.query.AssignationHistory` counts its own rows with the same query
(:func:`count_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, router

from koherent._registry import TrackedModel, tracked_models
from koherent._sql import chunks
from koherent.query._sql import _TABLES_PER_QUERY, _column, _table

__all__ = ["change_counts", "count_rows", "model_counts"]

#: Assignation ids per statement where the database does not limit parameters.
_IDS_PER_QUERY = 5_000


def model_counts(
    assignation_ids: Iterable[str], *, using: str | None = None
) -> dict[str, dict[str, int]]:
    """Per assignation, its number of history rows per tracked model label.

    Only the models with rows are listed (an assignation without any row maps to ``{}``), in
    label order. ``using`` names the database; without it, each tracked model's history is
    counted on the database the router reads it from (one statement per database; more only
    past the database's limits: 200 tables, or its number of parameters).
    """
    ids = list(dict.fromkeys(assignation_ids))
    counts: dict[str, dict[str, int]] = {key: {} for key in ids}
    if not ids:
        return counts
    by_db: dict[str, list[TrackedModel]] = {}
    if using is not None:
        by_db[using] = list(tracked_models(using))
    else:  # each history table on the database the router reads it from
        for t in tracked_models():
            by_db.setdefault(str(router.db_for_read(t.history_model)), []).append(t)
    for db, tracked in by_db.items():
        for key, per_model in count_rows(db, tracked, ids).items():
            counts[key].update(per_model)
    return {key: dict(sorted(per_model.items())) for key, per_model in counts.items()}


def change_counts(assignation_ids: Iterable[str], *, using: str | None = None) -> dict[str, int]:
    """The number of history rows of each assignation (0 for none): :func:`model_counts`
    added up, in as many queries."""
    return {key: sum(n.values()) for key, n in model_counts(assignation_ids, using=using).items()}


def count_rows(
    using: str, tracked: Sequence[TrackedModel], assignation_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per assignation of ``assignation_ids``, its rows per label in the history tables of
    ``tracked`` on the database ``using`` (the models with rows only, in ``tracked``'s order).

    One ``UNION ALL`` of grouped counts per 200 tables. The ids travel as one array parameter
    per table on PostgreSQL; where parameters are limited (SQLite) once per statement, in a
    common table expression every branch reads, so the number of statements does not grow
    with the number of ids times the number of tables.
    """
    found: dict[str, dict[int, int]] = {key: {} for key in assignation_ids}
    if not assignation_ids or not tracked:
        return {key: {} for key in found}
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    limit = connection.features.max_query_params
    per_statement = len(assignation_ids) if postgres else (limit or _IDS_PER_QUERY)
    for start in range(0, len(tracked), _TABLES_PER_QUERY):
        group = tracked[start : start + _TABLES_PER_QUERY]
        for id_part in chunks(assignation_ids, per_statement):
            prefix, branches, params = _count_statement(connection, group, id_part, limit)
            with connection.cursor() as cursor:
                cursor.execute(prefix + " UNION ALL ".join(branches), params)
                for assignation_id, index, n in cursor.fetchall():
                    found.setdefault(assignation_id, {})[start + int(index)] = int(n)
    return {
        key: {tracked[index].label: n for index, n in sorted(per_model.items()) if n}
        for key, per_model in found.items()
    }


def _count_statement(
    connection: Any, group: Sequence[TrackedModel], ids: Sequence[str], limit: int | None
) -> tuple[str, list[str], list[Any]]:
    """The common table expression (or ``""``), the branches and the parameters of one count."""
    postgres = connection.vendor == "postgresql"
    prefix = ""
    params: list[Any] = []
    if postgres:  # one array parameter: the same SQL whatever the number of ids
        condition = "= ANY(%s)"
    elif limit is not None:
        prefix = f"WITH koherent_ids(id) AS (VALUES {', '.join(['(%s)'] * len(ids))}) "
        condition = "IN (SELECT id FROM koherent_ids)"
        params.extend(ids)
    else:
        condition = f"IN ({', '.join(['%s'] * len(ids))})"
    branches = []
    for index, t in enumerate(group):
        hm = t.history_model
        column = _column(hm, "assignation_id", connection)
        branches.append(
            f"SELECT {column}, {index}, COUNT(*) FROM {_table(hm, connection)} "
            f"WHERE {column} {condition} GROUP BY {column}"
        )
        if postgres:
            params.append(list(ids))
        elif limit is None:
            params.extend(ids)
    return prefix, branches, params
