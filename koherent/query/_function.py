"""The first page of an assignation's history in one call of a PostgreSQL function (internal).

Read with SQL sent from Python, a first page costs two queries: the record's list of the
models the assignation touched, then one ``UNION ALL`` over their tables, which PostgreSQL
parses and plans afresh on every lookup unless the connection prepares statements. Both go
away with a PL/pgSQL function taking the assignation id: it reads the list, then each touched
table with a ``RETURN QUERY`` of its own, and PL/pgSQL keeps the plan of each statement for
the life of the session. A first page is then one round trip, and a lookup on a connection
that has made a few pays neither the parse nor the planning again (see docs/undo.md for the
figures).

``migrate`` creates the function (a ``post_migrate`` receiver, :func:`install`) in each
PostgreSQL database where the history of tracked models and Koherent's records live
together. Its name ends with a digest of its text, ``koherent_history_<digest>``, so that the
function of one set of tracked models and columns is never mistaken for another's: after a
model change the function of the new code exists once ``migrate`` ran, and until then the
reads take the two-query path. Functions of earlier versions are left in place for processes
of that version still running (``DROP FUNCTION`` them when none is).

A process learns whether the function exists once per database (one query on its first
read, none in the process that ran ``migrate``), and looks again a minute after finding it
missing.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, router, transaction

from koherent._config import get_setting
from koherent._logging import error_reason, get_logger
from koherent._registry import TrackedModel, tracked_models
from koherent._sql import text_literal
from koherent.query._rows import _build_rows, _cached_plan, _LoadPlan
from koherent.query._sql import (
    _COLUMNS_PER_QUERY,
    _TABLES_PER_QUERY,
    _column,
    _history_id_sql,
    _mixed_history_ids,
)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

logger = get_logger("koherent")

#: The start of every such function's name.
PREFIX = "koherent_history_"
#: Seconds before a process that found the function missing looks for it again.
RETRY_AFTER = 60.0
#: Models per bucket of the function's tests of the touched models (see _cached_definition).
_BUCKET = 8
#: The ``HISTORY_FUNCTION`` modes that create and use the function (``"never"`` does not).
_USED = ("persistent", "always")
#: Bounds of the module's caches (entries per database and set of tracked models).
_DEFINITIONS_KEPT = 16
_KNOWN_KEPT = 64


@dataclass(frozen=True)
class Reader:
    """The function of one database: its name, its ``CREATE`` statement, and how to read
    what it returns (every tracked model of the database, laid out as :func:`_plan` does)."""

    name: str
    create: str
    call: str
    group: tuple[TrackedModel, ...]
    plan: _LoadPlan


def _out_type(db_type: str) -> str:
    """A result column's type: without its modifier (``varchar(20)`` and ``varchar(50)``
    share a column), which ``RETURN QUERY`` then does not compare."""
    return re.sub(r"\(.*?\)", "", db_type)


def _definition(alias: str) -> Reader | None:
    """The function of database ``alias`` (``None`` where the two-query path is the only one:
    not PostgreSQL, records kept elsewhere, nothing tracked, too many tables or columns)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return None
    group = tracked_models(alias)
    routers = router.routers
    # By identity: the registry hands out the same tuple until the tracked models change,
    # and hashing every model of it would cost a read more than the rest of this lookup.
    key = (alias, id(group))
    cached = _definitions.get(key)
    if cached is not None and cached[0] is group and cached[1] is routers:
        return cached[2]
    found = _cached_definition(alias, group, id(routers))
    if len(_definitions) >= _DEFINITIONS_KEPT:
        _definitions.clear()
    _definitions[key] = (group, routers, found)
    return found


#: Per alias and tracked models (by identity): the models and routers a definition was made
#: for, and the definition.
_definitions: dict[tuple[str, int], tuple[tuple[TrackedModel, ...], Any, Reader | None]] = {}


