"""Reading history by assignation: order, paging, entries, effective changes, listings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import koherent
from koherent._registry import tracked_model, tracked_models
from koherent.query import InvalidCursor, assignations
from tests.history_reads import first_page_in_one_query, without_function
from tests.pending_migrations import assert_in_sync
from tests.testapp.models import Order
from tests.undoapp.models import Invoice, Label, Line

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


def _key(row: Any) -> tuple[Any, str, Any]:
    return (row.history_date, tracked_model(type(row)).label, row.pk)


def _save_at(obj: Any, when: dt.datetime) -> None:
    obj._history_date = when
    obj.save()
    del obj._history_date


def test_migrations_of_the_undo_app_are_in_sync() -> None:
    assert_in_sync("undoapp")


def test_registry_lists_koherent_models_only() -> None:
    labels = [t.label for t in tracked_models()]
    assert labels == sorted(labels)
    assert {"undoapp.Invoice", "undoapp.Line", "testapp.Order"} <= set(labels)
    assert "undoapp.Label" not in labels
    assert "testapp.Note" not in labels
    invoice = tracked_model("undoapp.invoice")
    assert invoice.model is Invoice
    assert [m.field.name for m in invoice.m2m] == ["labels"]
    with pytest.raises(LookupError):
        tracked_model(Label)


@pytest.mark.signal_capture
def test_rows_of_every_model_in_stable_order(user: Any) -> None:
    with koherent.assignation(user=user, app="shop") as ctx:
        invoice = Invoice(number="A-1")
        _save_at(invoice, T0)  # same timestamp for three rows of two models
        _save_at(Line(invoice=invoice, position=1, product="p"), T0)
        _save_at(Line(invoice=invoice, position=2, product="q"), T0)
        order = Order(reference="o")
        _save_at(order, T0 - dt.timedelta(seconds=1))
        invoice.status = "sent"
        _save_at(invoice, T0 + dt.timedelta(seconds=1))
    with koherent.assignation(app="other"):
        Invoice.objects.create(number="B-1")  # another assignation: not listed
    Invoice.objects.create(number="C-1")  # no assignation: not listed

    assert ctx.assignation_id is not None
    rows: list[Any] = list(koherent.history_for_assignation(ctx.assignation_id).rows())
    assert [_key(r) for r in rows] == sorted(_key(r) for r in rows)
    labels = [tracked_model(type(r)).label for r in rows]
    assert labels == [
        "testapp.Order",
        "undoapp.Invoice",
        "undoapp.Line",
        "undoapp.Line",
        "undoapp.Invoice",
    ]
    assert {r.assignation_id for r in rows} == {ctx.assignation_id}
    # The same order again, however often it is read.
    assert [r.pk for r in koherent.history_for_assignation(ctx.assignation_id).rows()] == [
        r.pk for r in rows
    ]


def test_entries_carry_the_audit_columns(user: Any) -> None:
    with koherent.context(task_id="task-9"), koherent.assignation(user=user, app="shop") as ctx:
        invoice = Invoice.objects.create(number="A-1", total=5)
        invoice_id = invoice.pk
        invoice.total = 7
        invoice.save()
        invoice.delete()
    assert ctx.assignation_id is not None
    history = koherent.history_for_assignation(ctx.assignation_id)
    entries = list(history.entries())
    # Iterating the history yields the same entries (what a reader of the name expects),
    # each wrapping its history row; .rows() gives the rows themselves.
    assert list(history) == entries
    assert all(isinstance(e, koherent.HistoryEntry) for e in history)
    assert [e.row for e in history] == list(history.rows())
    assert [(e.model_label, e.kind) for e in history] == [
        ("undoapp.Invoice", koherent.ChangeKind.CREATE),
        ("undoapp.Invoice", koherent.ChangeKind.UPDATE),
        ("undoapp.Invoice", koherent.ChangeKind.DELETE),
    ]
    assert [e.kind for e in entries] == [
        koherent.ChangeKind.CREATE,
        koherent.ChangeKind.UPDATE,
        koherent.ChangeKind.DELETE,
    ]
    first = entries[0]
    assert (first.user_id, first.app, first.assignation_id, first.task_id) == (
        str(user.pk),
        "shop",
        ctx.assignation_id,
        "task-9",
    )
    assert (first.model_label, first.object_id, first.model) == (
        "undoapp.Invoice",
        invoice_id,
        Invoice,
    )
    assert first.key == ("undoapp.Invoice", first.history_id)
    assert isinstance(first.date, dt.datetime)


def _many(count: int) -> str:
    with koherent.assignation() as ctx:
        invoice = Invoice.objects.create(number=f"many-{ctx.assignation_id}"[:20])
        for n in range(count - 1):
            Line.objects.create(invoice=invoice, position=n, product="p")
    return ctx.assignation_id or ""


def test_pages_cover_every_row_once_first_in_two_queries_then_three() -> None:
    assignation_id = _many(25)
    history = koherent.history_for_assignation(assignation_id)
    everything = [r.pk for r in history.rows()]
    one_query = first_page_in_one_query()
    seen: list[tuple[str, Any]] = []
    after = None
    pages = 0
    while True:
        with CaptureQueriesContext(connection) as queries:
            page = history.page(first=10, after=after)
        # Each page first reads which tables the assignation touched (its record's list); the
        # first page then reads full rows in one query, later ones the keys, then the rows.
        # On PostgreSQL the history function reads the list and a first page in one query.
        first = 1 if one_query else 2
        assert len(queries) == (first if after is None else 3)
        pages += 1
        seen.extend((tracked_model(type(r)).label, r.pk) for r in page.rows)
        if not page.has_next:
            break
        after = page.end_cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    assert [pk for _, pk in seen] == everything
    assert history.page(first=10, after=page.end_cursor).rows == ()  # nothing after the end


def test_page_ties_across_models_do_not_skip_rows() -> None:
    with koherent.assignation() as ctx:
        invoice = Invoice(number="tie")
        _save_at(invoice, T0)
        for n in range(3):
            _save_at(Line(invoice=invoice, position=n, product="p"), T0)
        _save_at(Order(reference="tie"), T0)
    assert ctx.assignation_id is not None
    history = koherent.history_for_assignation(ctx.assignation_id)
    walked: list[Any] = []
    after = None
    for _ in range(10):
        page = history.page(first=1, after=after)
        walked.extend(_key(r) for r in page.rows)
        if not page.has_next:
            break
        after = page.end_cursor
    assert walked == sorted(_key(r) for r in history.rows())
    assert len(walked) == 5


def test_iteration_fetches_in_batches() -> None:
    assignation_id = _many(12)
    history = koherent.history_for_assignation(assignation_id, batch_size=5)
    with CaptureQueriesContext(connection) as queries:
        rows = list(history)
    assert len(rows) == 12
    assert len(queries) == 6  # the touched tables, then three batches: one query, two, two


def test_query_count_does_not_grow_with_tracked_models_or_rows() -> None:
    small = _many(3)
    large = _many(60)
    counts = []
    for assignation_id in (small, large):
        with CaptureQueriesContext(connection) as queries:
            list(koherent.history_for_assignation(assignation_id, batch_size=100))
        counts.append(len(queries))
    # The touched tables, then the rows; on PostgreSQL both in one call of the history function.
    assert counts == ([1, 1] if first_page_in_one_query() else [2, 2])
    assert len(tracked_models()) >= 4  # more tracked models than queries


def test_invalid_cursors_are_refused() -> None:
    history = koherent.history_for_assignation("x")
    for bad in ("not-a-cursor", "W10", "WyIyMDMwIiwibm8ubW9kZWwiLCIxIl0"):
        with pytest.raises(InvalidCursor):
            history.page(after=bad)
    with pytest.raises(ValueError):
        history.page(first=0)


def test_unknown_assignation_has_no_rows() -> None:
    history = koherent.history_for_assignation("nothing-here")
    assert list(history) == []
    assert history.count() == 0
    assert not history.exists()
    assert history.models() == []


def test_counts_per_model() -> None:
    assignation_id = _many(4)
    history = koherent.history_for_assignation(assignation_id)
    assert history.counts() == {"undoapp.Invoice": 1, "undoapp.Line": 3}
    assert history.count() == 4
    assert history.exists()
    assert [t.label for t in history.models()] == ["undoapp.Invoice", "undoapp.Line"]


def test_load_entries_by_key_in_one_query() -> None:
    assignation_id = _many(3)
    entries = list(koherent.history_for_assignation(assignation_id).entries())
    keys = [e.key for e in reversed(entries)] + [("undoapp.Line", 10**9), ("no.Model", 1)]
    with CaptureQueriesContext(connection) as queries:
        loaded = koherent.load_entries(keys)
    assert len(queries) == 1
    assert loaded[:3] == list(reversed(entries))
    assert loaded[3:] == [None, None]


def test_effective_changes_of_create_update_delete_and_m2m() -> None:
    red = Label.objects.create(name="red")
    blue = Label.objects.create(name="blue")
    invoice = Invoice.objects.create(number="A-1", total=1)  # before the assignation
    with koherent.assignation() as ctx:
        invoice.total = 2
        invoice.status = "sent"
        invoice.save()
        invoice.labels.add(red, blue)
        invoice.labels.remove(red)
        line = Line.objects.create(invoice=invoice, position=1, product="p")
        line.delete()
    assert ctx.assignation_id is not None
    entries = list(koherent.history_for_assignation(ctx.assignation_id).entries())
    changes = koherent.effective_changes(entries)
    as_tuples = [[(c.field, c.old, c.new) for c in cs] for cs in changes]
    assert as_tuples[0] == [("status", "draft", "sent"), ("total", 1, 2)]
    assert as_tuples[1] == [("labels", [], sorted([red.pk, blue.pk]))]
    assert as_tuples[2] == [("labels", sorted([red.pk, blue.pk]), [blue.pk])]
    created = {c.field: c.new for c in changes[3]}
    assert created == {
        "id": entries[3].object_id,
        "invoice": invoice.pk,
        "position": 1,
        "product": "p",
        "quantity": 1,
    }
    assert all(c.old is None for c in changes[3])
    assert {c.field: c.old for c in changes[4]}["product"] == "p"
    assert all(c.new is None for c in changes[4])


def test_update_without_previous_row_lists_every_field() -> None:
    invoice = Invoice.objects.create(number="old")
    Invoice.history.all().delete()  # as if tracking started after the object existed
    with koherent.assignation() as ctx:
        invoice.total = 3
        invoice.save()
    assert ctx.assignation_id is not None
    (changes,) = koherent.effective_changes(
        list(koherent.history_for_assignation(ctx.assignation_id))
    )
    assert ("total", None, 3) in [(c.field, c.old, c.new) for c in changes]
    assert all(c.old is None for c in changes)


def _updates(count: int) -> list[Any]:
    invoices = [Invoice.objects.create(number=f"n{count}-{n}") for n in range(count)]
    with koherent.assignation() as ctx:
        for invoice in invoices:
            invoice.total += 1
            invoice.save()
        lines = [
            Line.objects.create(invoice=invoices[0], position=n, product="x") for n in range(count)
        ]
        for line in lines:
            line.quantity = 5
            line.save()
    assert ctx.assignation_id is not None
    return list(koherent.history_for_assignation(ctx.assignation_id).entries())


def test_effective_changes_are_batched_per_model() -> None:
    few = _updates(2)
    many = _updates(20)
    counts = []
    for entries in (few, many):
        with CaptureQueriesContext(connection) as queries:
            changes = koherent.effective_changes(entries)
        counts.append(len(queries))
        assert all(changes)
    # Invoice: previous rows + its tracked m2m field; Line: previous rows.
    assert counts == [3, 3]


def test_list_assignations_filters_and_counts(user: Any, other_user: Any) -> None:
    with koherent.assignation(user=user, app="shop") as first:
        Invoice.objects.create(number="1")
        Invoice.objects.create(number="2")
    with koherent.assignation(user=other_user, app="backoffice", origin="celery") as second:
        Order.objects.create(reference="o")
    with koherent.assignation(user=user, app="shop"):
        pass  # wrote nothing: no record

    everything = koherent.list_assignations()
    assert [(s.assignation.pk, s.change_count) for s in everything] == [
        (second.assignation_id, 1),
        (first.assignation_id, 2),
    ]
    assert [s.assignation.pk for s in koherent.list_assignations(user=user)] == [
        first.assignation_id
    ]
    assert [s.assignation.pk for s in koherent.list_assignations(user=other_user.pk)] == [
        second.assignation_id
    ]
    assert [s.assignation.pk for s in koherent.list_assignations(app="backoffice")] == [
        second.assignation_id
    ]
    assert [s.assignation.pk for s in koherent.list_assignations(origin="celery")] == [
        second.assignation_id
    ]
    later = timezone.now() + dt.timedelta(minutes=1)
    assert koherent.list_assignations(since=later) == []
    assert len(koherent.list_assignations(until=later)) == 2
    assert len(koherent.list_assignations(limit=1)) == 1
    assert assignations(app="nope").count() == 0

    assert first.assignation_id is not None
    assert second.assignation_id is not None
    with CaptureQueriesContext(connection) as queries:
        counts = koherent.change_counts([first.assignation_id, second.assignation_id, "none"])
    assert len(queries) == 1
    assert counts == {first.assignation_id: 2, second.assignation_id: 1, "none": 0}


def test_change_counts_of_many_ids_in_chunks() -> None:
    ids: list[str] = []
    for n in range(3):
        with koherent.assignation() as ctx:
            Invoice.objects.create(number=f"c{n}")
        assert ctx.assignation_id is not None
        ids.append(ctx.assignation_id)
    counts = koherent.change_counts([*ids, *(f"missing-{n}" for n in range(1500))])
    assert [counts[i] for i in ids] == [1, 1, 1]
    assert sum(counts.values()) == 3


@pytest.mark.postgres
def test_postgres_pages_use_the_assignation_index() -> None:
    """The two-query path's SQL probes the assignation index (the history function's
    statements are checked in tests/undo/test_history_function.py)."""
    assignation_id = _many(5)
    history = koherent.history_for_assignation(assignation_id)
    with without_function(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        with CaptureQueriesContext(connection) as queries:
            history.page(first=3)
        probe = queries.captured_queries[-1]["sql"]
        cursor.execute("EXPLAIN " + probe)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    index = tracked_model(Line).history_model._meta.indexes[0].name
    assert index in plan, plan


# -- the services every front end uses ---------------------------------------------------------


def test_get_assignation_is_its_record_in_one_query(user: Any) -> None:
    with koherent.assignation(user=user, app="shop") as ctx:
        Invoice.objects.create(number="rec")
    with CaptureQueriesContext(connection) as queries:
        record = koherent.get_assignation(ctx.assignation_id or "")
    assert len(queries) == 1
    assert isinstance(record, koherent.Assignation)
    assert not record._state.adding
    assert (record.pk, record.app, record.origin) == (ctx.assignation_id, "shop", "manual")
    assert record.user_pk == str(user.pk)


def test_get_assignation_stands_in_for_history_without_a_record(user: Any, settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "RECORD_ASSIGNATIONS": False}
    with koherent.context(task_id="task-9"), koherent.assignation(user=user, app="shop") as ctx:
        Invoice.objects.create(number="norec")
        Invoice.objects.create(number="norec-2")
    assignation_id = ctx.assignation_id or ""
    assert not koherent.Assignation.objects.filter(pk=assignation_id).exists()
    first = Invoice.history.get(number="norec")
    stand_in = koherent.get_assignation(assignation_id)
    assert stand_in is not None
    assert stand_in._state.adding  # unsaved: made from the first history row
    assert (stand_in.pk, stand_in.origin, stand_in.app) == (assignation_id, "unknown", "shop")
    assert (stand_in.user_pk, stand_in.task_id) == (str(user.pk), "task-9")
    assert stand_in.created == first.history_date
    assert not koherent.Assignation.objects.filter(pk=assignation_id).exists()


def test_get_assignation_of_nothing_is_none() -> None:
    assert koherent.get_assignation("nothing-here") is None


def test_model_counts_per_model_of_many_assignations_in_one_query() -> None:
    lines = _many(4)  # an invoice and three lines
    with koherent.assignation() as ctx:
        Order.objects.create(reference="counted")
    order = ctx.assignation_id or ""
    with CaptureQueriesContext(connection) as queries:
        counts = koherent.model_counts([lines, order, "none", lines])
    assert len(queries) == 1
    assert counts == {
        lines: {"undoapp.Invoice": 1, "undoapp.Line": 3},
        order: {"testapp.Order": 1},
        "none": {},
    }
    assert koherent.change_counts([lines, order, "none"]) == {lines: 4, order: 1, "none": 0}
    assert koherent.model_counts([]) == {}


def test_object_histories_oldest_first_one_query_per_model() -> None:
    with koherent.assignation(app="create") as created:
        invoice = Invoice.objects.create(number="obj", total=1)
        line = Line.objects.create(invoice=invoice, position=1, product="p")
        other = Invoice.objects.create(number="obj-2")
    with koherent.assignation(app="update") as updated:
        invoice.total = 2
        invoice.save()
    keys = [
        ("undoapp.Invoice", invoice.pk),
        ("undoapp.Line", line.pk),
        ("undoapp.Invoice", other.pk),
        ("undoapp.Invoice", 10**9),  # no such object: no history
    ]
    with CaptureQueriesContext(connection) as queries:
        histories = koherent.object_histories(keys)
    assert len(queries) == 2  # invoices, lines
    assert [(e.kind.value, e.assignation_id) for e in histories[0]] == [
        ("CREATE", created.assignation_id),
        ("UPDATE", updated.assignation_id),
    ]
    assert [(e.model_label, e.object_id) for e in histories[1]] == [("undoapp.Line", line.pk)]
    assert [e.object_id for e in histories[2]] == [other.pk]
    assert histories[3] == []
