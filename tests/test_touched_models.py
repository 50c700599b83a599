"""The first write of an assignation costs what a later one costs; reads touch what it wrote.

Every history row's assignation record, and the record's list of the tracked models the
assignation wrote to (:class:`koherent.models.AssignationModel`), are written with the row:
on PostgreSQL in the same query (one round trip), on SQLite as in-process statements of their
own, on MySQL/MariaDB as statements of their own in a savepoint (only PostgreSQL's driver runs
multi-statement queries, see ``koherent.records._one_round_trip``): four more round trips on
an assignation's first save of a model there. Reading an assignation's history then reads
only the tables on that list.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent import records
from koherent._registry import tracked_models
from koherent.models import Assignation, AssignationModel
from tests.history_reads import first_page_in_one_query, tables_read
from tests.testapp.models import Item, Order
from tests.undoapp.models import Invoice

pytestmark = pytest.mark.django_db

_STATEMENT = re.compile(
    r"^(SAVEPOINT|RELEASE SAVEPOINT|INSERT (?:OR IGNORE |IGNORE )?INTO|UPDATE|SELECT .*? FROM) "
    r'([`"]?\w+[`"]?)'
)
#: The name Django gives a savepoint of ``atomic()`` (MySQL/MariaDB's record statements).
_DJANGO_SAVEPOINT = re.compile(r"^s\d+_x\d+$")
_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}
POSTGRES = connection.vendor == "postgresql"
MYSQL = connection.vendor == "mysql"


#: A statement whose ``WITH`` queries write: ``WITH name AS (INSERT INTO "table" ...``.
_WRITING_WITH = re.compile(r'\b\w+ AS \(INSERT INTO "(\w+)"')


def _with_shape(statement: str) -> str:
    """``WITH <verb table>, ...: <verb table>`` of a statement with writing ``WITH`` queries
    (the record statements of a history row saved outside a transaction, PostgreSQL)."""
    ctes = _WRITING_WITH.findall(statement)
    main = statement[statement.rindex(") INSERT INTO ") + 2 :]
    found = _STATEMENT.match(main)
    assert ctes, statement
    assert found is not None, statement
    inner = ", ".join(f"INSERT INTO {table}" for table in ctes)
    name = found.group(2).strip('`"')
    return f"WITH {inner}: {found.group(1)} {name}"


def _shape(queries: CaptureQueriesContext) -> list[list[str]]:
    """Each query sent (one round trip) as its statements, ``verb table`` each."""
    shapes = []
    for query in queries.captured_queries:
        statements = []
        for statement in query["sql"].split("; "):
            if statement in _CONTROL:
                statements.append(statement)
                continue
            if statement.startswith("WITH "):
                statements.append(_with_shape(statement))
                continue
            found = _STATEMENT.match(statement)
            assert found is not None, statement
            verb = "SELECT" if found.group(1).startswith("SELECT") else found.group(1)
            name = found.group(2).strip('`"')
            if verb.endswith("SAVEPOINT") and _DJANGO_SAVEPOINT.match(name):
                name = "<atomic>"
            statements.append(f"{verb} {name}")
        shapes.append(statements)
    return shapes


RECORD = "INSERT INTO koherent_assignation"
ENTRY = "INSERT INTO koherent_assignationmodel"
SQLITE_RECORD = "INSERT OR IGNORE INTO koherent_assignation"
SQLITE_ENTRY = "INSERT OR IGNORE INTO koherent_assignationmodel"
MYSQL_RECORD = "INSERT IGNORE INTO koherent_assignation"
MYSQL_ENTRY = "INSERT IGNORE INTO koherent_assignationmodel"


def _transaction(statements: list[list[str]], autocommit: bool) -> list[list[str]]:
    """A tracked save in autocommit mode is one transaction (see koherent._transactions)."""
    return [["BEGIN"], *statements, ["COMMIT"]] if autocommit else statements


def _expected_first(
    model_table: str, history_table: str, *, record: bool = True, autocommit: bool = False
) -> list[list[str]]:
    if POSTGRES:
        together = ["SAVEPOINT koherent_record"]
        together += [RECORD] if record else []
        together += [ENTRY, "RELEASE SAVEPOINT koherent_record", f"INSERT INTO {history_table}"]
        return _transaction([[f"INSERT INTO {model_table}"], together], autocommit)
    if MYSQL:
        statements = [f"INSERT INTO {model_table}", "SAVEPOINT <atomic>"]
        statements += [MYSQL_RECORD] if record else []
        statements += [MYSQL_ENTRY, "RELEASE SAVEPOINT <atomic>", f"INSERT INTO {history_table}"]
        return _transaction([[statement] for statement in statements], autocommit)
    first = [[f"INSERT INTO {model_table}"]]
    first += [[SQLITE_RECORD]] if record else []
    first += [[SQLITE_ENTRY], [f"INSERT INTO {history_table}"]]
    return _transaction(first, autocommit)


def _expected_later(
    model_table: str, history_table: str, *, autocommit: bool = False
) -> list[list[str]]:
    return _transaction(
        [[f"INSERT INTO {model_table}"], [f"INSERT INTO {history_table}"]], autocommit
    )


def _first_and_later_saves(user: Any) -> tuple[CaptureQueriesContext, CaptureQueriesContext]:
    with koherent.assignation(user=user) as ctx:
        with CaptureQueriesContext(connection) as first:
            Order.objects.create(reference="first")
        with CaptureQueriesContext(connection) as later:
            Order.objects.create(reference="later")
    record = Assignation.objects.get()
    assert (record.pk, record.user_id, record.models_recorded) == (
        ctx.assignation_id,
        user.pk,
        True,
    )
    assert list(AssignationModel.objects.values_list("assignation_id", "model")) == [
        (ctx.assignation_id, "testapp.Order")
    ]
    return first, later


@pytest.mark.signal_capture
@pytest.mark.django_db(transaction=True)
def test_first_save_of_a_fresh_assignation_costs_no_extra_round_trip(user: Any) -> None:
    """Autocommit: the record travels with the history row (PostgreSQL)."""
    first, later = _first_and_later_saves(user)
    assert _shape(first) == _expected_first(
        "testapp_order", "testapp_historicalorder", autocommit=True
    )
    assert _shape(later) == _expected_later(
        "testapp_order", "testapp_historicalorder", autocommit=True
    )
    if POSTGRES:
        assert len(first) == len(later) == 4
    elif MYSQL:  # a savepoint, the two inserts and its release, each a query
        assert len(first) == len(later) + 4
    else:  # SQLite: no round trips to save; the record is two in-process statements
        assert len(first) == len(later) + 2


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_first_save_outside_a_transaction_costs_no_extra_round_trip(
    user: Any, settings: Any
) -> None:
    """``ATOMIC_SAVES`` off, autocommit: the history row is saved outside any transaction,
    and its record and list entry go in the row's own ``INSERT``, as ``WITH`` queries: no
    ``BEGIN``, no ``COMMIT``, two statements like a later save's (four more before)."""
    from simple_history.signals import post_create_historical_record

    settings.KOHERENT = {**settings.KOHERENT, "ATOMIC_SAVES": False}
    saved: list[Any] = []

    def keep(history_instance: Any, **kwargs: Any) -> None:
        saved.append(history_instance)

    post_create_historical_record.connect(keep)
    try:
        first, later = _first_and_later_saves(user)
    finally:
        post_create_historical_record.disconnect(keep)
    assert _shape(first) == [
        ["INSERT INTO testapp_order"],
        [f"WITH {RECORD}, {ENTRY}: INSERT INTO testapp_historicalorder"],
    ]
    assert _shape(later) == _expected_later("testapp_order", "testapp_historicalorder")
    assert len(first) == len(later) == 2
    # The key the statement returned reached the history instance, as a plain INSERT's does.
    rows = list(Order.history.order_by("history_id").values_list("history_id", "reference"))
    assert [(h.history_id, h.reference) for h in saved] == rows
    assert [reference for _, reference in rows] == ["first", "later"]


