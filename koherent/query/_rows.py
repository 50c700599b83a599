"""Full history rows of several models in one ``UNION ALL``, and their model instances (internal).

:func:`_load_rows` loads rows by ``(model, history id)``; :func:`_plan` lays the models'
columns out so that one ``UNION ALL`` can carry them; :class:`_RowBuilder` makes the model
instances, as ``Model.from_db`` would.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections
from django.db.models import signals
from django.db.models.base import ModelState

from koherent.query._sql import (
    _COLUMNS_PER_QUERY,
    _convert,
    _converters,
    _id_param,
    _quoted,
    _table,
)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

    from koherent._registry import TrackedModel


#: The type PostgreSQL reads through Django's (Python) timestamptz loader.
_TIMESTAMPTZ = "timestamp with time zone"


def _read_as_timestamp(f: Any, connection: BaseDatabaseWrapper) -> bool:
    """Whether ``f``'s column is read cast to ``timestamp`` (and made aware by
    :func:`_make_aware`): a ``timestamp with time zone`` column on PostgreSQL."""
    return connection.vendor == "postgresql" and str(f.cast_db_type(connection)) == _TIMESTAMPTZ


def _column_select(f: Any, connection: BaseDatabaseWrapper, prefix: str = "") -> str:
    """The select expression of ``f``'s column (see :func:`_read_as_timestamp`)."""
    column = prefix + _quoted(f, connection)
    return f"CAST({column} AS timestamp)" if _read_as_timestamp(f, connection) else column


def _select_list(
    model: type[Model], connection: BaseDatabaseWrapper, prefix: str = ""
) -> tuple[str, tuple[int, ...]]:
    """The select list of ``model``'s concrete fields, and the fields read as ``timestamp``
    (whose values :func:`_make_aware` gives the connection's time zone)."""
    fields = model._meta.concrete_fields
    columns = ", ".join(_column_select(f, connection, prefix) for f in fields)
    naive = tuple(i for i, f in enumerate(fields) if _read_as_timestamp(f, connection))
    return columns, naive


def _make_aware(
    values: list[Any], naive: Sequence[int], connection: BaseDatabaseWrapper
) -> list[Any]:
    """``values`` with the fields at ``naive`` given the connection's time zone (in place)."""
    zone = connection.timezone  # what Django's timestamptz loader gives (None: naive)
    for i in naive:
        if values[i] is not None:
            values[i] = values[i].replace(tzinfo=zone)
    return values


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
    #: Per model: the fields (by index) read as ``timestamp`` and made aware here (see
    #: :func:`_plan`).
    naive_dates: tuple[tuple[int, ...], ...] = ()
    #: The database type of each shared column (``timestamp`` for the ones read so).
    types: tuple[str, ...] = ()


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

    On PostgreSQL a ``timestamp with time zone`` column is read cast to ``timestamp`` (the
    same wall clock, in the session's time zone) and given the connection's time zone here:
    the value Django's own loader gives, without its per-value Python parsing (about 12 µs a
    value, most of the client's time on a page of history rows).
    """
    postgres = connection.vendor == "postgresql"
    types: list[str] = []
    columns_of_type: dict[str, list[int]] = defaultdict(list)
    layout: list[tuple[int, ...]] = []
    naive_dates: list[tuple[int, ...]] = []
    for t in group:
        seen: dict[str, int] = defaultdict(int)
        placement: list[int] = []
        naive: list[int] = []
        for i, f in enumerate(t.history_model._meta.concrete_fields):
            db_type = str(f.cast_db_type(connection) if postgres else f.db_type(connection))
            if _read_as_timestamp(f, connection):
                db_type = "timestamp"
                naive.append(i)
            key = re.sub(r"\(.*?\)", "", db_type)  # varchar(20) and varchar(50) share
            nth = seen[key]
            seen[key] += 1
            shared = columns_of_type[key]
            if nth == len(shared):
                shared.append(len(types))
                types.append(db_type)
            placement.append(shared[nth])
        layout.append(tuple(placement))
        naive_dates.append(tuple(naive))
    nulls = [f"CAST(NULL AS {db_type})" if postgres else "NULL" for db_type in types]
    selects = []
    named_selects = []
    pk_columns = []
    for t, columns in zip(group, layout, strict=True):
        select = list(nulls)
        for f, column in zip(t.history_model._meta.concrete_fields, columns, strict=True):
            select[column] = _column_select(f, connection)
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
        naive_dates=tuple(naive_dates),
        types=tuple(types),
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


def _build_rows(
    using: str,
    connection: BaseDatabaseWrapper,
    group: Sequence[TrackedModel],
    plan: _LoadPlan,
    fetched: Sequence[Sequence[Any]],
    offset: int,
) -> list[Model]:
    """Model instances from rows laid out by ``plan``, the model index in their column 0.

    A builder is looked up for the models that have rows only (``group`` may be every tracked
    model of the database, see :mod:`koherent.query._function`).
    """
    builders: dict[int, tuple[_RowBuilder, bool]] = {}
    rows = []
    for raw in fetched:
        index = raw[0]
        found = builders.get(index)
        if found is None:
            builder = _builder(group[index].history_model, using, connection)
            found = builders[index] = (builder, builder.builds_directly())
        values = [raw[column + offset] for column in plan.layout[index]]
        _make_aware(values, plan.naive_dates[index], connection)
        rows.append(found[0].build(values, found[1]))
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
        self.use_tz = settings.USE_TZ
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
    if builder is None or builder.using != using or builder.use_tz != settings.USE_TZ:
        # (The backends' converters of dates depend on USE_TZ, which tests change.)
        builder = per_connection[model] = _RowBuilder(model, using, connection)
    return builder
