"""Trigger capture: handing the audit context to the PostgreSQL triggers.

A Django ``execute_wrapper``, installed on every PostgreSQL connection when it is created, hands
the context in effect to the triggers (:mod:`koherent._triggers`) with each writing statement
that names a trigger-captured table. The values are read from Koherent's context variable *when
the statement runs*, encoded as one text (:func:`encode`), and sent in one of two ways:

* **a leading comment** — ``/*koherent:1|<assignation>|<app>|…*/ UPDATE …`` — for the common
  statement: nothing more is sent or run, and the trigger reads it from ``current_query()``.
  The comment belongs to that statement only, so nothing can be left on a connection
  (persistent connections, Django's pool, PgBouncer in transaction mode, threads reusing a
  connection) or reach a later statement of the transaction;
* **a transaction-local setting** — ``SELECT set_config('koherent.context', …, true); UPDATE …``
  — for statements longer than :data:`COMMENT_LIMIT` (a row-level trigger would copy a long
  statement's text once per row) and for ``executemany`` (a statement of its own, in a
  transaction). The trigger reads the setting before the comment, so once a setting was sent in
  a transaction, the next statement sets it again — to its own context, or to ``''`` when it
  has none — and a statement without context is recorded unattributed, not under the earlier
  statement's context.

Statements that cannot take a prefix are left alone: reads, DDL (``CREATE INDEX
CONCURRENTLY`` cannot run in a transaction block), named (server-side) cursors, and statements
sent in a transaction that has already failed.

A session outside Django (psql) may set the per-value settings ``koherent.assignation_id``,
``koherent.app``, … itself; the triggers read them when a statement brings no context.

Where the router keeps Koherent's records in another database than the written table's, the
triggers are told to write no record (an empty origin) and the record, with the tables the
statement writes to on its list, is written from here where the router keeps it.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction

from koherent._config import get_setting
from koherent._django import add_execute_wrapper_first
from koherent._logging import get_logger
from koherent._trigger_context import (
    COMMENT_LIMIT,
    COMMENT_MARK,
    CONTEXT_SETTING,
    SETTING_NAMES,
    encode,
)
from koherent.capture import MODE_ATTRIBUTE, captured_by_trigger
from koherent.context import peek

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model

logger = get_logger("koherent")


# -- the context of one row: change reason and skip flag ------------------------------------

#: ``(db_table, primary key or "", reason, skip)`` of the instance being saved or deleted.
_row: ContextVar[tuple[str, str, str, bool] | None] = ContextVar("koherent_row", default=None)


@contextmanager
def row_context(instance: Model, *, adding: bool) -> Iterator[None]:
    """Hand ``instance``'s ``_change_reason`` and ``skip_history_when_saving`` to the trigger.

    Applies to the rows of the instance's table the statements of the block write: the row of
    that primary key, or any row of the table when the key is not known yet (an insert).
    """
    reason = getattr(instance, "_change_reason", None)
    skip = hasattr(instance, "skip_history_when_saving")
    if not reason and not skip:
        yield
        return
    pk = instance.pk
    key = "" if adding or pk is None else str(pk)
    token = _row.set((instance._meta.db_table, key, str(reason or ""), skip))
    try:
        yield
    finally:
        _row.reset(token)


def direct_save(
    instance: Model, save_kwargs: dict[str, Any]
) -> AbstractContextManager[None] | None:
    """The ``direct`` hook of :func:`koherent._transactions.make_saves_atomic` for a model
    configured for trigger capture: where the triggers capture it, the statement itself writes
    the history row (nothing to make atomic), and only the instance's change reason (or skip
    flag) is handed to the trigger."""
    model = type(instance)
    using = save_kwargs.get("using") or router.db_for_write(model, instance=instance)
    if not captured_by_trigger(model, using):
        return None
    return row_context(instance, adding=instance._state.adding)


_DELETE_MARK = "_koherent_delete_hand_off"


def make_deletes_hand_off(model: type[Model]) -> None:
    """Wrap ``model.delete`` so trigger capture sees the instance's ``_change_reason``."""
    original: Callable[..., Any] = model.delete
    if getattr(original, _DELETE_MARK, False):
        return

    @functools.wraps(original)
    def delete(self: Model, *args: Any, **kwargs: Any) -> Any:
        with row_context(self, adding=False):
            return original(self, *args, **kwargs)

    setattr(delete, _DELETE_MARK, True)
    model.delete = delete  # type: ignore[method-assign]


@contextmanager
def table_reason(model: type[Model], reason: str) -> Iterator[None]:
    """Hand ``reason`` to the trigger for every row of ``model``'s table the block writes."""
    token = _row.set((model._meta.db_table, "", reason, False))
    try:
        yield
    finally:
        _row.reset(token)


