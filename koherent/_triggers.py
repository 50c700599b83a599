"""The PostgreSQL triggers of trigger capture, declared with django-pgtrigger.

Each model captured by triggers gets three ``AFTER`` triggers on its table
(``koherent_insert``, ``koherent_update``, ``koherent_delete``). The insert and delete triggers
are statement-level (they read the rows from the statement's transition table, and the context
once); the update trigger is row-level. Each changed row gets one row in the model's
simple-history history table, with the same columns simple-history writes:
``history_date`` (``clock_timestamp()``, the time of the change), ``history_type`` (``+``,
``~``, ``-``), ``history_change_reason``, ``history_user_id``, the tracked fields, and
Koherent's ``assignation_id``, ``app``, ``task_id`` and ``user_pk``; an update row's
``history_changed_fields`` lists the tracked fields the ``UPDATE`` changed (insert and delete
rows leave it ``NULL``, as signal capture does). The context comes with the statement, as
:mod:`koherent._handoff` hands it over (a leading comment, or the ``koherent.context`` setting),
or from the per-value settings a session outside Django sets; a value that is missing leaves its
column empty, and one that is malformed (too long, not of the user key's type...) makes the row
unattributed, with a warning, never a failed statement.

The update trigger fires only when a tracked column changed (``WHEN (ROW(OLD.…) IS DISTINCT
FROM ROW(NEW.…))``), unless the field says ``capture_unchanged=True``.

The first row an assignation writes in a transaction (per history table) also inserts the
assignation's :class:`~koherent.models.Assignation` record, ``ON CONFLICT DO NOTHING``, in the
same statement. pgtrigger puts the triggers in the migrations ``makemigrations`` writes
(``AddTrigger``/``RemoveTrigger``, with the SQL frozen in the migration), and installs them
where tables are created without migrations.
"""

from __future__ import annotations

from typing import Any

import pgtrigger

from koherent._sql import text_literal as _text
from koherent._trigger_context import (
    COMMENT_MARK,
    CONTEXT_SETTING,
    ESCAPE,
    ESCAPES,
    FORMAT_VERSION,
    SETTING_NAMES,
)
from koherent._validation import (
    MAX_APP_LENGTH,
    MAX_ASSIGNATION_ID_LENGTH,
    MAX_ORIGIN_LENGTH,
    MAX_TASK_ID_LENGTH,
    MAX_USER_PK_LENGTH,
)

#: The names of the three triggers (pgtrigger prefixes and suffixes them in the database).
TRIGGER_NAMES = ("koherent_insert", "koherent_update", "koherent_delete")

_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_APP_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$"
_ORIGIN_PATTERN = "^[a-z][a-z0-9_-]*$"
_UUID_PATTERN = "^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"
_INTEGER_DIGITS = {"smallint": 4, "integer": 9, "bigint": 18}
#: The operations whose trigger is statement-level, and the transition table each reads.
_STATEMENT_LEVEL = {"INSERT": ("new",), "DELETE": ("old",)}

_INTEGER_TYPES = (
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
)
_TEXT_TYPES = ("CharField", "TextField", "SlugField", "EmailField")
_MALFORMED = (
    "'koherent: the audit context handed over (koherent.* settings or comment) is malformed; "
    "the history row of table % is recorded unattributed'"
)
_RECORD_FAILED = (
    "'koherent: could not write the record of an assignation (%); the change and its "
    "history row are kept'"
)


def qn(name: str) -> str:
    """Quote an identifier; a ``schema"."table`` name (Django's convention) stays qualified."""
    if name.startswith('"') and name.endswith('"'):
        return name
    return f'"{name}"'


def history_model_of(model: Any) -> Any:
    return getattr(model, model._meta.simple_history_manager_attribute).model


def _column(model: Any, name: str) -> Any:
    for field in model._meta.concrete_fields:
        if field.column == name:
            return field
    return None


