"""PostgreSQL: the function reading an assignation's first page in one query.

``migrate`` creates it; reads use it when it exists, and fall back to the two-query path (the
record's list, then the touched tables) when it does not. Both paths must read the same rows.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent._registry import tracked_model, tracked_models
from koherent.models import Assignation, AssignationModel
from koherent.query import (
    HistoryFunctions,
    _function,
    drop_stale_history_functions,
    functions,
    history_functions,
)
from tests.history_reads import tables_read, without_function
from tests.testapp.models import Order
from tests.undoapp.models import Invoice, Line

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def _reader() -> _function.Reader:
    found = _function.reader("default")
    assert found is not None
    return found


def _walk(assignation_id: str, first: int) -> list[tuple[Any, ...]]:
    """Every row of the assignation, page by page, as comparable values."""
    history = koherent.history_for_assignation(assignation_id)
    walked: list[tuple[Any, ...]] = []
    after = None
    while True:
        page = history.page(first=first, after=after)
        rows: list[Any] = list(page.rows)
        walked.extend(
            (
                tracked_model(type(r)).label,
                r.pk,
                r.history_type,
                r.history_date,
                r.assignation_id,
                r.history_user_id,
                dict(sorted((k, v) for k, v in r.__dict__.items() if not k.startswith("_"))),
            )
            for r in rows
        )
        if not page.has_next:
            return walked
        after = page.end_cursor


def _assignations(user: Any) -> list[str]:
    """Assignations of every kind the readers tell apart."""
    ids = []
    with koherent.assignation(user=user, app="shop") as ctx:  # three models, ties in time
        invoice = Invoice(number="f-1")
        invoice._history_date = T0  # type: ignore[attr-defined]
        invoice.save()
        for n in range(4):
            line = Line(invoice=invoice, position=n, product="p")
            line._history_date = T0  # type: ignore[attr-defined]
            line.save()
        Order.objects.create(reference="f-1")
        invoice.number = "f-1b"
        invoice.save()
    ids.append(ctx.assignation_id or "")
    with koherent.assignation() as ctx:  # a list that is not complete: every table
        Order.objects.create(reference="f-2")
        Invoice.objects.create(number="f-2")
    Assignation.objects.filter(pk=ctx.assignation_id).update(models_recorded=False)
    entries = AssignationModel.objects.filter(assignation_id=ctx.assignation_id)
    entries.filter(model="testapp.Order").delete()
    ids.append(ctx.assignation_id or "")
    with koherent.assignation() as ctx:  # no record (raw SQL, records turned off)
        Order.objects.create(reference="f-3")
    Assignation.objects.filter(pk=ctx.assignation_id).delete()
    ids.append(ctx.assignation_id or "")
    ids.append("f-nothing")  # no rows at all
    return ids


def test_migrate_created_the_function_and_install_is_idempotent() -> None:
    found = _reader()
    assert found.name.startswith(_function.PREFIX)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [found.name])
        assert cursor.fetchone() == (1,)
    assert _function.install("default") == found.name
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [found.name])
        assert cursor.fetchone() == (1,)


def test_the_function_and_the_two_query_path_read_the_same_rows(user: Any) -> None:
    ids = _assignations(user)
    through_function = {(a, first): _walk(a, first) for a in ids for first in (1, 3, 100)}
    with without_function():
        assert _function.reader("default") is None
        without = {(a, first): _walk(a, first) for a in ids for first in (1, 3, 100)}
    assert through_function == without
    assert [len(through_function[(a, 100)]) for a in ids] == [7, 2, 1, 0]
    # In order of date, then model label, then id (ties in time included) on both paths.
    keys = [(row[3], row[0], row[1]) for row in through_function[(ids[0], 100)]]
    assert keys == sorted(keys)


def test_a_first_page_is_one_query_that_reads_only_the_touched_tables(user: Any) -> None:
    first_id = _assignations(user)[0]
    found = _reader()
    with tables_read() as read, CaptureQueriesContext(connection) as queries:
        page = koherent.history_for_assignation(first_id).page(first=100)
    assert len(page.rows) == 7
    assert len(queries) == 1
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert found.name in sql
    assert not any(
        connection.ops.quote_name(t.history_model._meta.db_table) in sql for t in tracked_models()
    )
    assert read == {
        "undoapp_historicalinvoice",
        "undoapp_historicalline",
        "testapp_historicalorder",
    }
    # Iterating a larger assignation: the first batch in one query, then the list (once)
    # and two queries per later batch.
    with CaptureQueriesContext(connection) as queries:
        rows = list(koherent.history_for_assignation(first_id, batch_size=3).rows())
    assert len(rows) == 7
    assert len(queries) == 1 + 1 + 2 + 2


@pytest.mark.django_db(transaction=True)
def test_the_function_probes_the_assignation_index(user: Any) -> None:
    """Planned with sequential scans off, each statement of the function scans the tables it
    reads by an index (the session plans them once, so a session of its own)."""
    first_id = _assignations(user)[0]
    found = _reader()
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
    ) as other:
        other.execute("SET enable_seqscan = off")
        rows = other.execute(f'SELECT * FROM "{found.name}"(%s)', [first_id]).fetchall()
        scans = other.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
            "WHERE relid = 'undoapp_historicalline'::regclass"
        ).fetchone()
    assert len(rows) == 7
    assert scans is not None
    assert scans[0] == 0, scans
    assert scans[1] >= 1, scans


@pytest.mark.django_db(transaction=True)
def test_a_function_gone_is_read_around_and_looked_for_again_later(
    user: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function dropped behind the process's back: outside a transaction the read falls
    back to the two-query path with a warning, and the process stops calling it until it
    looks again (a minute later)."""
    first_id = _assignations(user)[0]
    found = _reader()
    expected = _walk(first_id, 100)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP FUNCTION "{found.name}"(text)')
        with caplog.at_level(logging.WARNING, "koherent"):
            assert _walk(first_id, 100) == expected  # the call fails, then the fallback
        assert f"could not read history through {found.name}" in caplog.text
        with CaptureQueriesContext(connection) as queries:
            assert _walk(first_id, 100) == expected
        assert len(queries) == 2  # the list, then the rows: the function is not called
        assert not any(found.name in q["sql"] for q in queries.captured_queries)
        # A minute later the process looks for it again (one query), and finds it missing.
        later = _function._now() + _function.RETRY_AFTER + 1
        monkeypatch.setattr(_function, "_now", lambda: later)
        with CaptureQueriesContext(connection) as queries:
            assert _walk(first_id, 100) == expected
        assert "to_regprocedure" in queries.captured_queries[0]["sql"]
        assert len(queries) == 3
    finally:
        _function.install("default")
    with CaptureQueriesContext(connection) as queries:
        assert _walk(first_id, 100) == expected
    assert len(queries) == 1