@pytest.mark.signal_capture
def test_first_save_inside_a_transaction_costs_no_extra_round_trip(user: Any) -> None:
    with transaction.atomic():
        first, later = _first_and_later_saves(user)
    assert _shape(first) == _expected_first("testapp_order", "testapp_historicalorder")
    assert _shape(later) == _expected_later("testapp_order", "testapp_historicalorder")
    if POSTGRES:
        assert len(first) == len(later)


@pytest.mark.signal_capture
def test_each_model_is_listed_once_with_its_first_row() -> None:
    with koherent.assignation() as ctx:
        order = Order.objects.create(reference="o")
        with CaptureQueriesContext(connection) as first_item:
            Item.objects.create(order=order, name="first item")
        with CaptureQueriesContext(connection) as more:
            for n in range(3):
                Item.objects.create(order=order, name=f"item {n}")
                order.status = f"s{n}"
                order.save()
    # The record is known; only the new model is added, with the item's history row.
    assert _shape(first_item) == _expected_first(
        "testapp_item", "testapp_historicalitem", record=False
    )
    assert not any("koherent_" in q["sql"] for q in more.captured_queries)
    assert sorted(
        AssignationModel.objects.filter(assignation_id=ctx.assignation_id).values_list(
            "model", flat=True
        )
    ) == ["testapp.Item", "testapp.Order"]