def user_key_check(field: Any, connection: Any) -> tuple[str, str] | None:
    """``(SQL type, SQL condition on v_user)`` for a column holding a user's key, or ``None``
    when its type is not one trigger capture knows."""
    target = field.target_field if field.is_relation else field
    kind = target.get_internal_type()
    db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    if db_type is None:
        return None
    if kind in _INTEGER_TYPES:
        digits = _INTEGER_DIGITS.get(db_type.split()[0].lower(), 9)
        return db_type, f"v_user ~ '^-?[0-9]{{1,{digits}}}$'"
    if kind == "UUIDField":
        return db_type, f"v_user ~ '{_UUID_PATTERN}'"
    if kind in _TEXT_TYPES:
        length = getattr(target, "max_length", None)
        return db_type, f"length(v_user) <= {length}" if length else "TRUE"
    return None


class CaptureTrigger(pgtrigger.Trigger):
    """One of the three capture triggers of a tracked model (see the module docstring)."""

    when = pgtrigger.After
    level = pgtrigger.Row

    def __init__(
        self, *, name: str, operation: pgtrigger.Operation, capture_unchanged: bool = False
    ) -> None:
        self.capture_unchanged = capture_unchanged
        kind = str(operation)
        if kind in _STATEMENT_LEVEL:
            # One call per statement, reading every row it wrote from the transition table:
            # a bulk_create() or a queryset.delete() of many rows reads and checks the
            # context once. Updates stay row-level: a row trigger sees a changed primary key,
            # and its WHEN clause skips rows whose tracked columns did not change.
            super().__init__(
                name=name,
                operation=operation,
                level=pgtrigger.Statement,
                referencing=pgtrigger.Referencing(  # type: ignore[no-untyped-call]
                    **{_STATEMENT_LEVEL[kind][0]: "koherent_rows"}
                ),
            )
        else:
            super().__init__(name=name, operation=operation)

    # pgtrigger compiles a trigger with the model of a migration state; the history model and
    # the user model are read from the registry of real models, which is what the migration
    # being written (or the table being created) is for.
    def _real_model(self, model: Any) -> Any:
        from django.apps import apps

        return apps.get_model(model._meta.app_label, model._meta.model_name)

    def get_condition(self, model: Any) -> Any:
        if str(self.operation) != "UPDATE" or self.capture_unchanged:
            return None
        real = self._real_model(model)
        history = history_model_of(real)
        columns = [qn(f.column) for f in history.tracked_fields]
        old = ", ".join(f"OLD.{c}" for c in columns)
        new = ", ".join(f"NEW.{c}" for c in columns)
        return pgtrigger.Condition(f"ROW({old}) IS DISTINCT FROM ROW({new})")

    def get_declare(self, model: Any) -> list[tuple[str, str]]:
        return [
            ("v_assignation", "TEXT"),
            ("v_app", "TEXT"),
            ("v_task", "TEXT"),
            ("v_user", "TEXT"),
            ("v_user_pk", "TEXT"),
            ("v_record", "TEXT"),
            ("v_parent", "TEXT"),
            ("v_row", "TEXT"),
            ("v_reason", "TEXT"),
            ("v_skip", "BOOLEAN"),
            ("v_count", "BIGINT"),
            ("v_ctx", "TEXT"),
            ("v_parts", "TEXT[]"),
            ("v_ok", "BOOLEAN"),
            ("v_query", "TEXT"),
            ("v_end", "INTEGER"),
        ]

    def get_func(self, model: Any) -> str:
        from django.db import connection

        real = self._real_model(model)
        body = render_func(real, str(self.operation), connection)
        return "\n".join(line.strip() for line in body.splitlines() if line.strip())