def test_a_function_gone_inside_a_transaction_fails_the_read_with_its_error(user: Any) -> None:
    """In a transaction the failed call has aborted it: the error is raised, not hidden."""
    first_id = _assignations(user)[0]
    found = _reader()
    try:
        with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f'DROP FUNCTION "{found.name}"(text)')
            list(koherent.history_for_assignation(first_id).rows())
    finally:
        _function.install("default")


def test_another_set_of_tracked_models_gets_another_function() -> None:
    found = _reader()
    fewer = tuple(t for t in found.group if t.label != "testapp.Order")
    other = _function._cached_definition("default", fewer, 0)
    assert other is not None
    assert other.name != found.name
    assert other.name.startswith(_function.PREFIX)
    assert "'testapp.Order'" in found.create
    assert "'testapp.Order'" not in other.create
    # Many tracked models are tested bucket by bucket; a few one by one.
    assert len(found.group) > 16
    assert found.create.count("v_touched && ARRAY[") == -(-len(found.group) // 8)
    few = _function._cached_definition("default", found.group[:5], 0)
    assert few is not None
    assert "v_touched &&" not in few.create


def test_turned_off_nothing_is_created_and_reads_send_the_two_queries(
    user: Any, settings: Any
) -> None:
    first_id = _assignations(user)[0]
    found = _reader()
    settings.KOHERENT = {**settings.KOHERENT, "HISTORY_FUNCTION": False}
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP FUNCTION "{found.name}"(text)')
        _function.on_post_migrate(using="default")  # what migrate runs
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [found.name])
            assert cursor.fetchone() == (0,)
        with CaptureQueriesContext(connection) as queries:
            rows = list(koherent.history_for_assignation(first_id).rows())
        assert len(rows) == 7
        assert len(queries) == 2
        assert not any(_function.PREFIX in q["sql"] for q in queries.captured_queries)
    finally:
        _function.install("default")


