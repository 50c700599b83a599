"""Reading history by assignation: every change of one operation, across models.

:func:`history_for_assignation` gives every history row written under one assignation, of
every tracked model, in a stable order: ``history_date``, then the tracked model's label
(``app_label.ModelName``), then ``history_id``. Rows written by different processes can share a
timestamp; the order stays the same from one call to the next all the same.

Cost, whatever the number of rows and of tracked models: a read first looks up which tracked
models the assignation wrote to (its record's list, kept by :mod:`koherent.records`: one query
by primary key), and reads only their tables. Then the first page of rows is one query, and
every later page two, all using the ``(assignation_id, history_date, history_id)`` index
every Koherent history model has. The first page reads the full rows straight from that index
in every table read (one ``UNION ALL``, ordered and limited). A later page first walks the
index from its cursor (each table giving at most a page of keys), then loads the full rows of
the models that page touched (one ``UNION ALL`` again), so a page deep into a large
assignation costs what the first one costs. Iterating looks the list up once. Without a list
(no record: rows written by raw SQL or with ``RECORD_ASSIGNATIONS`` off; or a record written
before records kept that list) every tracked table is read, each an index probe.

Each of these queries has the same SQL text for every assignation (the id is a parameter): on
PostgreSQL most of its cost is planning the ``UNION ALL``, which a connection with prepared
statements does once (psycopg's ``prepare_threshold`` with ``server_side_binding``, see
docs/undo.md). On PostgreSQL connections that persist, the list and the first page are one
query instead: a call of the function ``migrate`` creates, whose statements the server plans
once per connection (``koherent.query._function``, setting ``HISTORY_FUNCTION``).

For display, :class:`HistoryEntry` is one row as a plain value (kind, date, user id, app,
assignation, task, model label, object id), and :func:`effective_changes` computes the field
changes of a list of entries in batches: one query per model for the rows before them (and one
per tracked many-to-many field), never one per entry. That is the shape a GraphQL DataLoader
wants.

:func:`get_assignation` finds one assignation (its record, or a stand-in made from its first
row); :func:`assignations` / :func:`list_assignations` find assignation records by user, app,
origin and time; :func:`model_counts` and :func:`change_counts` count their changes;
:func:`object_histories` gives the history of given objects.

The package, by concern: :mod:`~koherent.query.entries` (the values),
:mod:`~koherent.query.timeline` (an assignation's history, pages and cursors),
:mod:`~koherent.query.changes` (field changes), :mod:`~koherent.query.counts`,
:mod:`~koherent.query.lookup`, :mod:`~koherent.query.objects`,
:mod:`~koherent.query.functions` (the PostgreSQL functions of ``HISTORY_FUNCTION``); the SQL
behind them in the internal ``_cursor``, ``_sql``, ``_rows``, ``_page`` and ``_function``.
Import from ``koherent.query``.
"""

from __future__ import annotations

from koherent.query._cursor import InvalidCursor
from koherent.query.changes import FieldChange, effective_changes
from koherent.query.changes import m2m_snapshots as m2m_snapshots
from koherent.query.changes import previous_rows as previous_rows
from koherent.query.counts import change_counts, model_counts
from koherent.query.entries import ChangeKind, HistoryEntry, HistoryPage
from koherent.query.functions import (
    HistoryFunctions,
    drop_stale_history_functions,
    history_functions,
)
from koherent.query.lookup import (
    AssignationFilters,
    AssignationSummary,
    assignations,
    get_assignation,
    list_assignations,
)
from koherent.query.objects import object_histories
from koherent.query.timeline import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from koherent.query.timeline import DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE
from koherent.query.timeline import AssignationHistory, history_for_assignation, load_entries

__all__ = [  # noqa: RUF022 (by concern)
    # the values
    "ChangeKind",
    "HistoryEntry",
    "HistoryPage",
    "FieldChange",
    "InvalidCursor",
    # an assignation's history, and its changes
    "AssignationHistory",
    "history_for_assignation",
    "load_entries",
    "effective_changes",
    # finding, listing and counting assignations
    "get_assignation",
    "AssignationFilters",
    "AssignationSummary",
    "assignations",
    "list_assignations",
    "model_counts",
    "change_counts",
    # the history of given objects
    "object_histories",
    # the PostgreSQL functions reading a first page
    "HistoryFunctions",
    "history_functions",
    "drop_stale_history_functions",
]