# -- the statement prefix -------------------------------------------------------------------

_WRITES = ("insert", "update", "delete", "with", "merge", "call")
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*\n|/\*.*?\*/)+", re.DOTALL)


def _writes(sql: str) -> bool:
    """Whether ``sql`` starts like a statement that can write rows (and take a prefix)."""
    head = sql[:12].lstrip(" \t\r\n(").lower()
    if head.startswith(_WRITES):
        return True
    if head.startswith(("--", "/*")):
        stripped = _LEADING_COMMENTS.sub("", sql, count=1)
        return stripped[:12].lstrip(" \t\r\n(").lower().startswith(_WRITES)
    return False


def _literal(value: str) -> str:
    """``value`` as an escape-string literal (valid whatever ``standard_conforming_strings``)."""
    cleaned = value.replace("\x00", "").replace("\\", "\\\\").replace("'", "''")
    return f"E'{cleaned}'"


_EMPTY_VALUES: tuple[str, ...] = ("",) * len(SETTING_NAMES)
#: The setter that clears a context set earlier in the transaction.
_CLEAR = f"SELECT set_config('{CONTEXT_SETTING}', '', true); "


def context_values(*, record: bool = True) -> tuple[str, ...]:
    """The values of the fields of :func:`encode` for a statement run now (empty strings: none).

    ``record=False`` leaves the origin empty: the triggers write no assignation record (the
    records of that database are kept in another, see :func:`hand_off`).
    """
    from koherent.exceptions import AssignationAccessDenied

    ctx = peek()
    row = _row.get()
    if ctx is None or (ctx.is_empty and ctx.task_id is None):
        if row is None:
            return _EMPTY_VALUES
        assignation_id = app = task_id = user_id = user_pk = origin = parent = ""
    else:
        user_id = user_pk = ""
        ref = ctx.user_ref
        if ref is not None:
            try:
                pk = ref.pk
                user = ref.for_history()
            except AssignationAccessDenied:
                logger.warning(
                    "koherent: the request's user may not join assignation %r; the rows this "
                    "statement writes are recorded unattributed",
                    ctx.assignation_id,
                )
                return _EMPTY_VALUES if row is None else (*_EMPTY_VALUES[:7], *_row_values(row))
            user_pk = "" if pk is None else str(pk)
            user_id = "" if user is None or user.pk is None else str(user.pk)
        assignation_id = ctx.assignation_id or ""
        app = ctx.app or ""
        task_id = ctx.task_id or ""
        parent = ctx.parent_assignation_id or ""
        records_on = record and get_setting("RECORD_ASSIGNATIONS")
        origin = (ctx.origin or "manual") if records_on else ""
    values = (assignation_id, app, task_id, user_id, user_pk, origin, parent)
    return (*values, *_row_values(row))


def _row_values(row: tuple[str, str, str, bool] | None) -> tuple[str, str, str]:
    if row is None:
        return ("", "", "")
    table, key, reason, skip = row
    return (f"{table}:{key}", reason, "1" if skip else "")


def encoded_context(*, record: bool = True) -> str:
    """The context in effect, encoded (:func:`encode`); ``""`` when there is none.

    Read for every statement, not once per context: a request's user is read when the
    statement runs (authentication may settle on it after the first write, see
    :class:`koherent._users.RequestUserRef`).
    """
    values = context_values(record=record)
    return "" if values is _EMPTY_VALUES else encode(values)


def context_comment(text: str) -> str:
    """The leading comment that hands the encoded context ``text`` to the triggers (it holds
    no ``%``: the same text whether the driver binds parameters into the statement or not)."""
    return f"{COMMENT_MARK}{text}*/ "


def context_setter(text: str) -> str:
    """The ``SELECT set_config('koherent.context', …, true); `` that hands ``text`` over."""
    return f"SELECT set_config('{CONTEXT_SETTING}', {_literal(text)}, true); "


def _in_failed_transaction(cursor: Any) -> bool:
    info = getattr(cursor.connection, "info", None)
    if info is not None:  # psycopg 3
        from psycopg.pq import TransactionStatus

        return bool(info.transaction_status == TransactionStatus.INERROR)
    status = cursor.connection.get_transaction_status()  # psycopg2
    return bool(status == 3)  # psycopg2.extensions.TRANSACTION_STATUS_INERROR


#: Set on a connection while its transaction may hold a ``koherent.context`` setting.
_HANDED_OFF = "_koherent_handed_off"


