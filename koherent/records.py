"""Lazy :class:`~koherent.models.Assignation` records, and the models each assignation touched.

The first history row an assignation writes creates its record; the first row it writes to
each tracked model adds that model to the record's list
(:class:`~koherent.models.AssignationModel`). Both are ``INSERT ... ON CONFLICT DO NOTHING``
(``INSERT OR IGNORE`` on SQLite), in the same transaction as the row. After that the process
knows they exist and writes nothing more for them: the steady state of an assignation is
simple-history's own statements.

**Cost.** On PostgreSQL (psycopg 3 with Django's default client-side binding) the record and
model-list inserts travel in the same round trip as the history row's ``INSERT``, as one
multi-statement query::

    SAVEPOINT koherent_record; INSERT INTO koherent_assignation ... ON CONFLICT DO NOTHING;
    INSERT INTO koherent_assignationmodel ... ON CONFLICT DO NOTHING;
    RELEASE SAVEPOINT koherent_record; INSERT INTO <history table> ... RETURNING ...

so the first tracked save of an assignation sends as many statements, and waits for as many
replies, as a later one. A history row saved outside any transaction on PostgreSQL (in
autocommit with ``ATOMIC_SAVES`` off) carries them as data-modifying ``WITH`` queries of its
own ``INSERT``, whatever the driver's binding: one statement, so one round trip and one
transaction for the row, its record and its list entry::

    WITH koherent_w0 AS (INSERT INTO koherent_assignation ... ON CONFLICT DO NOTHING),
         koherent_w1 AS (INSERT INTO koherent_assignationmodel ... ON CONFLICT DO NOTHING)
    INSERT INTO <history table> ... RETURNING ...

Elsewhere (SQLite, server-side binding in a transaction, MySQL) the inserts are statements of
their own before the history row's: on SQLite, in-process calls without a savepoint (a failing
statement does not abort an SQLite transaction); elsewhere in a savepoint, one round trip
each.

**Never a reason for a change to fail.** A record that cannot be written (the table is
missing because ``migrate`` has not run yet, say) is logged and skipped: the savepoint is
rolled back and the history row is written alone (outside a transaction, where the statement
failed as a whole, the row is written alone first, then the record statements are tried on
their own). A record is then left saying that its list
is incomplete (``models_recorded = FALSE``, inserted so or marked so) where that can be
written, so that a later change under the assignation cannot vouch for a list lacking the
model whose entry failed: readers scan every tracked table for such an assignation.
A record write failing because the connection is gone raises that error: the change fails
with it, in the same transaction.

**At most once, rollback-safe.** The process learns that a record (or a model of its list)
exists only when the transaction that wrote it commits. Until then the insert is remembered as
pending in *that* transaction; if the transaction, or the savepoint it was written in, rolls
back, the next change under the same assignation writes it again.

**For other write paths.** Whatever writes history rows on another path records them through
one of these, so that :func:`koherent.query.history_for_assignation` keeps finding them:

- :func:`touch` (Python): ensures the record and the model's entry, in statements of their
  own; for paths that write history in bulk (``bulk_history_create``, ``QuerySet.update()``
  capture, reverts).
- :func:`touch_sql` (SQL): the ``INSERT`` adding a model to an assignation's list, with the
  assignation id as any SQL expression (``NEW.assignation_id`` in a trigger), for history
  written inside the database. A record such a writer creates itself may say
  ``models_recorded = TRUE`` only when every table it writes runs :func:`touch_sql`; a record
  with ``models_recorded = FALSE`` (or no record) makes readers scan every tracked table.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import DatabaseError, connections, router, transaction

from koherent._config import get_setting
from koherent._django import (
    connection_state,
    fetch_returned_rows,
    set_connection_state,
    transaction_marker,
)
from koherent._logging import error_reason, get_logger
from koherent._sql import text_literal
from koherent.context import AuditContext

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Field, Model

logger = get_logger("koherent")

__all__ = [
    "clear_cache",
    "ensure_record",
    "ensure_record_for_model",
    "insert_history_row",
    "model_key",
    "touch",
    "touch_sql",
    "touched_models",
]

_CACHE_SIZE = 10_000
#: The savepoint around the record inserts of the one-round-trip path.
_SAVEPOINT = "koherent_record"

#: Keys known to be committed: ``(using, assignation_id, "")`` for a record,
#: ``(using, assignation_id, model_key)`` for a model of its list.
_committed: OrderedDict[tuple[str, str, str], None] = OrderedDict()
_lock = threading.Lock()

_Key = tuple[str, str, str]
_Statement = tuple[str, list[Any]]


def clear_cache() -> None:
    """Forget which records this process has written (for tests that flush the database)."""
    with _lock:
        _committed.clear()


def _mark_committed(keys: Sequence[_Key]) -> None:
    with _lock:
        for key in keys:
            _committed[key] = None
            _committed.move_to_end(key)
        while len(_committed) > _CACHE_SIZE:
            _committed.popitem(last=False)


class _Promote:
    """``on_commit`` callback moving keys from pending to known."""

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[_Key, ...]) -> None:
        self.keys = keys

    def __call__(self) -> None:
        _mark_committed(self.keys)


def _pending(connection: Any) -> set[_Key]:
    """The keys written in ``connection``'s current transaction, not committed yet.

    Kept with the transaction's marker, and started afresh once the marker changes: the
    connection outlives its transactions (a pool thread's, for the life of the process), so
    the keys of past ones must not pile up on it (they are in ``_committed`` once committed).
    """
    marker = transaction_marker(connection)
    pending: tuple[object, set[_Key]] | None = connection_state(connection, "pending")
    if pending is None or pending[0] is not marker:
        pending = (marker, set())
        set_connection_state(connection, "pending", pending)
    return pending[1]


def _known(key: _Key, connection: Any) -> bool:
    if key in _committed:
        return True
    # The marker we registered under is still the current one only within the same
    # transaction and while nothing was rolled back.
    pending: tuple[object, set[_Key]] | None = connection_state(connection, "pending")
    return bool(
        pending is not None
        and connection.in_atomic_block
        and pending[0] is transaction_marker(connection)
        and key in pending[1]
    )


def _written(keys: tuple[_Key, ...], using: str) -> None:
    """Remember that ``keys`` were written on ``using`` (known once the transaction commits)."""
    connection = connections[using]
    if connection.in_atomic_block:
        transaction.on_commit(_Promote(keys), using=using)
        _pending(connection).update(keys)
    else:
        _mark_committed(keys)


# -- what a model is called in the list --------------------------------------------------------


@functools.cache
def model_key(history_model: type[Model]) -> str:
    """What the list of touched models stores for ``history_model``'s rows.

    The tracked model's label, ``app_label.ModelName`` (:attr:`TrackedModel.label
    <koherent._registry.TrackedModel.label>`), which is also what readers compare with.
    """
    instance_type: type[Model] = history_model.instance_type  # type: ignore[attr-defined]
    return instance_type._meta.label


# -- the statements ---------------------------------------------------------------------------


def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    meta = model._meta
    return [f for f in meta.concrete_fields if f is not meta.auto_field]


@functools.lru_cache(maxsize=64)
def _insert_template(model: type[Model], alias: str, vendor: str, update: str | None) -> str:
    """``INSERT ... ON CONFLICT DO NOTHING`` of one ``model`` row, in ``alias``'s dialect;
    with ``update``, a row already there (same primary key) takes the inserted value of that
    field instead (``ON CONFLICT ... DO UPDATE``, ``ON DUPLICATE KEY UPDATE`` on MySQL)."""
    from django.db.models.constants import OnConflict
    from django.db.models.sql import InsertQuery

    meta = model._meta
    if update is None:
        query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    else:
        query = InsertQuery(
            model,
            on_conflict=OnConflict.UPDATE,
            update_fields=[meta.get_field(update)],
            unique_fields=[meta.pk],
        )
    query.insert_values(_insert_fields(model), [model()])
    ((sql, _params),) = query.get_compiler(using=alias).as_sql()
    return str(sql)


def _insert(
    model: type[Model],
    values: dict[str, Any],
    using: str,
    connection: BaseDatabaseWrapper,
    update: str | None = None,
) -> _Statement:
    """The insert of one ``model`` row from ``values`` (by attribute name), without building
    a model instance (a field missing from ``values`` takes its default); ``update``: see
    :func:`_insert_template`."""
    params = [
        f.get_db_prep_save(
            values[f.attname] if f.attname in values else f.get_default(), connection
        )
        for f in _insert_fields(model)
    ]
    return _insert_template(model, using, connection.vendor, update), params


def _record(ctx: AuditContext, assignation_id: str) -> dict[str, Any]:
    """The values of the record of ``assignation_id``, written under ``ctx``."""
    from django.utils import timezone

    same = ctx.assignation_id == assignation_id
    user = ctx.user_ref.for_history() if same and ctx.user_ref is not None else None
    user_pk = ctx.user_id if same else None
    return {
        "id": assignation_id,
        "user_id": None if user is None else user.pk,
        "user_pk": None if user_pk is None else str(user_pk),
        "app": ctx.app if same else None,
        "origin": (ctx.origin or "manual") if same else "unknown",
        "parent_id": ctx.parent_assignation_id if same else None,
        "task_id": ctx.task_id if same else None,
        "created": timezone.now(),
        "models_recorded": True,
    }


def _missing(
    ctx: AuditContext, assignation_id: str, using: str, history_model: type[Model] | None
) -> tuple[tuple[_Key, ...], list[_Statement]]:
    """The keys not yet known to exist, and the statements writing them."""
    from koherent._assignations import Assignation, AssignationModel

    connection = connections[using]
    keys: list[_Key] = []
    statements: list[_Statement] = []
    record_key = (using, assignation_id, "")
    if history_model is not None:
        model_entry = (using, assignation_id, model_key(history_model))
        if _known(model_entry, connection):
            return (), []  # written with (or after) the record
    if not _known(record_key, connection):
        keys.append(record_key)
        values = _record(ctx, assignation_id)
        statements.append(_insert(Assignation, values, using, connection))
    if history_model is not None:
        keys.append(model_entry)
        values = {"assignation_id": assignation_id, "model": model_entry[2]}
        statements.append(_insert(AssignationModel, values, using, connection))
    return tuple(keys), statements


def _log_failure(assignation_id: str, exc: Exception) -> None:
    logger.warning(
        "koherent: could not write the record of assignation %s (%s); the change and its "
        "history row are kept",
        assignation_id,
        error_reason(exc),
    )


def _in_savepoint(
    connection: BaseDatabaseWrapper,
    statements: list[_Statement],
    assignation_id: str,
    then: _Statement | None = None,
    read: Callable[[Any], Any] | None = None,
    log: bool = True,
) -> tuple[bool, Any]:
    """One multi-statement query: ``statements`` in a savepoint, then ``then`` (the history
    row's ``INSERT``), whose result ``read`` takes from the cursor.

    ``(False, None)`` when the record statements failed: logged (unless ``log`` is false),
    rolled back to the savepoint.
    """
    parts = [f"SAVEPOINT {_SAVEPOINT}", *(sql for sql, _ in statements)]
    parts.append(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    params = [p for _, statement_params in statements for p in statement_params]
    if then is not None:
        parts.append(then[0])
        params.extend(then[1])
    try:
        with connection.cursor() as cursor:
            cursor.execute("; ".join(parts), params)
            result = None if read is None else read(cursor)
    except DatabaseError as exc:
        if not _rolled_back(connection):
            raise  # the row's own INSERT failed (after the savepoint was released)
        if log:
            _log_failure(assignation_id, exc)
        return False, None
    return True, result


def _write_apart(
    statements: list[_Statement], assignation_id: str, using: str, log: bool = True
) -> bool:
    """Run the record statements on their own: a failure is logged (unless ``log`` is
    false), never raised, except that of a lost connection."""
    connection = connections[using]
    if _one_round_trip(connection):
        # One round trip: the statements in a savepoint, as one multi-statement query.
        return _in_savepoint(connection, statements, assignation_id, log=log)[0]
    try:
        if connection.vendor == "sqlite":
            # A failing statement does not abort an SQLite transaction: no savepoint needed.
            with connection.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
        else:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
    except DatabaseError as exc:
        if _connection_lost(using):
            # The connection died (terminated backend, restarted server): the change and its
            # history row cannot be written either. Its own error is the one to see, not a
            # later "connection is closed", and certainly not a claim that anything is kept.
            raise
        if log:
            _log_failure(assignation_id, exc)
        return False
    return True


def _disown_list(ctx: AuditContext, assignation_id: str, using: str) -> bool:
    """After the record statements of ``assignation_id`` failed: leave a record saying its
    list of touched models is incomplete (``models_recorded = FALSE``), inserted so or marked
    so, so that readers scan every tracked table.

    Without it a later change of another model under the assignation would write a record
    vouching for a list that lacks the model whose entry failed, and readers would skip that
    model's rows. ``True`` when the record now says so; a failure (the record table missing,
    say) is not logged again (the first failure was) and leaves no record: readers then scan
    every table too. A lost connection raises.
    """
    from koherent._assignations import Assignation

    values = {**_record(ctx, assignation_id), "models_recorded": False}
    statement = _insert(Assignation, values, using, connections[using], update="models_recorded")
    return _write_apart([statement], assignation_id, using, log=False)


def _connection_lost(using: str) -> bool:
    """Whether the transaction on ``using`` is lost with its connection (after a failed
    record write; a failed statement alone leaves it usable, its savepoint rolled back)."""
    connection = connections[using]
    if connection.in_atomic_block and transaction.get_rollback(using):
        return True  # the savepoint could not even be rolled back
    return not connection.is_usable()


def _one_round_trip(connection: BaseDatabaseWrapper) -> bool:
    """Whether statements can travel together with the history row's ``INSERT``.

    PostgreSQL with psycopg 3's client-side binding (Django's default) runs a multi-statement
    query; a savepoint needs the open transaction of an atomic block.
    """
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return False
    cached: bool | None = connection_state(connection, "multi_statement")
    if cached is None:
        cached = False
        try:
            import psycopg

            factory = getattr(connection.connection, "cursor_factory", None)
            cached = isinstance(factory, type) and issubclass(factory, psycopg.ClientCursor)
        except ImportError:  # psycopg2: not tried, the statements go apart
            pass
        set_connection_state(connection, "multi_statement", cached)
    return cached


# -- public to Koherent's write paths ---------------------------------------------------------


class _ToWrite(NamedTuple):
    """What is left to write for an assignation's record and list (see :func:`_to_write`)."""

    ctx: AuditContext
    assignation_id: str
    using: str  # the records' database
    keys: tuple[_Key, ...]
    statements: list[_Statement]

    def write_apart(self) -> None:
        """The statements on their own; on failure, a record not vouching for its list."""
        if _write_apart(self.statements, self.assignation_id, self.using):
            _written(self.keys, self.using)
        else:
            self.failed()

    def failed(self) -> None:
        """After the statements failed (logged, rolled back): see :func:`_disown_list`."""
        if _disown_list(self.ctx, self.assignation_id, self.using):
            _written(((self.using, self.assignation_id, ""),), self.using)


def _to_write(
    ctx: AuditContext | None,
    assignation_id: str | None,
    using: str,
    history_model: type[Model] | None,
) -> _ToWrite | None:
    """What is left to write for the record of ``assignation_id`` (default: ``ctx``'s, and
    ``ctx`` the context in effect) and ``history_model`` on its list, going with history on
    ``using``. ``None`` when there is nothing to write (no assignation, records off, all
    known)."""
    from koherent._assignations import record_database
    from koherent.context import peek

    if ctx is None:
        ctx = peek() or AuditContext()
    assignation_id = assignation_id or ctx.assignation_id
    if not assignation_id or not get_setting("RECORD_ASSIGNATIONS"):
        return None
    db = record_database(using, write=True)  # the records go with the history (routing)
    keys, statements = _missing(ctx, assignation_id, db, history_model)
    return _ToWrite(ctx, assignation_id, db, keys, statements) if statements else None


def touch(
    history_model: type[Model] | None,
    using: str,
    ctx: AuditContext | None = None,
    assignation_id: str | None = None,
) -> None:
    """Ensure the record of an assignation, and that ``history_model`` is on its list.

    For paths that write history rows themselves, in bulk or otherwise: call it before (or
    after) writing rows of ``history_model`` under the assignation, in the same transaction.
    ``ctx`` defaults to the current audit context and ``assignation_id`` to its assignation.
    Costs nothing once the process knows both exist; otherwise one ``INSERT ... ON CONFLICT
    DO NOTHING`` each, in a savepoint (none on SQLite). Never raises a database error.
    """
    found = _to_write(ctx, assignation_id, using, history_model)
    if found is not None:
        found.write_apart()


def ensure_record(
    ctx: AuditContext,
    assignation_id: str,
    using: str,
    history_model: type[Model] | None = None,
) -> None:
    """Make sure ``assignation_id`` has its record in database ``using`` (see :func:`touch`)."""
    touch(history_model, using, ctx, assignation_id)


def ensure_record_for_model(history_model: type[Model]) -> None:
    """Ensure the record of the assignation in effect, and ``history_model`` on its list."""
    touch(history_model, router.db_for_write(history_model))


def insert_history_row(
    row: Model,
    using: str,
    fields: Sequence[Field[Any, Any]],
    returning_fields: Sequence[Field[Any, Any]] | None,
    raw: bool,
    insert: Callable[[], Any],
) -> Any:
    """Insert a history row (``Model._do_insert``), with its record and list entry if needed.

    ``insert`` is the plain insert. When the record or the model's entry is not known yet,
    they travel in the same query as the row where the backend allows it (see the module
    docstring), else they are written just before it.
    """
    assignation_id = getattr(row, "assignation_id", None)
    if not assignation_id:
        return insert()
    found = _to_write(None, assignation_id, using, type(row))
    if found is None:
        return insert()
    connection = connections[using]
    together = (fields, returning_fields, raw)
    if found.using != using:  # the records live in another database (routing)
        found.write_apart()
        return insert()
    if _one_round_trip(connection):
        written, result = _insert_together(row, using, found.statements, together)
        if not written:  # the record statements failed: logged, rolled back to the savepoint
            found.failed()
            return insert()
        _written(found.keys, using)
        return result
    if _one_statement(connection):
        return _insert_in_one_statement(row, using, found, together, insert)
    found.write_apart()
    return insert()


class _RowInsert(NamedTuple):
    """The history row's ``INSERT`` as ``Model._do_insert`` would send it, and how to read
    the values it returns."""

    sql: str
    params: list[Any]
    compiler: Any
    returning_fields: Any

    def read(self, connection: BaseDatabaseWrapper, cursor: Any) -> list[Any]:
        if not self.returning_fields:
            return []
        return fetch_returned_rows(connection, cursor, self.compiler)

    def convert(self, model: type[Model], rows: list[Any]) -> list[Any]:
        """``rows`` through the converters of the returned fields, as ``_do_insert`` gives
        them."""
        if not self.returning_fields or not rows:
            return rows
        cols = [f.get_col(model._meta.db_table) for f in self.returning_fields]
        converters = self.compiler.get_converters(cols)
        if converters:
            rows = list(self.compiler.apply_converters(rows, converters))
        return rows


def _row_insert(row: Model, using: str, insert: tuple[Any, Any, bool]) -> _RowInsert:
    """Compile the row's ``INSERT`` (``insert``: the fields, returning fields and ``raw`` of
    ``Model._do_insert``)."""
    from django.db.models.sql import InsertQuery

    fields, returning_fields, raw = insert
    query = InsertQuery(type(row))
    query.insert_values(list(fields), [row], raw=raw)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = returning_fields
    ((sql, params),) = compiler.as_sql()
    return _RowInsert(str(sql), list(params), compiler, returning_fields)


def _insert_together(
    row: Model, using: str, statements: list[_Statement], insert: tuple[Any, Any, bool]
) -> tuple[bool, list[Any]]:
    """One multi-statement query: the record statements in a savepoint, then the row
    (``insert``: the fields, returning fields and ``raw`` of ``Model._do_insert``)."""
    connection = connections[using]
    compiled = _row_insert(row, using, insert)

    def read(cursor: Any) -> list[Any]:
        while cursor.nextset():
            pass  # the row's INSERT is the last result
        return compiled.read(connection, cursor)

    assignation_id = str(getattr(row, "assignation_id", ""))
    then = (compiled.sql, compiled.params)
    written, rows = _in_savepoint(connection, statements, assignation_id, then, read)
    if not written:
        return False, []
    return True, compiled.convert(type(row), [] if rows is None else rows)


def _one_statement(connection: BaseDatabaseWrapper) -> bool:
    """Whether the record statements can go with the history row in one statement of its
    own transaction: PostgreSQL in autocommit, outside any transaction (a history row saved
    with ``ATOMIC_SAVES`` off, or by a path that saves history rows directly)."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and connection.get_autocommit()
    )


def _in_one_statement_sql(statements: list[_Statement], row: _RowInsert) -> _Statement:
    """The record statements as data-modifying ``WITH`` queries of the row's ``INSERT``: one
    statement, so one round trip and, in autocommit, one transaction."""
    ctes = ", ".join(f"koherent_w{n} AS ({sql})" for n, (sql, _) in enumerate(statements))
    params = [p for _, statement_params in statements for p in statement_params]
    return f"WITH {ctes} {row.sql}", [*params, *row.params]


def _insert_in_one_statement(
    row: Model,
    using: str,
    found: _ToWrite,
    insert: tuple[Any, Any, bool],
    plain: Callable[[], Any],
) -> Any:
    """The history row, its record and its list entry in one statement (see
    :func:`_one_statement`). All of it is written, or none of it.

    When that statement fails, the row is inserted alone (``plain``: its error is the one to
    see, and then no record is written), and the record statements go apart after it, logged
    if they fail too. A lost connection raises.
    """
    connection = connections[using]
    compiled = _row_insert(row, using, insert)
    sql, params = _in_one_statement_sql(found.statements, compiled)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = compiled.read(connection, cursor)
    except DatabaseError:
        if not connection.is_usable():
            raise
        result = plain()  # the row alone: raises the row's own error
        found.write_apart()  # logs the record's, if that was the one
        return result
    _written(found.keys, using)
    return compiled.convert(type(row), rows)


def _rolled_back(connection: BaseDatabaseWrapper) -> bool:
    """Roll back to the record savepoint; False when it is gone (the error came after it)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}")
    except DatabaseError:
        return False
    return True


# -- SQL for writers inside the database ------------------------------------------------------


def touch_sql(
    history_model: type[Model], connection: BaseDatabaseWrapper, assignation_id_sql: str = "%s"
) -> str:
    """The SQL statement putting ``history_model`` on an assignation's list of touched models.

    ``assignation_id_sql`` is an SQL expression for the assignation id: ``%s`` (the default)
    for a parameter, ``NEW."assignation_id"`` in a row trigger. The statement does nothing
    when the entry exists (``ON CONFLICT DO NOTHING``; ``INSERT OR IGNORE`` on SQLite,
    ``INSERT IGNORE`` on MySQL and MariaDB), so it can run for every row; the model key is a
    quoted literal.
    """
    from koherent._assignations import AssignationModel

    meta = AssignationModel._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    assignation = quote(str(meta.get_field("assignation").column))
    model = quote(str(meta.get_field("model").column))
    literal = text_literal(model_key(history_model))
    verb = {"sqlite": "INSERT OR IGNORE INTO", "mysql": "INSERT IGNORE INTO"}.get(
        connection.vendor, "INSERT INTO"
    )
    suffix = " ON CONFLICT DO NOTHING" if verb == "INSERT INTO" else ""
    return (
        f"{verb} {table} ({assignation}, {model}) VALUES ({assignation_id_sql}, {literal}){suffix}"
    )


# -- reading --------------------------------------------------------------------------------


def touched_models(assignation_id: str, using: str) -> frozenset[str] | None:
    """The labels of the tracked models ``assignation_id`` wrote history for (one query).

    ``None`` when that is not known: no record (nothing written, records turned off, rows
    written by raw SQL), or a record written before records kept their models. Then every
    tracked table must be read.
    """
    from koherent._assignations import record_database

    if not get_setting("RECORD_ASSIGNATIONS"):
        return None
    using = record_database(using)  # the records of the history on ``using`` (routing)
    connection = connections[using]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_touched_sql(using, connection.vendor), [assignation_id])
            found = cursor.fetchall()
    except DatabaseError as exc:
        if connection.in_atomic_block and connection.vendor != "sqlite":
            raise  # the transaction is aborted: nothing else can be read in it
        logger.warning(
            "koherent: could not read the models assignation %s touched (%s); reading every "
            "tracked table",
            assignation_id,
            error_reason(exc),
        )
        return None
    if not found or not found[0][0]:
        return None
    return frozenset(label for _, label in found if label is not None)


@functools.lru_cache(maxsize=16)
def _touched_sql(alias: str, vendor: str) -> str:
    """The record's flag and its list, by the record's primary key (one index probe each)."""
    from koherent._assignations import Assignation, AssignationModel

    quote = connections[alias].ops.quote_name
    record = Assignation._meta
    entry = AssignationModel._meta

    def column(meta: Any, name: str) -> str:
        return quote(str(meta.get_field(name).column))

    return (
        f"SELECT r.{column(record, 'models_recorded')}, m.{column(entry, 'model')} "
        f"FROM {quote(record.db_table)} r LEFT JOIN {quote(entry.db_table)} m "
        f"ON m.{column(entry, 'assignation')} = r.{column(record, 'id')} "
        f"WHERE r.{column(record, 'id')} = %s"
    )