def render_func(model: Any, operation: str, connection: Any) -> str:
    """The PL/pgSQL body writing ``model``'s history row for ``operation``."""
    from koherent._assignations import Assignation

    history = history_model_of(model)
    statement = operation in _STATEMENT_LEVEL
    row = "r" if statement else "OLD" if operation == "DELETE" else "NEW"
    history_type = {"INSERT": "+", "UPDATE": "~", "DELETE": "-"}[operation]
    pk = model._meta.pk
    assert pk is not None
    row_pk = f"{row}.{qn(pk.column)}"
    table = model._meta.db_table

    values: dict[str, str] = {}
    for field in history.tracked_fields:
        values[history._meta.get_field(field.name).column] = f"{row}.{qn(field.column)}"
    id_field = history._meta.pk
    assert id_field is not None
    if id_field.get_internal_type() == "UUIDField":
        values[id_field.column] = "gen_random_uuid()"
    values["history_date"] = "clock_timestamp()"
    values["history_type"] = _text(history_type)
    reason_field = history._meta.get_field("history_change_reason")
    reason_length = getattr(reason_field, "max_length", None)
    reason = f"left(v_reason, {reason_length})" if reason_length else "v_reason"
    row_match = f"(v_row = {_text(table + ':')} OR v_row = {_text(table + ':')} || {row_pk}::text)"
    if statement:
        reason = f"CASE WHEN v_row IS NOT NULL AND {row_match} THEN {reason} END"
    values["history_change_reason"] = reason
    user_field = _column(history, "history_user_id")
    user_check = None if user_field is None else user_key_check(user_field, connection)
    if user_field is not None and user_check is not None:
        values[user_field.column] = f"v_user::{user_check[0]}"
    values["assignation_id"] = "v_assignation"
    values["app"] = "v_app"
    values["task_id"] = "v_task"
    values["user_pk"] = "v_user_pk"
    relation = _column(history, "history_relation_id")
    if relation is not None:
        values[relation.column] = row_pk
    changed = _column(history, "history_changed_fields")
    if changed is not None and operation == "UPDATE":
        # The tracked fields whose value the UPDATE changed, as a signal save records them
        # (field names, the primary key left out; empty when none did).
        tests = [
            f"CASE WHEN OLD.{qn(f.column)} IS DISTINCT FROM NEW.{qn(f.column)} "
            f"THEN {_text(f.name)} END"
            for f in history.tracked_fields
            if not f.primary_key
        ]
        values[changed.column] = f"concat_ws(',', {', '.join(tests)})" if tests else "''"

    lengths = [
        f"(v_assignation IS NULL OR length(v_assignation) <= {MAX_ASSIGNATION_ID_LENGTH})",
        f"(v_app IS NULL OR length(v_app) <= {MAX_APP_LENGTH})",
        f"(v_task IS NULL OR length(v_task) <= {MAX_TASK_ID_LENGTH})",
        f"(v_user_pk IS NULL OR length(v_user_pk) <= {MAX_USER_PK_LENGTH})",
        f"(v_record IS NULL OR length(v_record) <= {MAX_ORIGIN_LENGTH})",
        f"(v_parent IS NULL OR length(v_parent) <= {MAX_ASSIGNATION_ID_LENGTH})",
    ]
    # The per-value settings are checked one by one; an encoded context (the comment, or
    # koherent.context) with one pattern over the whole text, lengths aside.
    patterns = [
        f"(v_assignation IS NULL OR v_assignation ~ '{_ID_PATTERN}')",
        f"(v_app IS NULL OR v_app ~ '{_APP_PATTERN}')",
        f"(v_task IS NULL OR v_task ~ '{_ID_PATTERN}')",
        "(v_user_pk IS NULL OR v_user_pk !~ '[[:cntrl:]]')",
        f"(v_record IS NULL OR v_record ~ '{_ORIGIN_PATTERN}')",
        f"(v_parent IS NULL OR v_parent ~ '{_ID_PATTERN}')",
    ]
    if user_check is not None:
        patterns.append(f"(v_user IS NULL OR {user_check[1]})")
        if user_check[1].startswith("length("):
            lengths.append(f"(v_user IS NULL OR {user_check[1]})")
    else:
        patterns.append("v_user IS NULL")
    encoded_pattern = _encoded_pattern(user_field, connection)

    user_exists = ""
    if (
        user_field is not None
        and user_check is not None
        and user_field.is_relation
        and getattr(user_field, "db_constraint", False)
    ):
        # The history row's user has a database constraint: a user that does not exist
        # (deleted meanwhile, or named by hand) would fail the statement.
        user_model = user_field.related_model
        user_pk = user_model._meta.pk
        user_exists = (
            f"IF v_user IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            f"{qn(user_model._meta.db_table)} WHERE {qn(user_pk.column)} = "
            f"v_user::{user_check[0]}) THEN v_user := NULL; END IF;"
        )

    columns = ", ".join(qn(c) for c in values)
    exprs = ", ".join(values.values())
    record = _record_sql(Assignation, history, user_check, user_field)

    settings_sql = _context_sql(encoded_pattern, " AND ".join(lengths), " AND ".join(patterns))
    validate_sql = user_exists
    history_table = qn(history._meta.db_table)
    if statement:
        return f"""
        {settings_sql}
        v_skip := v_row IS NOT NULL AND COALESCE(v_skip, false);
        {validate_sql}
        INSERT INTO {history_table} ({columns})
            SELECT {exprs} FROM koherent_rows AS r
            WHERE NOT (v_skip AND {row_match});
        GET DIAGNOSTICS v_count = ROW_COUNT;
        IF v_count > 0 THEN
            {record}
        END IF;
        RETURN NULL;
        """
    return f"""
        {settings_sql}
        IF v_row IS NOT NULL AND {row_match} THEN
            IF v_skip THEN
                RETURN NULL;
            END IF;
        ELSE
            v_reason := NULL;
        END IF;
        {validate_sql}
        INSERT INTO {history_table} ({columns}) VALUES ({exprs});
        {record}
        RETURN NULL;
    """