def test_history_reads_only_the_tables_the_assignation_wrote_to() -> None:
    assert len(tracked_models()) >= 9
    with koherent.assignation() as ctx:
        order = Order.objects.create(reference="o")
        Invoice.objects.create(number="I-1")
        order.status = "paid"
        order.save()
    assert ctx.assignation_id is not None
    history = koherent.history_for_assignation(ctx.assignation_id)
    with tables_read() as read, CaptureQueriesContext(connection) as queries:
        rows: list[Any] = list(history.rows())
        counts = history.counts()
        models = [t.label for t in history.models()]
    assert [r.history_type for r in rows] == ["+", "+", "~"]
    assert counts == {"testapp.Order": 2, "undoapp.Invoice": 1}
    assert models == ["testapp.Order", "undoapp.Invoice"]
    assert read == {"testapp_historicalorder", "undoapp_historicalinvoice"}
    # The list is read by primary key: one query per read, not one per table. On PostgreSQL
    # the history function reads it with the rows, in the same query.
    entries = connection.ops.quote_name(AssignationModel._meta.db_table)
    lookups = [q for q in queries.captured_queries if entries in q["sql"]]
    if first_page_in_one_query():
        assert len(lookups) == 2
        assert len(queries) == 5  # rows, lookup + counts, lookup + counts
    else:
        assert len(lookups) == 3
        assert len(queries) == 6  # lookup + rows, lookup + counts, lookup + counts


def _forget_the_list(assignation_id: str) -> None:
    """Make the record look like one written before records listed their models."""
    AssignationModel.objects.filter(assignation_id=assignation_id).delete()
    Assignation.objects.filter(pk=assignation_id).update(models_recorded=False)


def test_rows_written_before_the_list_are_still_found() -> None:
    with koherent.assignation() as ctx:
        Order.objects.create(reference="o")
        Invoice.objects.create(number="I-1")
    assert ctx.assignation_id is not None
    _forget_the_list(ctx.assignation_id)
    with tables_read() as read:
        rows = list(koherent.history_for_assignation(ctx.assignation_id).rows())
    assert len(rows) == 2
    everything = {t.history_model._meta.db_table for t in tracked_models()}
    assert read == everything  # the full scan