@functools.lru_cache(maxsize=16)
def _cached_definition(alias: str, group: tuple[TrackedModel, ...], routers: int) -> Reader | None:
    from koherent._assignations import Assignation, AssignationModel, record_database

    connection = connections[alias]
    if not group or len(group) > _TABLES_PER_QUERY or record_database(alias) != alias:
        return None
    plan = _cached_plan(group, alias, connection.vendor)
    if plan.width > _COLUMNS_PER_QUERY:
        return None
    quote = connection.ops.quote_name
    cast = _mixed_history_ids(group)
    first = group[0].history_model
    date_field: Any = first._meta.get_field("history_date")
    date_type = _out_type(str(date_field.cast_db_type(connection)))
    pk = first._meta.pk
    assert pk is not None
    id_type = "text" if cast else _out_type(str(pk.cast_db_type(connection)))
    columns = [
        "koherent_m integer",
        f"koherent_date {date_type}",
        f"koherent_id {id_type}",
        *(f"koherent_c{n} {_out_type(db_type)}" for n, db_type in enumerate(plan.types)),
    ]
    record, entry = Assignation._meta, AssignationModel._meta

    def col(meta: Any, name: str) -> str:
        return quote(str(meta.get_field(name).column))

    branches = []
    for index, t in enumerate(group):
        hm = t.history_model
        hid = _history_id_sql(t, connection, cast)
        branches.append(
            f"IF v_touched IS NULL OR {text_literal(t.label)} = ANY(v_touched) THEN\n"
            f"RETURN QUERY SELECT {index}, CAST({_column(hm, 'history_date', connection)} AS "
            f"{date_type}), CAST({hid} AS {id_type}), {plan.selects[index]} "
            f"FROM {plan.tables[index]} "
            f"WHERE {_column(hm, 'assignation_id', connection)} = p_assignation;\n"
            "END IF;"
        )
    if len(group) > 2 * _BUCKET:
        # Checked bucket by bucket: a project tracking many models pays a test per bucket
        # and per model of the buckets the assignation touched, not one per tracked model.
        bucketed = []
        for start in range(0, len(group), _BUCKET):
            labels = ", ".join(text_literal(t.label) for t in group[start : start + _BUCKET])
            bucketed.append(
                f"IF v_touched IS NULL OR v_touched && ARRAY[{labels}]::text[] THEN\n"
                + "\n".join(branches[start : start + _BUCKET])
                + "\nEND IF;"
            )
        branches = bucketed
    body = "\n".join(
        [
            "#variable_conflict use_column",
            "DECLARE",
            "v_recorded boolean;",
            "v_touched text[];",
            "BEGIN",
            # The record's flag and its list (koherent.records.touched_models): without a
            # record, or with one whose list is not complete, every table is read.
            f"SELECT r.{col(record, 'models_recorded')}, "
            f"COALESCE(array_agg(m.{col(entry, 'model')}) "
            f"FILTER (WHERE m.{col(entry, 'model')} IS NOT NULL), '{{}}') "
            "INTO v_recorded, v_touched "
            f"FROM {quote(record.db_table)} r LEFT JOIN {quote(entry.db_table)} m "
            f"ON m.{col(entry, 'assignation')} = r.{col(record, 'id')} "
            f"WHERE r.{col(record, 'id')} = p_assignation "
            f"GROUP BY r.{col(record, 'models_recorded')};",
            "IF NOT FOUND OR NOT v_recorded THEN",
            "v_touched := NULL;",
            "END IF;",
            *branches,
            "END",
        ]
    )
    signature = f"(p_assignation text) RETURNS TABLE ({', '.join(columns)})"
    text = f"{signature} LANGUAGE plpgsql STABLE AS $koherent$\n{body}\n$koherent$"
    name = PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]
    shared = ", ".join(f"koherent_c{n}" for n in range(plan.width))
    return Reader(
        name=name,
        create=f"CREATE OR REPLACE FUNCTION {quote(name)}{text}",
        call=(
            f"SELECT koherent_m, koherent_id, {shared} FROM {quote(name)}(%s) "
            "ORDER BY koherent_date, koherent_m, koherent_id LIMIT %s"
        ),
        group=group,
        plan=plan,
    )


# -- whether it exists ------------------------------------------------------------------------