def hand_off(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Django ``execute_wrapper``: hand the audit context over with writing statements.

    A writing statement naming the table of a trigger-captured model gets the context in
    effect: as a leading comment, or as a setting for a long statement or an ``executemany``.
    Inside a transaction in which this connection sent a setting, the next statement, whatever
    it is (a ``SELECT`` of a function that writes, say), sets it again: to its own context, or
    to ``''``, so that no trigger reads the earlier statement's context.
    """
    cursor = context["cursor"]
    if isinstance(sql, bytes):
        text = sql.decode()
    elif isinstance(sql, str):
        text = sql
    else:  # a psycopg sql.Composed: left alone
        return execute(sql, params, many, context)
    writes = _writes(text)
    connection: BaseDatabaseWrapper = context["connection"]
    captured = writes and _names_captured_table(text)
    if not captured and not getattr(connection, _HANDED_OFF, False):
        # A read, or a write of tables captured otherwise, with no setting to clear: the
        # common statement, nothing to do.
        return execute(sql, params, many, context)
    if getattr(cursor, "name", None) or _in_failed_transaction(cursor):
        return execute(sql, params, many, context)
    in_transaction = connection.in_atomic_block or not connection.get_autocommit()
    handed_off = in_transaction and getattr(connection, _HANDED_OFF, False)
    if captured:
        here = not _records_elsewhere(connection)
        encoded = encoded_context(record=here)
        if not here and encoded:
            _record_elsewhere(text, connection.alias)
        if not handed_off and not many and _short(text, params):
            setattr(connection, _HANDED_OFF, False)
            if not encoded:
                return execute(sql, params, many, context)  # no context: the row is unattributed
            comment = context_comment(encoded)
            return _execute_with_prefix(execute, sql, text, params, context, comment)
        if not encoded and not handed_off:
            # Nothing to hand over, and nothing to clear: the setting is unset here.
            setattr(connection, _HANDED_OFF, False)
            return execute(sql, params, many, context)
        setattr(connection, _HANDED_OFF, in_transaction and bool(encoded))
        prefix = context_setter(encoded) if encoded else _CLEAR
    elif handed_off:
        prefix = _CLEAR
        setattr(connection, _HANDED_OFF, False)
    else:
        if not in_transaction:
            setattr(connection, _HANDED_OFF, False)
        return execute(sql, params, many, context)
    if many:
        return _hand_off_many(execute, sql, params, context, prefix)
    result = _execute_with_prefix(execute, sql, text, params, context, prefix)
    if _PSYCOPG3:
        cursor.nextset()  # the caller sees the result of its own statement
    return result


def _short(text: str, params: Any) -> bool:
    """Whether the statement, parameters bound, is short enough for the comment.

    The row-level update trigger copies the statement's text once per row: a long one (a
    ``bulk_update()``'s ``CASE``, a long ``IN`` list, a large text value bound client-side)
    gets the setting. An ``INSERT``'s and a ``DELETE``'s triggers are statement-level and read
    it once, whatever its length; their parameters (a ``bulk_create()``'s) are not counted.
    A value that is neither text nor a scalar (a ``JSONField``'s, which Django binds wrapped in
    the driver's JSON adapter; an ``ArrayField``'s list) counts with the length of its text,
    a binary one (``bytes``, ``bytearray``, ``memoryview``) with two characters a byte.
    """
    length = len(text)
    if length > COMMENT_LIMIT:
        return False
    if not params or text[:6].lower() in ("insert", "delete"):
        return True
    if isinstance(params, dict):
        params = params.values()
    elif not isinstance(params, (list, tuple)):
        return True
    for value in params:
        if isinstance(value, str):
            length += len(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            length += 2 * memoryview(value).nbytes  # bound as hex text, two characters a byte
        elif not isinstance(value, _SCALARS):
            length += len(str(getattr(value, "obj", value)))  # psycopg's Jsonb/Json keep .obj
        if length > COMMENT_LIMIT:
            return False
    return True


#: Parameter types whose bound text is short whatever their value.
_SCALARS = (
    int,
    float,
    decimal.Decimal,
    type(None),
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)


def _execute_with_prefix(
    execute: Callable[..., Any],
    sql: Any,
    text: str,
    params: Any,
    context: dict[str, Any],
    prefix: str,
) -> Any:
    prefixed = prefix + text
    statement = prefixed.encode() if isinstance(sql, bytes) else prefixed
    return execute(statement, params, False, context)


_captured_tables: re.Pattern[str] | None = None
#: The captured tables' names in lower case: a statement that contains none of them, as text,
#: names none (checked before the pattern, whose case-insensitive search with lookarounds
#: costs several microseconds on a statement of a few hundred characters).
_captured_names: tuple[str, ...] = ()


def _names_captured_table(sql: str) -> bool:
    """Whether ``sql`` names the table of a model captured by triggers."""
    global _captured_tables, _captured_names
    if _captured_tables is None:
        from django.apps import apps

        if not apps.ready:  # a statement while models load: hand over, remember nothing
            return True
        _captured_names = tuple(sorted(_table_names()))
        _captured_tables = _tables_pattern(_captured_names)
    lowered = sql.lower()
    if not any(name in lowered for name in _captured_names):
        return False
    return _captured_tables.search(sql) is not None


def _table_names() -> set[str]:
    """The tables of the models captured by triggers, in lower case (without a schema)."""
    from django.apps import apps

    return {
        model._meta.db_table.rsplit('"."', 1)[-1].strip('"').lower()
        for model in apps.get_models()
        if getattr(model, MODE_ATTRIBUTE, None) == "trigger"
    }


def _tables_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """A pattern finding any of ``names`` as a whole word (longest first), in any case."""
    names = tuple(sorted(names, key=len, reverse=True))
    if not names:
        return re.compile(r"(?!x)x")  # matches nothing
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"(?<![\w$])(?:{alternatives})(?![\w$])", re.IGNORECASE)


def forget_tables() -> None:
    """Forget the captured tables (after models were added at run time, in tests)."""
    global _captured_tables, _captured_names, _history_models
    _captured_tables = None
    _captured_names = ()
    _history_models = None


def _records_elsewhere(connection: BaseDatabaseWrapper) -> bool:
    """Whether the router keeps the records of the history on ``connection`` in another
    database (Koherent's tables are not migrated there)."""
    from django.db import router

    if not router.routers:
        return False
    from koherent._assignations import record_database

    return record_database(connection.alias, write=True) != connection.alias


#: The history model of each captured table, by table name (lower case).
_history_models: dict[str, type[Model]] | None = None


def _record_elsewhere(sql: str, alias: str) -> None:
    """The triggers of a database whose records live elsewhere write none: the record of the
    assignation in effect, and the tables ``sql`` writes to on its list, are written from here,
    where the router keeps them (as signal capture does)."""
    global _history_models
    from koherent import records

    if _history_models is None:
        from django.apps import apps

        from koherent._triggers import history_model_of

        _history_models = {
            model._meta.db_table.rsplit('"."', 1)[-1].strip('"').lower(): history_model_of(model)
            for model in apps.get_models()
            if getattr(model, MODE_ATTRIBUTE, None) == "trigger" and not model._meta.proxy
        }
    if _captured_tables is None or not context_values(record=False)[0]:
        return  # no assignation in effect (or the user may not join it): nothing to record
    for name in {match.lower() for match in _captured_tables.findall(sql)}:
        history_model = _history_models.get(name)
        if history_model is not None:
            records.touch(history_model, alias)


def _hand_off_many(
    execute: Callable[..., Any], sql: Any, params: Any, context: dict[str, Any], prefix: str
) -> Any:
    """``executemany``: psycopg sends each set of parameters as a prepared statement, which
    cannot hold two statements; the context goes first, in a statement of its own."""
    connection: BaseDatabaseWrapper = context["connection"]
    # The driver's own cursor: through Django's, this wrapper would see the setter as the
    # statement after a hand-off and forget that the context is in effect.
    driver_cursor = context["cursor"].cursor
    setter = prefix.rstrip("; ")
    if connection.in_atomic_block or not connection.get_autocommit():
        driver_cursor.execute(setter)
        return execute(sql, params, True, context)
    # In autocommit mode each statement is its own transaction: put both in one.
    with transaction.atomic(using=connection.alias):
        driver_cursor.execute(setter)
        return execute(sql, params, True, context)


def _is_psycopg3() -> bool:
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3
    except ImportError:  # pragma: no cover - no PostgreSQL driver installed
        return False
    return bool(is_psycopg3)


_PSYCOPG3 = _is_psycopg3()

#: Set when a model configured for trigger capture is prepared (connections need the wrapper).
_trigger_models_declared = False


def declare_trigger_model() -> None:
    """Called when a model configured for trigger capture is prepared."""
    global _trigger_models_declared
    _trigger_models_declared = True


def install(connection: BaseDatabaseWrapper) -> None:
    """Install :func:`hand_off` on ``connection`` (PostgreSQL, once)."""
    if connection.vendor != "postgresql" or not _trigger_models_declared:
        return
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding") is True:
        # Cannot send two statements in one (system check koherent.E074 when a captured
        # model writes there): writes through this connection are recorded unattributed.
        return
    add_execute_wrapper_first(connection, hand_off)


def on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: every new PostgreSQL connection hands off the context."""
    install(connection)


def install_on_open_connections() -> None:
    """Install the wrapper on connections opened before Koherent's app was ready."""
    for connection in connections.all(initialized_only=True):
        install(connection)