def test_rows_without_a_record_are_still_found() -> None:
    """Rows written by raw SQL (or with records turned off) have no record: full scan."""
    with koherent.assignation() as ctx:
        Order.objects.create(reference="o")
    Assignation.objects.all().delete()
    records.clear_cache()
    assert ctx.assignation_id is not None
    assert not AssignationModel.objects.exists()  # went with its record
    rows: list[Any] = list(koherent.history_for_assignation(ctx.assignation_id).rows())
    assert [r.reference for r in rows] == ["o"]


def test_a_record_from_before_the_list_gets_no_list_from_later_rows() -> None:
    """An assignation spanning the upgrade: its old record stays a full-scan one."""
    with koherent.assignation() as ctx:
        Order.objects.create(reference="old")
    assert ctx.assignation_id is not None
    _forget_the_list(ctx.assignation_id)
    records.clear_cache()
    with koherent.context(assignation_id=ctx.assignation_id):
        Invoice.objects.create(number="new")
    assert not Assignation.objects.get().models_recorded
    rows = list(koherent.history_for_assignation(ctx.assignation_id).rows())
    assert len(rows) == 2


@pytest.mark.django_db(transaction=True)
def test_rollback_leaves_no_record_and_no_list() -> None:
    with koherent.assignation() as ctx:
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(reference="rolled back")
            assert AssignationModel.objects.filter(assignation_id=ctx.assignation_id).exists()
            raise RuntimeError("abort")
        assert not Assignation.objects.exists()
        assert not AssignationModel.objects.exists()
        Order.objects.create(reference="kept")  # written again
    assert AssignationModel.objects.get().model == "testapp.Order"
    assert Assignation.objects.get().models_recorded


@pytest.mark.django_db(transaction=True)
def test_savepoint_rollback_writes_the_list_entry_again() -> None:
    with koherent.assignation() as ctx, transaction.atomic():
        Order.objects.create(reference="listed")  # record and Order entry
        with pytest.raises(RuntimeError), transaction.atomic():
            Item.objects.create(order=Order.objects.get(), name="gone")  # Item entry
            raise RuntimeError("abort savepoint")
        Item.objects.create(order=Order.objects.get(), name="kept")
    assert sorted(
        AssignationModel.objects.filter(assignation_id=ctx.assignation_id).values_list(
            "model", flat=True
        )
    ) == ["testapp.Item", "testapp.Order"]


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_missing_list_table_never_fails_the_change(caplog: pytest.LogCaptureFixture) -> None:
    """Code upgraded before ``migrate`` ran: changes and history are still written."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE koherent_assignationmodel RENAME TO koherent_away")
    try:
        with caplog.at_level(logging.WARNING, "koherent"), koherent.assignation() as ctx:
            Order.objects.create(reference="autocommit")
            with transaction.atomic():
                Order.objects.create(reference="in a transaction")
                Item.objects.create(order=Order.objects.first(), name="and another model")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE koherent_away RENAME TO koherent_assignationmodel")
    assert Order.objects.count() == 2
    assert Order.history.count() == 2
    assert Item.history.get().assignation_id == ctx.assignation_id
    assert "could not write the record of assignation" in caplog.text
    # The reason, on one line: not the query psycopg quotes below it, with its values.
    failures = [r for r in caplog.records if "could not write the record" in r.getMessage()]
    assert failures
    assert all("\n" not in r.getMessage() for r in failures)
    assert all("koherent_assignationmodel" in r.getMessage() for r in failures)
    assert not any("INSERT" in r.getMessage() for r in failures)
    # The record and its list were rolled back with their savepoint each time; the record
    # left in their place says that its list is incomplete.
    assert not Assignation.objects.get(pk=ctx.assignation_id).models_recorded
    # Reading outside a transaction falls back to every tracked table, with a warning.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE koherent_assignation RENAME TO koherent_away")
    try:
        assert len(list(koherent.history_for_assignation(ctx.assignation_id or "").rows())) == 3
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE koherent_away RENAME TO koherent_assignation")
    assert "could not read the models assignation" in caplog.text
    # Nothing was remembered as written: with the table back, the next change writes both.
    with koherent.context(assignation_id=ctx.assignation_id):
        Order.objects.create(reference="after")
    assert AssignationModel.objects.get().model == "testapp.Order"
    assert not Assignation.objects.get(pk=ctx.assignation_id).models_recorded  # still not
    assert len(list(koherent.history_for_assignation(ctx.assignation_id or "").rows())) == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_history_insert_still_raises() -> None:
    """An error of the row's own INSERT is not mistaken for a record failure."""
    from django.db import IntegrityError

    with koherent.assignation():
        order = Order.objects.create(reference="o")
        row = Order.history.get()
    with koherent.assignation() as fresh, pytest.raises(IntegrityError), transaction.atomic():
        clone = type(row).objects.get(pk=row.pk)
        clone._state.adding = True
        clone.assignation_id = fresh.assignation_id  # the record goes with this row
        clone.save(force_insert=True)  # same history_id: the row's INSERT fails
    assert order.pk is not None
    assert Order.history.count() == 1
    assert Assignation.objects.count() == 1


