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
docs/undo.md).

For display, :class:`HistoryEntry` is one row as a plain value (kind, date, user id, app,
assignation, task, model label, object id), and :func:`effective_changes` computes the field
changes of a list of entries in batches: one query per model for the rows before them (and one
per tracked many-to-many field), never one per entry. That is the shape a GraphQL DataLoader
wants.

:func:`assignations` / :func:`list_assignations` find assignation records by user, app,
origin and time, and :func:`change_counts` counts their changes in one query.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import functools
import heapq
import json
import re
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.db.models import signals
from django.db.models.base import ModelState

from koherent._sql import chunks, typed_values
from koherent.exceptions import KoherentError
from koherent.registry import TrackedModel, tracked_model, tracked_models
from koherent.routing import history_database, history_databases, record_database

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model, QuerySet

    from koherent.models import Assignation

__all__ = [
    "AssignationHistory",
    "AssignationSummary",
    "ChangeKind",
    "FieldChange",
    "HistoryEntry",
    "HistoryPage",
    "InvalidCursor",
    "assignations",
    "change_counts",
    "effective_changes",
    "history_for_assignation",
    "list_assignations",
    "load_entries",
]

#: Default number of rows per page of :meth:`AssignationHistory.page`.
DEFAULT_PAGE_SIZE = 100
#: Rows fetched per round of iteration over :class:`AssignationHistory`.
DEFAULT_BATCH_SIZE = 500
#: Tracked tables per ``UNION ALL`` (SQLite allows 500 compound terms).
_TABLES_PER_QUERY = 200
#: Columns per ``UNION ALL`` of full rows (PostgreSQL allows 1,664).
_COLUMNS_PER_QUERY = 1000


class ChangeKind(enum.StrEnum):
    """What a history row records."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"

    @classmethod
    def of(cls, history_type: str) -> ChangeKind:
        """The kind of simple-history's ``history_type`` (``+``, ``~``, ``-``)."""
        return _KINDS[history_type]


_KINDS = {"+": ChangeKind.CREATE, "~": ChangeKind.UPDATE, "-": ChangeKind.DELETE}


class InvalidCursor(KoherentError, ValueError):
    """A page cursor that :func:`history_for_assignation` did not make, or a damaged one."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one history row: its value before and after the change.

    ``field`` is the field's name (``order`` for a foreign key, its value the raw key). For a
    tracked many-to-many field the values are sorted lists of the related objects' keys. On a
    creation ``old`` is ``None``, on a deletion ``new`` is; on an update whose previous row is
    not in the history (the object predates its tracking) ``old`` is ``None`` too.
    """

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One history row of a tracked model, as a plain value.

    Build one with :meth:`from_row`; :attr:`row` is the history row itself.
    """

    kind: ChangeKind
    date: dt.datetime
    #: The primary key of the user who made the change, as text (``None`` if unknown).
    user_id: str | None
    app: str | None
    assignation_id: str | None
    task_id: str | None
    #: ``app_label.ModelName`` of the tracked model.
    model_label: str
    #: The tracked object's primary key.
    object_id: Any
    #: The history row's primary key.
    history_id: Any
    row: Model = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_row(cls, row: Model) -> HistoryEntry:
        """The entry of a history row of a tracked model."""
        tracked = tracked_model(type(row))
        return cls._build(tracked, row)

    @classmethod
    def _build(cls, tracked: TrackedModel, row: Model) -> HistoryEntry:
        return cls(
            kind=ChangeKind.of(row.history_type),  # type: ignore[attr-defined]
            date=row.history_date,  # type: ignore[attr-defined]
            user_id=row.user_pk,  # type: ignore[attr-defined]
            app=row.app,  # type: ignore[attr-defined]
            assignation_id=row.assignation_id,  # type: ignore[attr-defined]
            task_id=row.task_id,  # type: ignore[attr-defined]
            model_label=tracked.label,
            object_id=tracked.object_id_of(row),
            history_id=row.pk,
            row=row,
        )

    @property
    def key(self) -> tuple[str, Any]:
        """``(model_label, history_id)``: what :func:`load_entries` takes back."""
        return (self.model_label, self.history_id)

    @property
    def cursor(self) -> str:
        """The opaque cursor of this entry (pass it as ``after=`` to get the rows after it)."""
        return _encode_cursor(self.date, self.model_label, self.history_id)

    @property
    def model(self) -> type[Model]:
        """The tracked model class."""
        return tracked_model(self.model_label).model


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of an assignation's history, in order."""

    rows: tuple[Model, ...]
    #: True when more rows follow (fetch them with ``after=page.end_cursor``).
    has_next: bool

    @property
    def entries(self) -> list[HistoryEntry]:
        """The rows as :class:`HistoryEntry` values."""
        return [HistoryEntry.from_row(row) for row in self.rows]

    @property
    def start_cursor(self) -> str | None:
        return _cursor_of(self.rows[0]) if self.rows else None

    @property
    def end_cursor(self) -> str | None:
        return _cursor_of(self.rows[-1]) if self.rows else None


