"""Assignation records: lazy, written once, never a reason for a save to fail."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent.models import Assignation, AssignationModel
from tests.soak.introspect import kept_on_connection
from tests.testapp.models import Item, Order

pytestmark = pytest.mark.django_db


_RECORD_INSERT = re.compile(r'INSERT (?:OR IGNORE |IGNORE )?INTO ["`]koherent_assignation["`] ')


def _record_inserts(queries: CaptureQueriesContext) -> int:
    """Record inserts sent, also inside a multi-statement query with the history row."""
    return sum(len(_RECORD_INSERT.findall(q["sql"])) for q in queries.captured_queries)


@pytest.mark.signal_capture
def test_record_written_once_per_assignation(user: Any) -> None:
    with CaptureQueriesContext(connection) as queries, koherent.assignation(user=user) as ctx:
        for n in range(5):
            order = Order.objects.create(reference=f"o{n}")
            Item.objects.create(order=order, name="i")
    assert _record_inserts(queries) == 1
    record = Assignation.objects.get()
    assert record.id == ctx.assignation_id
    assert (record.user_id, record.user_pk, record.origin) == (user.pk, str(user.pk), "manual")


def test_no_record_without_history() -> None:
    with koherent.assignation():
        pass
    assert not Assignation.objects.exists()


def test_parent_and_origin_recorded() -> None:
    with koherent.assignation(app="outer") as outer:
        Order.objects.create(reference="outer")
        with koherent.assignation(origin="revert") as inner:
            Order.objects.create(reference="inner")
    child = Assignation.objects.get(pk=inner.assignation_id)
    assert child.parent_id == outer.assignation_id
    assert child.origin == "revert"
    assert child.app == "outer"
    assert list(Assignation.objects.get(pk=outer.assignation_id).children.all()) == [child]


def test_record_can_be_turned_off(settings: Any) -> None:
    settings.KOHERENT = {"RECORD_ASSIGNATIONS": False}
    with koherent.assignation() as ctx:
        Order.objects.create(reference="o")
    assert Order.history.get().assignation_id == ctx.assignation_id
    assert not Assignation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_first_change_rolled_back_then_another(user: Any) -> None:
    """The record written with a rolled-back change is written again by the next change."""
    with koherent.assignation(user=user) as ctx:
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(reference="rolled-back")
            assert Assignation.objects.filter(pk=ctx.assignation_id).exists()
            raise RuntimeError("abort")
        assert not Assignation.objects.exists()
        Order.objects.create(reference="kept")
    assert list(Order.objects.values_list("reference", flat=True)) == ["kept"]
    assert Order.history.get().assignation_id == ctx.assignation_id
    assert Assignation.objects.get().id == ctx.assignation_id


@pytest.mark.django_db(transaction=True)
def test_savepoint_rollback_then_another_change() -> None:
    with koherent.assignation() as ctx, transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(reference="inner")
            raise RuntimeError("abort savepoint")
        Order.objects.create(reference="outer")
    assert Assignation.objects.filter(pk=ctx.assignation_id).exists()


@pytest.mark.django_db(transaction=True)
def test_committed_record_is_not_written_again() -> None:
    with koherent.assignation():
        Order.objects.create(reference="first")  # autocommit: record known after commit
        with CaptureQueriesContext(connection) as queries:
            Order.objects.create(reference="second")
    assert _record_inserts(queries) == 0


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_record_failure_never_fails_the_change(caplog: pytest.LogCaptureFixture) -> None:
    """With the record table gone, changes and history are still written (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE koherent_assignation RENAME TO koherent_assignation_away")
    try:
        with caplog.at_level(logging.WARNING, "koherent"), koherent.assignation() as ctx:
            Order.objects.create(reference="still-saved")
            with transaction.atomic():
                Order.objects.create(reference="in-a-transaction")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE koherent_assignation_away RENAME TO koherent_assignation")
    assert Order.objects.count() == 2
    assert set(Order.history.values_list("assignation_id", flat=True)) == {ctx.assignation_id}
    assert "could not write the record of assignation" in caplog.text


def test_bulk_path_writes_the_record() -> None:
    from simple_history.utils import bulk_create_with_history

    with koherent.assignation(app="bulk") as ctx:
        bulk_create_with_history([Order(reference="b")], Order)
    assert Assignation.objects.get().app == "bulk"
    assert Assignation.objects.get().id == ctx.assignation_id


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_record_write_losing_its_connection_fails_the_change_with_that_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The backend is terminated just as the record is written: the save fails with the
    connection's own error, nothing of it is written, and no warning says it was kept."""
    import psycopg
    from django.db import OperationalError

    settings = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()

    def terminate_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # The record's INSERT travels alone or ahead of the history row's, in one query.
        if 'INSERT INTO "koherent_assignation"' in sql:
            with psycopg.connect(
                host=settings["HOST"] or "127.0.0.1",
                port=settings["PORT"] or 5432,
                user=settings["USER"],
                dbname=settings["NAME"],
                autocommit=True,
            ) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        return execute(sql, params, many, context)

    try:
        with (
            caplog.at_level(logging.WARNING, "koherent"),
            koherent.assignation(app="doomed"),
            connection.execute_wrapper(terminate_first),
            pytest.raises(OperationalError) as raised,
        ):
            Order.objects.create(reference="never")
    finally:
        connection.close()
    assert "terminat" in str(raised.value) or "closed" in str(raised.value), raised.value
    assert "could not write the record" not in caplog.text
    assert not Order.objects.exists()
    assert not Order.history.exists()
    assert not Assignation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_connection_keeps_nothing_per_past_transaction(user: Any) -> None:
    """A connection outlives its transactions (a worker thread's, a server thread's, for the
    life of the process): what Koherent keeps on it about records written but not committed
    yet is about the current transaction only, not an entry per assignation it ever wrote
    (a Celery threads pool grew by about 0.5 KiB per task that way)."""
    # The state of the last transaction that wrote a record from Python may be there from an
    # earlier test (one rolled back leaves it until the next replaces it; trigger capture's
    # writes do not touch it): bounded, and not this test's subject.
    before = kept_on_connection(DEFAULT_DB_ALIAS)
    for n in range(50):
        with koherent.assignation(user=user):
            Order.objects.create(reference=f"o{n}")
    # At most the keys of one transaction (its record and its model's entry): 50 more
    # transactions added nothing.
    assert kept_on_connection(DEFAULT_DB_ALIAS) <= max(before, 2)
    with transaction.atomic(), koherent.assignation(user=user):
        Order.objects.create(reference="inside")
        assert kept_on_connection(DEFAULT_DB_ALIAS) <= max(before, 2)
        with CaptureQueriesContext(connection) as queries:
            Order.objects.create(reference="again")
        assert _record_inserts(queries) == 0  # still known within the transaction
    assert Assignation.objects.count() == 51


@pytest.mark.postgres
def test_the_record_table_has_no_pattern_ops_indexes() -> None:
    """Django's ``<column>_like`` indexes (``varchar_pattern_ops``) serve no lookup Koherent
    makes and cost a third of a record's write: migration 0004 drops them, and its reverse
    makes them again."""
    from django.db.migrations.executor import MigrationExecutor

    def pattern_indexes() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'koherent_assignation' "
                "AND indexdef LIKE '%%pattern_ops%%' ORDER BY indexname"
            )
            return [row[0] for row in cursor.fetchall()]

    assert pattern_indexes() == []
    executor = MigrationExecutor(connection)
    executor.migrate([("koherent", "0003_assignation_models")])
    try:
        assert len(pattern_indexes()) == 4
        assert {name.split("_like")[0].rsplit("_", 1)[0] for name in pattern_indexes()} == {
            "koherent_assignation_app",
            "koherent_assignation_id",
            "koherent_assignation_origin",
            "koherent_assignation_parent_id",
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([("koherent", "0004_drop_pattern_ops_indexes")])
    assert pattern_indexes() == []


@contextmanager
def _entries_refused(label: str) -> Iterator[None]:
    """The list table refuses ``label``'s entry (a trigger raising an error), then accepts it
    again. An error, not a constraint: ``INSERT OR IGNORE`` and ``INSERT IGNORE`` skip a row
    that breaks a constraint instead of failing."""
    vendor = connection.vendor
    literal = "'" + label.replace("'", "''") + "'"
    create = {
        "postgresql": [
            "CREATE FUNCTION koherent_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF NEW.model = {literal} THEN RAISE EXCEPTION 'entry refused'; END IF; "
            "RETURN NEW; END $$",
            "CREATE TRIGGER koherent_test_refuse BEFORE INSERT ON koherent_assignationmodel "
            "FOR EACH ROW EXECUTE FUNCTION koherent_test_refuse()",
        ],
        "sqlite": [
            "CREATE TRIGGER koherent_test_refuse BEFORE INSERT ON koherent_assignationmodel "
            f"WHEN NEW.model = {literal} BEGIN SELECT RAISE(ABORT, 'entry refused'); END",
        ],
        "mysql": [
            "CREATE TRIGGER koherent_test_refuse BEFORE INSERT ON koherent_assignationmodel "
            f"FOR EACH ROW BEGIN IF NEW.model = {literal} THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'entry refused'; END IF; END",
        ],
    }[vendor]
    drop = ["DROP TRIGGER koherent_test_refuse"]
    if vendor == "postgresql":
        drop = [
            "DROP TRIGGER koherent_test_refuse ON koherent_assignationmodel",
            "DROP FUNCTION koherent_test_refuse()",
        ]
    with connection.cursor() as cursor:
        for sql in create:
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in drop:
                cursor.execute(sql)


@pytest.mark.signal_capture
@pytest.mark.django_db(transaction=True)
def test_a_list_entry_that_cannot_be_written_leaves_no_record_vouching_for_the_list(
    user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A model's entry on an assignation's list fails: the record written (or found) says
    its list is incomplete, so that the readers scan every table and find that model's rows,
    also after a later change of another model under the same assignation."""
    order = Order.objects.create(reference="outside")  # no assignation
    with caplog.at_level(logging.WARNING, "koherent"), _entries_refused("testapp.Item"):
        # The assignation's first write fails its record statements; a later save of another
        # model must not then write a record vouching for a list without Item.
        with koherent.assignation("a-listless", user=user):
            Item.objects.create(order=order, name="first")
            Order.objects.create(reference="then")
        # The record and Order's entry exist (committed) when Item's entry fails.
        with koherent.assignation("a-partial", user=user):
            Order.objects.create(reference="listed")
            with transaction.atomic():
                Item.objects.create(order=order, name="unlisted")
    assert "could not write the record of assignation" in caplog.text
    for name in ("a-listless", "a-partial"):
        record = Assignation.objects.get(pk=name)
        assert not record.models_recorded, name
        assert record.user_id == user.pk, name
        labels = {e.model_label for e in koherent.history_for_assignation(name)}
        assert labels == {"testapp.Item", "testapp.Order"}, name


@pytest.fixture
def atomic_saves_off(settings: Any) -> None:
    """``ATOMIC_SAVES`` off: a tracked save's history row is saved outside any transaction
    (autocommit), apart from the change, as with simple-history alone."""
    settings.KOHERENT = {**settings.KOHERENT, "ATOMIC_SAVES": False}


def _xmin(table: str, column: str, value: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text::bigint FROM {table} WHERE {column} = %s", [value])
        row = cursor.fetchone()
    assert row is not None, (table, value)
    return int(row[0])


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_saves_off")
def test_outside_a_transaction_the_record_commits_with_the_history_row(user: Any) -> None:
    """``ATOMIC_SAVES`` off: the change commits on its own, as with simple-history alone;
    the history row, its record and its list entry commit together, in one statement."""
    with koherent.assignation(user=user) as ctx:
        order = Order.objects.create(reference="apart")
    history = Order.history.get()
    row = _xmin("testapp_historicalorder", "history_id", history.history_id)
    assert _xmin("koherent_assignation", "id", ctx.assignation_id) == row
    assert _xmin("koherent_assignationmodel", "assignation_id", ctx.assignation_id) == row
    assert _xmin("testapp_order", "id", order.pk) != row  # simple-history's two transactions
    assert Assignation.objects.get().user_id == user.pk
    # Negative: a save without context right after writes no record.
    Order.objects.create(reference="no context")
    assert Assignation.objects.count() == 1
    assert Order.history.filter(assignation_id__isnull=True).count() == 1


@pytest.fixture
def server_side_binding() -> Iterator[None]:
    """The default connection reconnected with psycopg's server-side binding (Django's
    ``OPTIONS['server_side_binding']``): parameters travel apart from the statement."""
    options = connection.settings_dict.setdefault("OPTIONS", {})
    kept = options.get("server_side_binding")
    options["server_side_binding"] = True
    connection.close()
    try:
        yield
    finally:
        if kept is None:
            options.pop("server_side_binding", None)
        else:
            options["server_side_binding"] = kept
        connection.close()


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_saves_off", "server_side_binding")
def test_outside_a_transaction_with_server_side_binding_the_record_goes_in_the_row_statement(
    user: Any,
) -> None:
    """The ``WITH`` statement carrying the record binds its parameters on the server too:
    one statement for the first save, and the record commits with the history row."""
    connection.ensure_connection()
    assert connection.connection is not None
    assert connection.connection.cursor_factory.__name__ == "ServerBindingCursor"
    with koherent.assignation(user=user) as ctx:
        with CaptureQueriesContext(connection) as first:
            order = Order.objects.create(reference="first")
        with CaptureQueriesContext(connection) as later:
            Order.objects.create(reference="later")
    statements = [q["sql"] for q in first.captured_queries]
    assert len(statements) == 2, statements
    assert statements[1].startswith("WITH koherent_w0 AS (INSERT INTO"), statements
    assert len(later.captured_queries) == 2
    assert not any("koherent_w0" in q["sql"] for q in later.captured_queries)
    history = Order.history.get(reference="first")
    row = _xmin("testapp_historicalorder", "history_id", history.history_id)
    assert _xmin("koherent_assignation", "id", ctx.assignation_id) == row
    assert _xmin("koherent_assignationmodel", "assignation_id", ctx.assignation_id) == row
    assert _xmin("testapp_order", "id", order.pk) != row
    record = Assignation.objects.get()
    assert (record.pk, record.user_id) == (ctx.assignation_id, user.pk)
    assert Order.history.filter(assignation_id=ctx.assignation_id).count() == 2


@contextmanager
def _refused(table: str, column: str, value: str) -> Iterator[None]:
    """``table`` refuses rows whose ``column`` is ``value`` (a check constraint)."""
    literal = "'" + value.replace("'", "''") + "'"
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT koherent_test_refused "
            f"CHECK ({column} IS DISTINCT FROM {literal})"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT koherent_test_refused")


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_saves_off")
def test_outside_a_transaction_a_failing_record_still_saves_the_row_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The record cannot be written: the statement with the row fails as a whole, then the
    row is written alone (once), and the record's failure is logged."""
    with (
        _refused("koherent_assignation", "app", "refused"),
        caplog.at_level(logging.WARNING, "koherent"),
        koherent.assignation(app="refused") as ctx,
    ):
        Order.objects.create(reference="kept")
    assert Order.history.get().assignation_id == ctx.assignation_id
    assert not Assignation.objects.exists()
    failures = [r for r in caplog.records if "could not write the record" in r.getMessage()]
    assert len(failures) == 1
    assert "koherent_test_refused" in failures[0].getMessage()
    # Rows without a record are still found.
    rows = list(koherent.history_for_assignation(ctx.assignation_id or "").rows())
    assert [getattr(r, "reference", None) for r in rows] == ["kept"]


@pytest.mark.signal_capture
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("atomic_saves_off")
def test_outside_a_transaction_a_failing_history_row_leaves_no_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The history row's own ``INSERT`` fails: its error is raised, and no record is left
    for an assignation without a history row."""
    from django.db import IntegrityError

    with (
        _refused("testapp_historicalorder", "reference", "refused"),
        caplog.at_level(logging.WARNING, "koherent"),
        koherent.assignation(),
        pytest.raises(IntegrityError, match="koherent_test_refused"),
    ):
        Order.objects.create(reference="refused")
    assert Order.objects.filter(reference="refused").exists()  # simple-history's behaviour
    assert not Order.history.exists()
    assert not Assignation.objects.exists()
    assert not AssignationModel.objects.exists()
    assert "could not write the record" not in caplog.text
