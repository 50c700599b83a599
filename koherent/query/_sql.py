"""The SQL pieces of the history reads: quoted names, typed parameters, converters (internal).

The pieces shared with the revert (chunks of a list, typed ``VALUES`` rows) are in
:mod:`koherent._sql`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from koherent._registry import TrackedModel  # noqa: TC001 (the signatures read it)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

_TABLES_PER_QUERY = 200
#: Columns per ``UNION ALL`` of full rows (PostgreSQL allows 1,664).
_COLUMNS_PER_QUERY = 1000


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