@dataclass(frozen=True, slots=True)
class _Cursor:
    date: dt.datetime
    label: str
    history_id: Any


def _encode_cursor(date: dt.datetime, label: str, history_id: Any) -> str:
    raw = json.dumps([date.isoformat(), label, str(history_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_of(row: Model) -> str:
    tracked = tracked_model(type(row))
    return _encode_cursor(row.history_date, tracked.label, row.pk)  # type: ignore[attr-defined]


def _decode_cursor(value: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        date_text, label, history_id = json.loads(raw)
        date = dt.datetime.fromisoformat(date_text)
        tracked = tracked_model(label)
        pk = tracked.history_model._meta.pk
        assert pk is not None
        return _Cursor(date=date, label=tracked.label, history_id=pk.to_python(history_id))
    except Exception as exc:  # bad base64 or JSON, an unknown model, a malformed id...
        raise InvalidCursor(f"not a history cursor: {value!r}") from exc


# -- SQL building blocks -----------------------------------------------------------------------


def _quoted(f: Any, connection: BaseDatabaseWrapper) -> str:
    """The quoted column name of a concrete field."""
    return connection.ops.quote_name(str(f.column))


def _column(model: type[Model], name: str, connection: BaseDatabaseWrapper) -> str:
    return _quoted(model._meta.get_field(name), connection)


def _table(model: type[Model], connection: BaseDatabaseWrapper) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _history_id_sql(tracked: TrackedModel, connection: BaseDatabaseWrapper, cast: bool) -> str:
    pk = tracked.history_model._meta.pk
    assert pk is not None
    column = _quoted(pk, connection)
    if cast:
        return f"CAST({column} AS {connection.ops.cast_char_field_without_max_length})"
    return column


def _mixed_history_ids(tracked: Sequence[TrackedModel]) -> bool:
    """Whether the history ids of these models cannot share one column (int and uuid)."""
    integer = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField"}
    kinds = set()
    for t in tracked:
        pk = t.history_model._meta.pk
        assert pk is not None
        internal = pk.get_internal_type()
        kinds.add("int" if internal in integer else internal)
    return len(kinds) > 1


def _converters(
    model: type[Model], connection: BaseDatabaseWrapper
) -> list[tuple[list[Callable[..., Any]], Any]]:
    """Per concrete field: the backend's and the field's converters, as the ORM applies them."""
    result = []
    for f in model._meta.concrete_fields:
        col = f.get_col(model._meta.db_table)
        result.append(
            (connection.ops.get_db_converters(col) + f.get_db_converters(connection), col)
        )
    return result


def _convert(
    value: Any, converters: list[Callable[..., Any]], expression: Any, connection: Any
) -> Any:
    for converter in converters:
        value = converter(value, expression, connection)
    return value


def _date_param(value: dt.datetime, connection: BaseDatabaseWrapper) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _id_param(tracked: TrackedModel, value: Any, connection: BaseDatabaseWrapper) -> Any:
    pk = tracked.history_model._meta.pk
    assert pk is not None
    return pk.get_db_prep_value(value, connection)


def _normalise_id(tracked: TrackedModel, value: Any) -> Any:
    pk = tracked.history_model._meta.pk
    assert pk is not None
    return pk.to_python(value)


# -- the two queries of a page -----------------------------------------------------------------


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


def _load_rows(
    using: str, keys: Sequence[tuple[TrackedModel, Any]]
) -> dict[tuple[str, Any], Model]:
    """Full history rows for ``keys``: one ``UNION ALL`` over the models they belong to."""
    connection = connections[using]
    by_model: dict[str, list[Any]] = defaultdict(list)
    described: dict[str, TrackedModel] = {}
    for t, hid in keys:
        by_model[t.label].append(hid)
        described[t.label] = t
    found: dict[tuple[str, Any], Model] = {}
    groups: list[list[TrackedModel]] = [[]]
    width = 0
    for label in sorted(by_model):
        t = described[label]
        columns = len(t.history_model._meta.concrete_fields)
        if groups[-1] and width + columns > _COLUMNS_PER_QUERY:
            groups.append([])
            width = 0
        groups[-1].append(t)
        width += columns
    for group in groups:
        if group:
            found.update(_load_group(using, connection, group, by_model))
    return found


@dataclass(frozen=True)
class _LoadPlan:
    """The ``SELECT`` of each model of a group in one ``UNION ALL`` (see :func:`_plan`)."""

    #: Per model: the branch's select list (without the model index), table and key column.
    selects: tuple[str, ...]
    tables: tuple[str, ...]
    pk_columns: tuple[str, ...]
    #: Per model: the result column (after the model index) of each concrete field.
    layout: tuple[tuple[int, ...], ...]
    #: The number of shared columns.
    width: int
    #: Per model: :attr:`selects` with each column named ``koherent_c<n>`` (a first branch
    #: names the columns of a ``UNION``).
    named_selects: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def _cached_plan(group: tuple[TrackedModel, ...], alias: str, vendor: str) -> _LoadPlan:
    return _plan(group, connections[alias])


def _plan(group: Sequence[TrackedModel], connection: BaseDatabaseWrapper) -> _LoadPlan:
    r"""Lay the models' columns out in one ``UNION ALL``, sharing columns between models.

    A column holds one type, and the n-th field of a type of every model goes to the n-th
    column of that type: models of similar shape need about as many columns as one of them,
    not the sum of their widths. (PostgreSQL plans a wide ``UNION`` slowly: a few
    milliseconds for ten models of a dozen fields, against a fraction of one for the narrow
    layout. SQLite converts a column's values by the declared type of its first branch, so
    there too a column must keep one type.) Columns a model does not use hold ``NULL``\ s,
    typed on PostgreSQL, which types the columns of a ``UNION`` pairwise from the left: an
    untyped ``NULL`` in the first two branches would make a column text.
    """
    postgres = connection.vendor == "postgresql"
    types: list[str] = []
    columns_of_type: dict[str, list[int]] = defaultdict(list)
    layout: list[tuple[int, ...]] = []
    for t in group:
        seen: dict[str, int] = defaultdict(int)
        placement: list[int] = []
        for f in t.history_model._meta.concrete_fields:
            db_type = str(f.cast_db_type(connection) if postgres else f.db_type(connection))
            key = re.sub(r"\(.*?\)", "", db_type)  # varchar(20) and varchar(50) share
            nth = seen[key]
            seen[key] += 1
            shared = columns_of_type[key]
            if nth == len(shared):
                shared.append(len(types))
                types.append(db_type)
            placement.append(shared[nth])
        layout.append(tuple(placement))
    nulls = [f"CAST(NULL AS {db_type})" if postgres else "NULL" for db_type in types]
    selects = []
    named_selects = []
    pk_columns = []
    for t, columns in zip(group, layout, strict=True):
        select = list(nulls)
        for f, column in zip(t.history_model._meta.concrete_fields, columns, strict=True):
            select[column] = _quoted(f, connection)
        selects.append(", ".join(select))
        named_selects.append(", ".join(f"{e} AS koherent_c{n}" for n, e in enumerate(select)))
        pk = t.history_model._meta.pk
        assert pk is not None
        pk_columns.append(_quoted(pk, connection))
    return _LoadPlan(
        selects=tuple(selects),
        tables=tuple(_table(t.history_model, connection) for t in group),
        pk_columns=tuple(pk_columns),
        layout=tuple(layout),
        width=len(types),
        named_selects=tuple(named_selects),
    )


def _load_group(
    using: str,
    connection: BaseDatabaseWrapper,
    group: Sequence[TrackedModel],
    ids: dict[str, list[Any]],
) -> dict[tuple[str, Any], Model]:
    plan = _cached_plan(tuple(group), using, connection.vendor)
    postgres = connection.vendor == "postgresql"
    branches: list[str] = []
    params: list[Any] = []
    for index, t in enumerate(group):
        wanted = [_id_param(t, hid, connection) for hid in ids[t.label]]
        if postgres:  # one array parameter: the same SQL whatever the number of rows
            condition = "= ANY(%s)"
            params.append(wanted)
        else:
            condition = f"IN ({', '.join(['%s'] * len(wanted))})"
            params.extend(wanted)
        branches.append(
            f"SELECT {index}, {plan.selects[index]} FROM {plan.tables[index]} "
            f"WHERE {plan.pk_columns[index]} {condition}"
        )
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches), params)
        fetched = cursor.fetchall()
    rows = _build_rows(using, connection, group, plan, fetched, offset=1)
    return {(group[raw[0]].label, row.pk): row for raw, row in zip(fetched, rows, strict=True)}


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


def _build_rows(
    using: str,
    connection: BaseDatabaseWrapper,
    group: Sequence[TrackedModel],
    plan: _LoadPlan,
    fetched: Sequence[Sequence[Any]],
    offset: int,
) -> list[Model]:
    """Model instances from rows laid out by ``plan``, the model index in their column 0."""
    builders = [_builder(t.history_model, using, connection) for t in group]
    direct = [b.builds_directly() for b in builders]
    rows = []
    for raw in fetched:
        index = raw[0]
        values = [raw[column + offset] for column in plan.layout[index]]
        rows.append(builders[index].build(values, direct[index]))
    return rows


class _RowBuilder:
    """Model instances from raw column values, as ``Model.from_db`` makes them.

    The converters of the backend and the fields are applied where there are any. Without
    ``pre_init``/``post_init`` receivers for the model, the instance is built directly from
    its attribute values (what ``Model.__init__`` ends up doing for a row from the database,
    without its per-field work); otherwise through ``from_db``. One builder per model and
    connection is kept (see :func:`_builder`).
    """

    def __init__(self, model: type[Model], using: str, connection: BaseDatabaseWrapper) -> None:
        self.model = model
        self.using = using
        self.connection = connection
        fields = model._meta.concrete_fields
        self.attnames = [f.attname for f in fields]
        self.converters = [
            (i, convs, col)
            for i, (convs, col) in enumerate(_converters(model, connection))
            if convs
        ]

    def builds_directly(self) -> bool:
        """Whether no ``pre_init``/``post_init`` receiver listens to the model (now)."""
        model = self.model
        return not (
            signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)
        )

    def build(self, values: list[Any], direct: bool) -> Model:
        for i, convs, col in self.converters:
            values[i] = _convert(values[i], convs, col, self.connection)
        if not direct:
            return self.model.from_db(self.using, self.attnames, values)
        obj = self.model.__new__(self.model)
        obj.__dict__.update(zip(self.attnames, values, strict=True))
        state = ModelState()
        state.adding = False
        state.db = self.using
        obj._state = state
        return obj


_BUILDERS: weakref.WeakKeyDictionary[Any, dict[type[Model], _RowBuilder]] = (
    weakref.WeakKeyDictionary()
)


def _builder(model: type[Model], using: str, connection: BaseDatabaseWrapper) -> _RowBuilder:
    """The row builder of ``model`` on ``connection`` (made once per connection)."""
    per_connection = _BUILDERS.get(connection)
    if per_connection is None:
        per_connection = _BUILDERS[connection] = {}
    builder = per_connection.get(model)
    if builder is None or builder.using != using:
        builder = per_connection[model] = _RowBuilder(model, using, connection)
    return builder


# -- public API --------------------------------------------------------------------------------


class AssignationHistory:
    """Every history row written under one assignation, of every tracked model.

    Made by :func:`history_for_assignation`. Lazy and re-iterable; nothing is fetched until
    it is iterated or paged::

        history = koherent.history_for_assignation(assignation_id)
        for entry in history:          # HistoryEntry values, in order
            entry.model_label, entry.kind, entry.row
        for row in history.rows():     # the history rows themselves (simple-history models)
            ...
        page = history.page(first=50)  # one page; then history.page(50, after=page.end_cursor)
        history.count(), history.counts()
    """

    def __init__(
        self, assignation_id: str, *, using: str | None = None, batch_size: int | None = None
    ) -> None:
        self.assignation_id = assignation_id
        self.using = using or history_database(assignation_id)
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def __repr__(self) -> str:
        return f"<AssignationHistory {self.assignation_id!r} on {self.using!r}>"

    def _tracked(self) -> tuple[TrackedModel, ...]:
        """The tracked models whose tables may hold rows of the assignation.

        Those on its record's list of touched models (one query by primary key, see
        :mod:`koherent.records`); every tracked model when the list is not known (no record,
        a record older than the list, rows written by raw SQL).
        """
        from koherent.records import touched_models

        tracked = tracked_models(self.using)
        touched = touched_models(self.assignation_id, self.using)
        if touched is None:
            return tracked
        return tuple(t for t in tracked if t.label in touched)

    def page(self, first: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> HistoryPage:
        """Up to ``first`` rows after the cursor ``after`` (from the start without one).

        After one lookup of the tables the assignation touched: one query for the first
        page, two for a later one, whatever ``first`` and the depth
        of the page. Raises
        :class:`InvalidCursor` for a cursor this module did not make.
        """
        if first < 1:
            raise ValueError("first must be at least 1")
        cursor = _decode_cursor(after) if after is not None else None
        return self._page(first, cursor)

    def _page(
        self, first: int, cursor: _Cursor | None, tracked: tuple[TrackedModel, ...] | None = None
    ) -> HistoryPage:
        if tracked is None:
            tracked = self._tracked()
        if not tracked:
            return HistoryPage(rows=(), has_next=False)
        if cursor is None:
            found = _first_page(self.using, tracked, self.assignation_id, first + 1)
            if found is not None:
                return HistoryPage(rows=tuple(found[:first]), has_next=len(found) > first)
        keys = _page_keys(self.using, tracked, self.assignation_id, cursor, first + 1)
        has_next = len(keys) > first
        keys = keys[:first]
        if not keys:
            return HistoryPage(rows=(), has_next=False)
        loaded = _load_rows(self.using, keys)
        rows = tuple(loaded[(t.label, hid)] for t, hid in keys if (t.label, hid) in loaded)
        return HistoryPage(rows=rows, has_next=has_next)

    def pages(self, size: int | None = None) -> Iterator[HistoryPage]:
        """Every page in order, ``size`` rows each (the batch size by default)."""
        size = size or self.batch_size
        cursor: _Cursor | None = None
        tracked = self._tracked()
        while True:
            page = self._page(size, cursor, tracked)
            if page.rows:
                yield page
            if not page.has_next or not page.rows:
                return
            last = page.rows[-1]
            cursor = _Cursor(
                date=last.history_date,  # type: ignore[attr-defined]
                label=tracked_model(type(last)).label,
                history_id=last.pk,
            )

    def __iter__(self) -> Iterator[HistoryEntry]:
        """Every row as a :class:`HistoryEntry`, in order (the same as :meth:`entries`)."""
        return self.entries()

    def rows(self) -> Iterator[Model]:
        """Every history row itself (a simple-history model instance), in order."""
        for page in self.pages():
            yield from page.rows

    def entries(self) -> Iterator[HistoryEntry]:
        """Every row as a :class:`HistoryEntry`, in order."""
        for page in self.pages():
            yield from page.entries

    def counts(self) -> dict[str, int]:
        """The number of rows per tracked model label, for the models with rows (two queries:
        the touched tables, then the counts)."""
        return _counts_for(self.using, self._tracked(), self.assignation_id)

    def count(self) -> int:
        """The number of rows (two queries)."""
        return sum(self.counts().values())

    def exists(self) -> bool:
        """Whether the assignation wrote any history row."""
        return bool(self.page(first=1).rows)

    def models(self) -> list[TrackedModel]:
        """The tracked models the assignation wrote history for (two queries)."""
        tracked = self._tracked()
        counts = _counts_for(self.using, tracked, self.assignation_id)
        return [t for t in tracked if t.label in counts]


def history_for_assignation(
    assignation_id: str, *, using: str | None = None, batch_size: int | None = None
) -> AssignationHistory:
    """Every history row of every tracked model written under ``assignation_id``.

    Returns a lazy :class:`AssignationHistory`: iterate it for the :class:`HistoryEntry` of
    each row in order (``history_date``, then model label, then ``history_id``; ``.rows()``
    gives the history rows themselves), fetched ``batch_size`` rows
    (default 500) at a time, after one lookup of the tables the assignation touched: one
    query for the first batch and two for each later one; or
    take :meth:`~AssignationHistory.page`\\ s with cursors. ``using`` names the database;
    without it, the one the database router reads the assignation's history from (see
    :mod:`koherent.routing`).
    """
    return AssignationHistory(assignation_id, using=using, batch_size=batch_size)


def _counts_for(
    using: str, tracked: Sequence[TrackedModel], assignation_id: str
) -> dict[str, int]:
    connection = connections[using]
    counts: dict[str, int] = {}
    for chunk in chunks(tracked, _TABLES_PER_QUERY):
        branches = []
        params: list[Any] = []
        for index, t in enumerate(chunk):
            hm = t.history_model
            branches.append(
                f"SELECT {index}, COUNT(*) FROM {_table(hm, connection)} "
                f"WHERE {_column(hm, 'assignation_id', connection)} = %s"
            )
            params.append(assignation_id)
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(branches), params)
            for index, count in cursor.fetchall():
                if count:
                    counts[chunk[index].label] = int(count)
    return counts


def load_entries(
    keys: Sequence[tuple[str, Any]], *, using: str | None = None
) -> list[HistoryEntry | None]:
    """The entries of ``(model_label, history_id)`` keys, in the order given.

    ``None`` for a key that names no row (or no tracked model). One query for all the keys
    (a ``UNION ALL`` over their models): a DataLoader's batch function.
    """
    resolved: list[tuple[TrackedModel, Any] | None] = []
    for label, history_id in keys:
        try:
            t = tracked_model(label)
            resolved.append((t, _normalise_id(t, history_id)))
        except Exception:  # an unknown label or an id of the wrong form: no row
            resolved.append(None)
    wanted = [key for key in resolved if key is not None]
    by_db: dict[str, list[tuple[TrackedModel, Any]]] = defaultdict(list)
    for t, hid in wanted:  # each model's rows from the database the router reads it from
        by_db[using or str(router.db_for_read(t.history_model))].append((t, hid))
    loaded = {
        found: row for db, part in by_db.items() for found, row in _load_rows(db, part).items()
    }
    result: list[HistoryEntry | None] = []
    for key in resolved:
        row = None if key is None else loaded.get((key[0].label, key[1]))
        result.append(None if row is None or key is None else HistoryEntry._build(key[0], row))
    return result


def effective_changes(
    items: Sequence[HistoryEntry | Model], *, using: str | None = None
) -> list[list[FieldChange]]:
    """The field changes of each entry (or history row), in the order given.

    A creation lists every tracked field (``old`` is ``None``) and its non-empty tracked
    many-to-many fields; a deletion every tracked field (``new`` is ``None``); an update the
    fields whose value differs from the object's previous history row, many-to-many fields
    included. Queries: one per model for the previous rows of its updates, plus one per
    tracked many-to-many field of a model with entries; never one per entry.
    """
    rows: list[Model] = [item.row if isinstance(item, HistoryEntry) else item for item in items]
    by_model: dict[TrackedModel, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_model[tracked_model(type(row))].append(index)
    result: list[list[FieldChange]] = [[] for _ in rows]
    for tracked, indexes in by_model.items():
        model_rows = [rows[i] for i in indexes]
        db = using or model_rows[0]._state.db or str(router.db_for_read(tracked.history_model))
        for i, changes in zip(indexes, _changes_of_model(db, tracked, model_rows), strict=True):
            result[i] = changes
    return result


def previous_rows(
    using: str, tracked: TrackedModel, points: Sequence[tuple[Any, dt.datetime, Any]]
) -> list[Model]:
    """The row just before each ``(object key, history_date, history_id)`` point, in one query.

    Points with no earlier row have none in the result. The points travel in the query as a
    ``VALUES`` list and each lookup is one backward step in the ``(<object key>,
    history_date, history_id)`` index (a ``LATERAL`` join on PostgreSQL, a correlated
    subquery elsewhere).
    """
    if not points:
        return []
    connection = connections[using]
    hm = tracked.history_model
    table = _table(hm, connection)
    key_field: Any = hm._meta.get_field(tracked.history_key)
    key = _quoted(key_field, connection)
    date_field: Any = hm._meta.get_field("history_date")
    date = _quoted(date_field, connection)
    pk = hm._meta.pk
    assert pk is not None
    hid = _quoted(pk, connection)
    params: list[Any] = []
    for object_id, when, history_id in points:
        params.append(key_field.get_db_prep_value(object_id, connection))
        params.append(_date_param(when, connection))
        params.append(_id_param(tracked, history_id, connection))
    columns = ", ".join(f"p.{_quoted(f, connection)}" for f in hm._meta.concrete_fields)
    latest = f"ORDER BY q.{date} DESC, q.{hid} DESC LIMIT 1"
    if connection.vendor == "postgresql":
        values = typed_values([key_field, date_field, pk], len(points), connection)
        sql = (
            f"SELECT {columns} FROM (VALUES {values}) e(k, d, h) CROSS JOIN LATERAL "
            f"(SELECT q.* FROM {table} q WHERE q.{key} = e.k "
            f"AND (q.{date}, q.{hid}) < (e.d, e.h) {latest}) p"
        )
    else:
        values = ", ".join(["(%s, %s, %s)"] * len(points))
        sql = (
            f"SELECT {columns} FROM {table} p WHERE p.{hid} IN ("
            f"SELECT (SELECT q.{hid} FROM {table} q WHERE q.{key} = e.column1 "
            f"AND (q.{date}, q.{hid}) < (e.column2, e.column3) {latest}) "
            f"FROM (VALUES {values}) e)"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    builder = _builder(hm, using, connection)
    direct = builder.builds_directly()
    return [builder.build(list(raw), direct) for raw in fetched]


def _previous_rows(db: str, tracked: TrackedModel, rows: Sequence[Model]) -> dict[Any, Model]:
    """The row before each of ``rows`` for the same object, by history id, in one query."""
    candidates: dict[Any, list[Model]] = defaultdict(list)
    points = [(tracked.object_id_of(row), row.history_date, row.pk) for row in rows]  # type: ignore[attr-defined]
    for prev in previous_rows(db, tracked, points):
        candidates[tracked.object_id_of(prev)].append(prev)
    result: dict[Any, Model] = {}
    for row in rows:
        key = (row.history_date, row.pk)  # type: ignore[attr-defined]
        earlier = [
            p
            for p in candidates.get(tracked.object_id_of(row), ())
            if (p.history_date, p.pk) < key  # type: ignore[attr-defined]
        ]
        if earlier:
            result[row.pk] = max(earlier, key=lambda p: (p.history_date, p.pk))  # type: ignore[attr-defined]
    return result


def m2m_snapshots(
    db: str, tracked: TrackedModel, history_ids: Iterable[Any]
) -> dict[str, dict[Any, list[Any]]]:
    """Per tracked m2m field name: history id -> sorted keys of the related objects.

    One query per tracked many-to-many field of the model.
    """
    ids = list(history_ids)
    result: dict[str, dict[Any, list[Any]]] = {}
    for m2m in tracked.m2m:
        sets: dict[Any, list[Any]] = {hid: [] for hid in ids}
        if ids:
            rows = m2m.history_model._default_manager.using(db).filter(history_id__in=ids)
            for hid, target in rows.values_list("history_id", m2m.target_attname):
                sets.setdefault(hid, []).append(target)
        result[m2m.field.name] = {hid: sorted(targets) for hid, targets in sets.items()}
    return result


def _changes_of_model(
    db: str, tracked: TrackedModel, rows: Sequence[Model]
) -> list[list[FieldChange]]:
    updates = [row for row in rows if row.history_type == "~"]  # type: ignore[attr-defined]
    previous = _previous_rows(db, tracked, updates)
    snapshot_ids = [row.pk for row in rows if row.history_type != "-"]  # type: ignore[attr-defined]
    snapshot_ids += [prev.pk for prev in previous.values()]
    snapshots = m2m_snapshots(db, tracked, snapshot_ids) if tracked.m2m else {}
    result: list[list[FieldChange]] = []
    for row in rows:
        kind = row.history_type  # type: ignore[attr-defined]
        changes: list[FieldChange] = []
        if kind == "+":
            for f in tracked.fields:
                changes.append(FieldChange(f.name, None, getattr(row, f.attname)))
            for name, sets in snapshots.items():
                if sets.get(row.pk):
                    changes.append(FieldChange(name, None, sets[row.pk]))
        elif kind == "-":
            for f in tracked.fields:
                changes.append(FieldChange(f.name, getattr(row, f.attname), None))
        else:
            prev = previous.get(row.pk)
            for f in tracked.fields:
                new = getattr(row, f.attname)
                old = None if prev is None else getattr(prev, f.attname)
                if prev is None or old != new:
                    changes.append(FieldChange(f.name, old, new))
            for name, sets in snapshots.items():
                new_set = sets.get(row.pk, [])
                old_set = None if prev is None else sets.get(prev.pk, [])
                if old_set != new_set:
                    changes.append(FieldChange(name, old_set, new_set))
        result.append(changes)
    return result


# -- assignations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignationSummary:
    """An assignation record with the number of history rows written under it."""

    assignation: Assignation
    change_count: int


def assignations(
    *,
    user: Any = None,
    app: str | None = None,
    origin: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    parent: str | None = None,
    using: str | None = None,
) -> QuerySet[Assignation]:
    """Assignation records, newest first, filtered by what is given.

    ``user`` takes a user or a primary key; ``since`` and ``until`` bound ``created``
    (inclusive, exclusive). Only assignations with a record are listed (see the
    ``RECORD_ASSIGNATIONS`` setting).
    """
    from koherent.models import Assignation

    qs = Assignation.objects.using(record_database(using)).all()
    if user is not None:
        qs = qs.filter(user_pk=str(getattr(user, "pk", user)))
    if app is not None:
        qs = qs.filter(app=app)
    if origin is not None:
        qs = qs.filter(origin=origin)
    if since is not None:
        qs = qs.filter(created__gte=since)
    if until is not None:
        qs = qs.filter(created__lt=until)
    if parent is not None:
        qs = qs.filter(parent_id=parent)
    return qs.order_by("-created", "id")


def change_counts(assignation_ids: Iterable[str], *, using: str | None = None) -> dict[str, int]:
    """The number of history rows of each assignation (0 for none), in one query.

    A ``UNION ALL`` of one grouped count per tracked history table, using the assignation
    index. ``using`` names the database; without it, every database the router reads tracked
    history from (one query per database).
    """
    ids = list(dict.fromkeys(assignation_ids))
    counts = dict.fromkeys(ids, 0)
    if using is None:
        for each in history_databases():
            for key, count in change_counts(ids, using=each).items():
                counts[key] += count
        return counts
    db = using
    tracked = tracked_models(db)
    if not ids or not tracked:
        return counts
    connection = connections[db]
    limit = connection.features.max_query_params
    for id_part in chunks(ids, 5_000 if limit is None else limit):
        placeholders = ", ".join(["%s"] * len(id_part))
        if limit is None:
            prefix, id_list = "", placeholders
        else:
            # Where parameters are limited (SQLite), the ids go once per statement, in a
            # common table expression every branch reads, so the number of statements does
            # not grow with the number of ids times the number of tracked tables.
            values = ", ".join(["(%s)"] * len(id_part))
            prefix, id_list = (
                f"WITH koherent_ids(id) AS (VALUES {values}) ",
                ("SELECT id FROM koherent_ids"),
            )
        for chunk in chunks(tracked, _TABLES_PER_QUERY):
            branches = []
            params: list[Any] = list(id_part) if limit is not None else []
            for t in chunk:
                hm = t.history_model
                column = _column(hm, "assignation_id", connection)
                branches.append(
                    f"SELECT {column}, COUNT(*) FROM {_table(hm, connection)} "
                    f"WHERE {column} IN ({id_list}) GROUP BY {column}"
                )
                if limit is None:
                    params.extend(id_part)
            with connection.cursor() as cursor:
                cursor.execute(prefix + " UNION ALL ".join(branches), params)
                for assignation_id, count in cursor.fetchall():
                    counts[assignation_id] = counts.get(assignation_id, 0) + int(count)
    return counts


def list_assignations(
    *,
    user: Any = None,
    app: str | None = None,
    origin: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    parent: str | None = None,
    limit: int = 100,
    offset: int = 0,
    using: str | None = None,
) -> list[AssignationSummary]:
    """A page of :func:`assignations` with their change counts: two queries."""
    qs = assignations(
        user=user,
        app=app,
        origin=origin,
        since=since,
        until=until,
        parent=parent,
        using=using,
    )
    records = list(qs[offset : offset + limit])
    counts = change_counts([r.pk for r in records], using=using)
    return [AssignationSummary(assignation=r, change_count=counts.get(r.pk, 0)) for r in records]