def test_bulk_history_lists_the_model() -> None:
    from simple_history.utils import bulk_create_with_history

    with koherent.assignation() as ctx:
        bulk_create_with_history([Order(reference="b1"), Order(reference="b2")], Order)
    assert ctx.assignation_id is not None
    assert AssignationModel.objects.get().model == "testapp.Order"
    assert len(list(koherent.history_for_assignation(ctx.assignation_id).rows())) == 2


def test_touch_sql_adds_an_entry_once() -> None:
    """The SQL other writers (database triggers) run to list a model; idempotent."""
    with koherent.assignation() as ctx:
        Order.objects.create(reference="o")
    history_model = Item.history.model
    sql = records.touch_sql(history_model, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [ctx.assignation_id])
        cursor.execute(sql, [ctx.assignation_id])
    assert sorted(AssignationModel.objects.values_list("model", flat=True)) == [
        "testapp.Item",
        "testapp.Order",
    ]
    assert records.model_key(history_model) == "testapp.Item"


@pytest.mark.signal_capture
def test_records_turned_off_write_no_list(settings: Any) -> None:
    settings.KOHERENT = {"RECORD_ASSIGNATIONS": False}
    with koherent.assignation() as ctx, CaptureQueriesContext(connection) as queries:
        Order.objects.create(reference="o")
    assert len(queries) == 2
    assert not AssignationModel.objects.exists()
    assert ctx.assignation_id is not None
    assert len(list(koherent.history_for_assignation(ctx.assignation_id).rows())) == 1


class _NoTestappHistory:
    """A router keeping testapp's models (and their history) off every database."""

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        return False if app_label == "testapp" else None


def test_tracked_models_per_database_follow_the_routers(settings: Any) -> None:
    """The per-database answer is kept, and asked again when the routers change."""
    labels = {t.label for t in tracked_models("default")}
    assert "testapp.Order" in labels
    settings.DATABASE_ROUTERS = [f"{__name__}._NoTestappHistory"]
    routed = {t.label for t in tracked_models("default")}
    assert "testapp.Order" not in routed
    assert "undoapp.Invoice" in routed
    settings.DATABASE_ROUTERS = []
    assert {t.label for t in tracked_models("default")} == labels


def test_update_capture_lists_the_model() -> None:
    """``queryset.update()`` writes history on its own path; the model goes on the list."""
    order = Order.objects.create(reference="before", status="new")
    with koherent.assignation() as ctx:
        Invoice.objects.create(number="I-1")  # the record, listing undoapp.Invoice
        Order.objects.filter(pk=order.pk).update(status="paid")
    assert ctx.assignation_id is not None
    assert sorted(
        AssignationModel.objects.filter(assignation_id=ctx.assignation_id).values_list(
            "model", flat=True
        )
    ) == ["testapp.Order", "undoapp.Invoice"]
    rows = list(koherent.history_for_assignation(ctx.assignation_id).rows())
    assert [type(r).__name__ for r in rows] == ["HistoricalInvoice", "HistoricalOrder"]