def _decoded(expression: str) -> str:
    """SQL undoing :data:`koherent._trigger_context.ESCAPES` in ``expression``."""
    for character, escaped in ESCAPES:
        expression = f"replace({expression}, {_text(escaped)}, {_text(character)})"
    return expression


def _optional(pattern: str) -> str:
    """``pattern`` (anchored ``^…$``) as an optional part of a larger pattern."""
    return f"(?:{pattern.removeprefix('^').removesuffix('$')})?"


def _encoded_pattern(user_field: Any, connection: Any) -> str:
    """The pattern a whole encoded context matches (:mod:`koherent._trigger_context`): every
    field's own pattern, lengths aside (the triggers check those after splitting)."""
    check = None if user_field is None else user_key_check(user_field, connection)
    if check is None:
        user = ""  # a key type trigger capture does not know: no user
    elif check[1].startswith("v_user ~ "):
        user = _optional(check[1].removeprefix("v_user ~ ").strip("'"))
    else:
        user = "[^|]*"  # a text key: its length is checked after decoding
    fields = [
        FORMAT_VERSION,
        _optional(_ID_PATTERN),  # assignation
        _optional(_APP_PATTERN),
        _optional(_ID_PATTERN),  # task
        user,
        "[^|[:cntrl:]]*",  # user key
        _optional(_ORIGIN_PATTERN),
        _optional(_ID_PATTERN),  # parent
        "[^|]*",  # table:key of the row context
        "[^|]*",  # change reason
        "1?",  # skip
    ]
    return "^" + "[|]".join(fields) + "$"