def test_a_database_where_it_cannot_be_created_is_logged_and_read_without(
    user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A role that may not create functions in the schema: migrate goes on, with a warning,
    and reads take the two-query path."""
    first_id = _assignations(user)[0]
    found = _reader()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP FUNCTION "{found.name}"(text)')
        cursor.execute("CREATE ROLE koherent_test_migrator NOLOGIN")
        cursor.execute("GRANT USAGE ON SCHEMA public TO koherent_test_migrator")
        cursor.execute("SET ROLE koherent_test_migrator")
    _function.clear_cache()
    try:
        with caplog.at_level(logging.WARNING, "koherent"):
            _function.on_post_migrate(using="default")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert "could not create the history reading function in database default" in caplog.text
    assert "permission denied for schema public" in caplog.text
    try:
        assert _function.reader("default") is None
        with CaptureQueriesContext(connection) as queries:
            assert len(list(koherent.history_for_assignation(first_id).rows())) == 7
        assert len(queries) == 2
    finally:
        _function.install("default")


def test_by_default_only_connections_that_persist_use_it(
    user: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"persistent"``: a connection closed after each request (``CONN_MAX_AGE = 0``, no
    pool) would plan the function's statements on every first call: the two queries are
    cheaper there. With ``CONN_MAX_AGE`` set, or Django's pool, the function is used."""
    first_id = _assignations(user)[0]
    settings.KOHERENT = {**settings.KOHERENT, "HISTORY_FUNCTION": "persistent"}
    sent = {}
    for name, value in (("closed each request", 0), ("kept a minute", 60), ("kept", None)):
        monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", value)
        with CaptureQueriesContext(connection) as queries:
            assert len(list(koherent.history_for_assignation(first_id).rows())) == 7
        sent[name] = len(queries)
    assert sent == {"closed each request": 2, "kept a minute": 1, "kept": 1}
    # Django's pool keeps its connections with CONN_MAX_AGE 0. (Not set on this connection:
    # Django keeps one pool per alias for the process, which other tests would then get.)
    assert _function._persists({"CONN_MAX_AGE": 0, "OPTIONS": {"pool": True}})
    assert _function._persists({"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 4}}})
    assert not _function._persists({"CONN_MAX_AGE": 0, "OPTIONS": {}})
    assert not _function._persists({"OPTIONS": {"pool": False}})


def _exists(name: str, arguments: str = "text") -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{name}({arguments})"])
        row = cursor.fetchone()
    return bool(row and row[0])


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("koherent_history_function", *args, stdout=out)
    return out.getvalue()


def test_functions_of_earlier_code_are_listed_then_dropped_and_this_codes_kept(
    user: Any,
) -> None:
    """A function of an earlier set of tracked models is stale: listed, then dropped by
    ``--drop-stale``; this code's function and functions that are not Koherent's stay."""
    found = _reader()
    earlier = _function._cached_definition(
        "default", tuple(t for t in found.group if t.label != "testapp.Order"), 0
    )
    assert earlier is not None
    with connection.cursor() as cursor:
        cursor.execute(earlier.create)
        # Not Koherent's: another name, and the same kind of name with another signature.
        cursor.execute(
            "CREATE FUNCTION koherent_history_notes(p_assignation text) RETURNS int "
            "LANGUAGE sql AS 'SELECT 1'"
        )
        cursor.execute(
            "CREATE FUNCTION koherent_history_0123456789abcdef(p integer) RETURNS int "
            "LANGUAGE sql AS 'SELECT 1'"
        )
    assert history_functions() == HistoryFunctions(
        database="default", current=found.name, installed=True, stale=(earlier.name,)
    )
    # migrate names them (it is when a new function makes the old one stale).
    migrated = io.StringIO()
    call_command("migrate", verbosity=1, stdout=migrated)
    assert f"history functions of earlier code left in database default: {earlier.name}. " in (
        migrated.getvalue()
    )
    quiet = io.StringIO()
    call_command("migrate", verbosity=0, stdout=quiet)
    assert "koherent" not in quiet.getvalue().lower()
    listed = _command()
    assert f"reads with {found.name}" in listed
    assert f"Functions of earlier code: {earlier.name}\n" in listed
    assert _exists(earlier.name)  # listing drops nothing

    assert f"Dropped: {earlier.name}\n" in _command("--drop-stale")
    assert not _exists(earlier.name)
    assert _exists(found.name)
    assert _exists("koherent_history_notes")
    assert _exists("koherent_history_0123456789abcdef", "integer")
    assert "No function of earlier code." in _command("--drop-stale")
    migrated = io.StringIO()
    call_command("migrate", verbosity=1, stdout=migrated)
    assert "earlier code" not in migrated.getvalue()
    # Reads still go through this code's function: one query.
    first_id = _assignations(user)[0]
    with CaptureQueriesContext(connection) as queries:
        assert len(list(koherent.history_for_assignation(first_id).rows())) == 7
    assert len(queries) == 1
    assert found.name in queries.captured_queries[0]["sql"]


def test_a_missing_function_is_reported_and_never_counted_stale() -> None:
    found = _reader()
    with without_function():
        state = history_functions()
        assert (state.current, state.installed, state.stale) == (found.name, False, ())
        assert f"{found.name} is missing (run migrate)" in _command()
        assert drop_stale_history_functions() == ()


def test_turned_off_every_history_function_is_stale(settings: Any) -> None:
    """``HISTORY_FUNCTION = "never"``: nothing reads with a function, so the one ``migrate``
    created before is stale too."""
    found = _reader()
    settings.KOHERENT = {**settings.KOHERENT, "HISTORY_FUNCTION": "never"}
    state = history_functions()
    assert (state.current, state.installed, state.stale) == (None, False, (found.name,))
    assert "read without a function here" in _command()
    # ... and migrate, which creates none then, names it.
    migrated = io.StringIO()
    call_command("migrate", verbosity=1, stdout=migrated)
    assert f"earlier code left in database default: {found.name}. " in migrated.getvalue()
    assert _exists(found.name)
    assert drop_stale_history_functions() == (found.name,)
    assert not _exists(found.name)
    settings.KOHERENT = {**settings.KOHERENT, "HISTORY_FUNCTION": "persistent"}
    _function.clear_cache()
    assert _function.install("default") == found.name


def test_a_drop_the_database_refuses_drops_nothing_and_exits_3() -> None:
    """Two functions of earlier code, one of them used by a view: the drop fails as a whole
    (one transaction), says why, and both are still there."""
    found = _reader()
    earlier = [_function._cached_definition("default", found.group[:count], 0) for count in (3, 4)]
    with connection.cursor() as cursor:
        for reader in earlier:
            assert reader is not None
            cursor.execute(reader.create)
        used = max(r.name for r in earlier if r is not None)
        cursor.execute(f"CREATE VIEW koherent_test_uses AS SELECT * FROM \"{used}\"('x')")
    with pytest.raises(CommandError, match="could not drop the functions") as raised:
        _command("--drop-stale")
    assert raised.value.returncode == 3
    assert "koherent_test_uses" in str(raised.value)
    assert all(r is not None and _exists(r.name) for r in earlier)
    assert _exists(found.name)


def test_a_catalogue_migrate_cannot_read_is_logged_and_migrate_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A role that may not read ``pg_proc``: the notice of stale functions is skipped with a
    warning, ``migrate`` does not fail, and the connection stays usable."""
    found = _reader()
    with connection.cursor() as cursor:
        # Rolled back with the test's transaction.
        cursor.execute("REVOKE SELECT ON pg_catalog.pg_proc FROM PUBLIC")
        cursor.execute("CREATE ROLE koherent_test_reader NOLOGIN")
        cursor.execute("SET ROLE koherent_test_reader")
    out = io.StringIO()
    try:
        with caplog.at_level(logging.WARNING, "koherent"):
            functions.on_post_migrate(using="default", verbosity=1, stdout=out)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert "could not list the history functions of database default" in caplog.text
    assert "permission denied for table pg_proc" in caplog.text
    assert out.getvalue() == ""
    assert _exists(found.name)  # the connection still answers