#: ``(alias, name)`` -> ``True`` (exists), or the time before which not to look again.
_known: dict[tuple[str, str], bool | float] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget which functions exist (for tests that drop or create them)."""
    with _lock:
        _known.clear()
    _definitions.clear()
    _cached_definition.cache_clear()


def _now() -> float:
    return time.monotonic()


def _in_database(cursor: Any, reader: Reader) -> bool:
    """Whether the database of ``cursor`` has ``reader``'s function (one query)."""
    cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{reader.name}(text)"])
    row = cursor.fetchone()
    return bool(row and row[0])


def _exists(alias: str, reader: Reader) -> bool:
    state = _known.get((alias, reader.name))
    if state is True:
        return True
    if isinstance(state, float) and _now() < state:
        return False
    try:
        with connections[alias].cursor() as cursor:
            found = _in_database(cursor, reader)
    except DatabaseError:
        found = False
    _remember(alias, reader, found)
    return found


def _remember(alias: str, reader: Reader, found: bool) -> None:
    with _lock:
        if len(_known) >= _KNOWN_KEPT:
            _known.clear()
        _known[(alias, reader.name)] = True if found else _now() + RETRY_AFTER


def _persists(settings_dict: dict[str, Any]) -> bool:
    """Whether connections made with ``settings_dict`` (a ``DATABASES`` entry) outlive a
    request (``CONN_MAX_AGE`` other than 0, or Django's connection pool), so that the plans
    of the function's statements are reused."""
    options = settings_dict.get("OPTIONS") or {}
    return settings_dict.get("CONN_MAX_AGE", 0) != 0 or bool(options.get("pool"))


def reader(alias: str) -> Reader | None:
    """The function of ``alias`` when it exists and the reads may use it, else ``None``.

    With ``HISTORY_FUNCTION = "persistent"`` (the default) only on connections that persist:
    a new server connection plans the function's statements on its first call (and loads
    PL/pgSQL), which costs a lookup more than the two queries do.
    """
    mode = get_setting("HISTORY_FUNCTION")
    if mode not in _USED or not get_setting("RECORD_ASSIGNATIONS"):
        return None  # off (or a value koherent.E004 reports), or no list to read
    if mode == "persistent" and not _persists(connections[alias].settings_dict):
        return None
    found = _definition(alias)
    if found is None or not _exists(alias, found):
        return None
    return found


def first_page(alias: str, found: Reader, assignation_id: str, limit: int) -> list[Model] | None:
    """The first ``limit`` rows of the assignation (one query), or ``None`` when the call
    failed outside a transaction (the function gone: then the two-query path reads them).

    In a transaction the error is raised: it aborted the transaction.
    """
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute(found.call, [assignation_id, limit])
            fetched = cursor.fetchall()
    except DatabaseError as exc:
        if connection.in_atomic_block:
            raise
        _remember(alias, found, False)
        logger.warning(
            "koherent: could not read history through %s (%s); reading it without",
            found.name,
            error_reason(exc),
        )
        return None
    return _build_rows(alias, connection, found.group, found.plan, fetched, offset=2)


def install(alias: str) -> str | None:
    """Create the function of database ``alias`` (if it has one); its name, or ``None``.

    Nothing is written when it exists: its name stands for its text, and replacing it would
    make every connection plan its statements again.
    """
    found = _definition(alias)
    if found is None:
        return None
    connection: BaseDatabaseWrapper = connections[alias]
    # In a savepoint: a failure leaves a transaction around it (a test's) usable.
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if not _in_database(cursor, found):
            cursor.execute(found.create)
    _remember(alias, found, True)
    return found.name


def on_post_migrate(using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver: :func:`install` in the migrated database.

    A database where it cannot be created (a role without ``CREATE`` on the schema, say) is
    logged and read with the two-query path.
    """
    if get_setting("HISTORY_FUNCTION") not in _USED:
        return
    try:
        install(using)
    except DatabaseError as exc:
        logger.warning(
            "koherent: could not create the history reading function in database %s (%s); "
            "assignation history is read without it",
            using,
            error_reason(exc),
        )


def forget(alias: str, names: list[str]) -> None:
    """Forget what the process knew of the functions ``names`` of ``alias`` (dropped)."""
    with _lock:
        for name in names:
            _known.pop((alias, name), None)