def _context_sql(encoded_pattern: str, lengths: str, patterns: str) -> str:
    """PL/pgSQL reading the context of the statement into the ``v_*`` variables, and checking it.

    In order: the ``koherent.context`` setting (a long statement's or an ``executemany``'s),
    the comment leading the statement (``current_query()``; the text the client sent, so a
    statement run by a function or another trigger reads its caller's), then the per-value
    settings a session outside Django may set. A context that does not parse, or a value that
    does not fit, leaves every value empty, with a warning.
    """
    fields = len(SETTING_NAMES) + 1
    start = len(COMMENT_MARK) + 1  # where the encoded context starts in the statement
    mark = COMMENT_MARK.replace("*", "[*]")
    # Anchored: only a comment the statement starts with counts (a string literal further on
    # cannot pose as one); the setters pgtrigger.ignore() and pgtrigger.schema() put in front
    # of a statement may come first. No backslashes: the pattern reads the same whatever
    # standard_conforming_strings says.
    pattern = (
        f"^(?:SELECT set_config[(]'(?:pgtrigger[.]ignore|search_path)'[^;]*; )*{mark}([^*]*)[*]/"
    )
    per_value = "\n".join(
        f"{variable} := NULLIF(current_setting('{name}', true), '');"
        for variable, name in zip(_VARIABLES, SETTING_NAMES[:-1], strict=True)
    )
    return f"""
        v_ctx := NULLIF(current_setting('{CONTEXT_SETTING}', true), '');
        IF v_ctx IS NULL THEN
            v_query := current_query();
            IF left(v_query, {len(COMMENT_MARK)}) = {_text(COMMENT_MARK)} THEN
                v_end := strpos(v_query, '*/');
                IF v_end > {len(COMMENT_MARK)} THEN
                    v_ctx := substr(v_query, {start}, v_end - {start});
                END IF;
            ELSIF left(v_query, 18) = 'SELECT set_config(' THEN
                v_ctx := substring(v_query from {_text(pattern)});
            END IF;
        END IF;
        IF v_ctx IS NOT NULL THEN
            v_ok := v_ctx ~ {_text(encoded_pattern)};
            IF v_ok THEN
                v_parts := string_to_array(v_ctx, '|');
                v_ok := array_length(v_parts, 1) = {fields};
            END IF;
            IF v_ok THEN
                v_assignation := NULLIF(v_parts[2], '');
                v_app := NULLIF(v_parts[3], '');
                v_task := NULLIF(v_parts[4], '');
                v_user := NULLIF(v_parts[5], '');
                v_user_pk := NULLIF(v_parts[6], '');
                v_record := NULLIF(v_parts[7], '');
                v_parent := NULLIF(v_parts[8], '');
                v_row := NULLIF(v_parts[9], '');
                v_reason := NULLIF(v_parts[10], '');
                v_skip := v_parts[11] = '1';
                IF strpos(v_ctx, {_text(ESCAPE)}) > 0 THEN
                    v_user := {_decoded("v_user")};
                    v_user_pk := {_decoded("v_user_pk")};
                    v_row := {_decoded("v_row")};
                    v_reason := {_decoded("v_reason")};
                END IF;
                v_ok := {lengths};
            END IF;
        ELSE
            {per_value}
            v_skip := current_setting('{SETTING_NAMES[-1]}', true) = '1';
            v_ok := {lengths} AND {patterns};
        END IF;
        IF NOT v_ok THEN
            RAISE WARNING {_MALFORMED}, TG_TABLE_NAME;
            v_assignation := NULL; v_app := NULL; v_task := NULL; v_user := NULL;
            v_user_pk := NULL; v_record := NULL; v_parent := NULL;
        END IF;
    """


#: The PL/pgSQL variables of :data:`koherent._trigger_context.SETTING_NAMES` (the skip flag
#: aside).
_VARIABLES = (
    "v_assignation",
    "v_app",
    "v_task",
    "v_user",
    "v_user_pk",
    "v_record",
    "v_parent",
    "v_row",
    "v_reason",
)


