"""The queries of one page of an assignation's history (internal).

A first page is one query (:func:`_first_page`: full rows straight from the assignation index
of every table); a later page two (:func:`_page_keys` walks the index from the cursor, then
:func:`~koherent.query._rows._load_rows` loads the rows the page touched).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections

from koherent._sql import chunks
from koherent.query._rows import _build_rows, _cached_plan
from koherent.query._sql import (
    _COLUMNS_PER_QUERY,
    _TABLES_PER_QUERY,
    _column,
    _convert,
    _date_param,
    _history_id_sql,
    _id_param,
    _mixed_history_ids,
    _normalise_id,
    _table,
)

if TYPE_CHECKING:
    from django.db.models import Model

    from koherent._registry import TrackedModel
    from koherent.query._cursor import _Cursor


def _page_keys(
    using: str,
    tracked: Sequence[TrackedModel],
    assignation_id: str,
    after: _Cursor | None,
    limit: int,
) -> list[tuple[TrackedModel, Any]]:
    """The keys of up to ``limit`` rows of the assignation after ``after``, in order."""
    connection = connections[using]
    cast = _mixed_history_ids(tracked)
    merged: list[tuple[Any, str, Any, TrackedModel, Any]] = []
    groups = list(chunks(tracked, _TABLES_PER_QUERY))
    date_converters: dict[type[Model], Any] = {}
    for chunk in groups:
        branches: list[str] = []
        params: list[Any] = []
        for index, t in enumerate(chunk):
            hm = t.history_model
            hid = _history_id_sql(t, connection, cast)
            date = _column(hm, "history_date", connection)
            where = [f"{_column(hm, 'assignation_id', connection)} = %s"]
            params.append(assignation_id)
            if after is not None:
                when = _date_param(after.date, connection)
                if t.label < after.label:
                    where.append(f"{date} > %s")
                    params.append(when)
                elif t.label > after.label:
                    where.append(f"{date} >= %s")
                    params.append(when)
                else:
                    # A row comparison: a range of the (assignation, date, id) index. The id
                    # compared is the table's own column (never cast: the cursor's id has its
                    # type, and the index is on the column).
                    own_id = _history_id_sql(t, connection, False)
                    where.append(f"({date}, {own_id}) > (%s, %s)")
                    params.extend([when, _id_param(t, after.history_id, connection)])
            select = (
                f"SELECT {index} AS koherent_m, {hid} AS koherent_id, {date} AS koherent_date "
                f"FROM {_table(hm, connection)} WHERE {' AND '.join(where)}"
            )
            if after is not None:
                # After a cursor each table gives at most ``limit`` rows, read in the order
                # of its assignation index, so a page deep into a huge assignation reads no
                # more than a first page. The first page does without: simpler to plan,
                # several times faster for the usual assignation of a few hundred rows.
                select = (
                    f"SELECT * FROM ({select} ORDER BY {date}, {hid} LIMIT {int(limit)}) "
                    f"koherent_b{index}"
                )
            branches.append(select)
        # Wrapped in a subquery, the union is ordered by the date without sending it back,
        # unless chunks must be merged here.
        merging = len(groups) > 1
        sql = (
            f"SELECT koherent_m, koherent_id{', koherent_date' if merging else ''} FROM ("
            + " UNION ALL ".join(branches)
            + f") koherent_u ORDER BY koherent_date, koherent_m, koherent_id LIMIT {int(limit)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not merging:
            return [(chunk[m], _normalise_id(chunk[m], hid_value)) for m, hid_value in rows]
        for m, hid_value, date_value in rows:
            t = chunk[m]
            hm = t.history_model
            if hm not in date_converters:
                f = hm._meta.get_field("history_date")
                col = f.get_col(hm._meta.db_table)
                convs = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
                date_converters[hm] = (convs, col)
            convs, col = date_converters[hm]
            date_value = _convert(date_value, convs, col, connection)
            merged.append((date_value, t.label, hid_value, t, hid_value))
    merged = heapq.nsmallest(limit, merged, key=lambda k: (k[0], k[1], k[2]))
    return [(t, _normalise_id(t, hid)) for _, _, _, t, hid in merged]


@functools.lru_cache(maxsize=256)
def _first_page_sql(group: tuple[TrackedModel, ...], alias: str, vendor: str, limit: int) -> str:
    """The one query of a first page: full rows of every table, straight from the index.

    The rows come back as the model index, the history id and the shared columns; the date
    they are ordered by is not sent back (the row has it already).
    """
    connection = connections[alias]
    plan = _cached_plan(group, alias, vendor)
    cast = _mixed_history_ids(group)
    branches = []
    for index, t in enumerate(group):
        hm = t.history_model
        select = plan.named_selects[index] if index == 0 else plan.selects[index]
        branches.append(
            f"SELECT {index} AS koherent_m, {_column(hm, 'history_date', connection)} AS "
            f"koherent_date, {_history_id_sql(t, connection, cast)} AS koherent_id, "
            f"{select} FROM {plan.tables[index]} "
            f"WHERE {_column(hm, 'assignation_id', connection)} = %s"
        )
    columns = ", ".join(f"koherent_c{n}" for n in range(plan.width))
    return (
        f"SELECT koherent_m, koherent_id, {columns} FROM ("
        + " UNION ALL ".join(branches)
        + f") koherent_u ORDER BY koherent_date, koherent_m, koherent_id LIMIT {int(limit)}"
    )


def _first_page(
    using: str, tracked: Sequence[TrackedModel], assignation_id: str, limit: int
) -> list[Model] | None:
    """The first ``limit`` rows of the assignation in one query, or ``None`` when the tracked
    tables do not fit in one (then the keys and the rows are read apart).

    The same SQL text serves every assignation (the id is a parameter), so a connection with
    prepared statements (psycopg's ``prepare_threshold``) plans it once.
    """
    if len(tracked) > _TABLES_PER_QUERY:
        return None
    connection = connections[using]
    group = tuple(tracked)
    plan = _cached_plan(group, using, connection.vendor)
    if plan.width > _COLUMNS_PER_QUERY:
        return None
    sql = _first_page_sql(group, using, connection.vendor, limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, [assignation_id] * len(group))
        fetched = cursor.fetchall()
    return _build_rows(using, connection, group, plan, fetched, offset=2)