def _record_sql(
    assignation_model: Any,
    history: Any,
    user_check: tuple[str, str] | None,
    user_field: Any,
) -> str:
    """The write of the assignation's record (and what it touched), once per connection.

    Guarded by the setting ``koherent.recorded`` (``<assignation>|<history table>``), set for
    the session once written or found: it lasts when the transaction commits, and a rollback
    (of a savepoint too) takes it back with the record, so the statements after an
    assignation's first on a connection — in autocommit mode too, where every statement is a
    transaction of its own — skip the block. Otherwise the table's entry and the record are
    both inserted, ``ON CONFLICT DO NOTHING``, in one statement: what is missing is written,
    what is there is left, and a fresh assignation (the common case) pays no lookup before
    its inserts; an assignation recorded by another connection pays two inserts that find
    their rows, and write nothing. A record
    deleted by hand while its assignation still writes through a connection that set the
    setting is not written again by that connection (its rows are still found by the full
    scan of ``history_for_assignation``).
    A record that cannot be written (no table in this database, say) is a warning, never a
    failed change. The record and the table's entry on its list are written together or not
    at all; when they fail, the record says ``models_recorded = FALSE`` (written so, or marked
    so when it was there), so that no reader trusts a list that may lack this table, and no
    later write makes it vouch for the list again.
    """
    from django.conf import settings

    from koherent._assignations import AssignationModel
    from koherent.records import model_key

    meta = assignation_model._meta
    record_user = "NULL"
    if (
        user_check is not None
        and user_field is not None
        and user_field.is_relation
        and user_field.related_model is not None
        and user_field.related_model._meta.label == settings.AUTH_USER_MODEL
    ):
        record_user = f"v_user::{user_check[0]}"
    key = f"v_assignation || {_text('|' + history._meta.db_table)}"
    table = qn(meta.db_table)
    touched = AssignationModel._meta
    touched_table = qn(touched.db_table)
    touched_assignation = qn(str(touched.get_field("assignation").column))
    touched_model = qn(str(touched.get_field("model").column))
    columns = (
        '"id", "user_id", "user_pk", "app", "origin", "parent_id", "task_id", "created", '
        '"models_recorded"'
    )
    values = (
        f"v_assignation, {record_user}, v_user_pk, v_app, v_record, v_parent, v_task, "
        "clock_timestamp()"
    )
    failed = f"""
                EXCEPTION WHEN OTHERS THEN
                    RAISE WARNING {_RECORD_FAILED}, SQLERRM;
                    -- The list may lack this table now and later: the record (written here
                    -- when it can be, or already there) says so, so that the readers scan
                    -- every tracked table for this assignation and a later write cannot
                    -- make it vouch for its list again.
                    BEGIN
                        INSERT INTO {table} ({columns}) VALUES ({values}, FALSE)
                        ON CONFLICT ("id") DO UPDATE SET "models_recorded" = FALSE
                        WHERE {table}."models_recorded";
                    EXCEPTION WHEN OTHERS THEN
                        NULL;
                    END;
                END;"""
    return f"""
        IF v_record IS NOT NULL AND v_assignation IS NOT NULL
                AND current_setting('koherent.recorded', true) IS DISTINCT FROM {key} THEN
            -- The list of touched models comes with a later migration than the records:
            -- where it exists, so does the record table.
            IF to_regclass({_text(touched_table)}) IS NOT NULL THEN
                -- This table's entry on the assignation's list and the record, all or
                -- nothing (one subtransaction), in one statement: a record whose list lacks
                -- a table it wrote to would hide that table's rows from the readers. Both
                -- are tried, ON CONFLICT DO NOTHING: an assignation's first write (the
                -- common case, a fresh assignation per request) pays no lookup first, and
                -- what is there already is left as it is.
                BEGIN
                    WITH entry AS (
                        INSERT INTO {touched_table} ({touched_assignation}, {touched_model})
                        VALUES (v_assignation, {_text(model_key(history))})
                        ON CONFLICT DO NOTHING
                    )
                    INSERT INTO {table} ({columns}) VALUES ({values}, TRUE)
                    ON CONFLICT ("id") DO NOTHING;{failed}
            ELSIF to_regclass({_text(table)}) IS NOT NULL THEN
                BEGIN
                    INSERT INTO {table} ({columns}) VALUES ({values}, TRUE)
                    ON CONFLICT ("id") DO NOTHING;{failed}
            END IF;
            PERFORM set_config('koherent.recorded', {key}, false);
        END IF;
    """


def triggers_for(*, capture_unchanged: bool) -> list[CaptureTrigger]:
    """The three capture triggers of one model."""
    return [
        CaptureTrigger(name="koherent_insert", operation=pgtrigger.Insert),
        CaptureTrigger(
            name="koherent_update", operation=pgtrigger.Update, capture_unchanged=capture_unchanged
        ),
        CaptureTrigger(name="koherent_delete", operation=pgtrigger.Delete),
    ]


def register(model: Any, *, capture_unchanged: bool) -> None:
    """Register ``model``'s capture triggers with pgtrigger (so its migrations have them)."""
    existing = {t.name for t in getattr(model._meta, "triggers", [])}
    for trigger in triggers_for(capture_unchanged=capture_unchanged):
        if trigger.name not in existing:
            trigger.register(model)
