"""Reverting an assignation: semantics, foreign-key order, conflicts, atomicity, dry runs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

import koherent
from koherent import _history_rows
from koherent.capture import capture_mode
from koherent.models import Assignation
from koherent.revert import ConflictKind, RevertAction
from tests.undo.scenario import Scenario, snapshot
from tests.undoapp.models import Invoice, Label, Line, Payment

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def _writes(queries: CaptureQueriesContext) -> list[str]:
    """The writing statements sent, without the context hand-off of trigger capture."""
    sent = [q["sql"].lstrip() for q in queries.captured_queries]
    sent = [s.split("*/ ", 1)[1] if s.startswith("/*koherent:") else s for s in sent]
    return [s for s in sent if s.startswith(WRITES)]


def test_create_update_delete_are_undone_across_related_models(
    scenario: Scenario, other_user: Any
) -> None:
    with koherent.context(user=other_user, app="backoffice"):
        result = koherent.revert_assignation(scenario.assignation_id)

    assert snapshot() == scenario.before
    # The deleted invoice and its line came back with their primary keys.
    assert Invoice.objects.filter(pk=scenario.removed_id, number="R-1").exists()
    assert (result.deleted, result.restored, result.recreated) == (3, 2, 3)
    assert result.assignation_id == scenario.assignation_id

    record = Assignation.objects.get(pk=result.revert_assignation_id)
    assert (record.origin, record.parent_id, record.app, record.user_pk) == (
        "revert",
        scenario.assignation_id,
        "backoffice",
        str(other_user.pk),
    )
    rows: list[Any] = list(koherent.history_for_assignation(result.revert_assignation_id).rows())
    assert len(rows) == 8  # one row per object the revert wrote
    assert {(r.assignation_id, r.app, r.user_pk, r.history_change_reason) for r in rows} == {
        (
            result.revert_assignation_id,
            "backoffice",
            str(other_user.pk),
            f"revert of {scenario.assignation_id}",
        )
    }
    kinds = sorted((type(r).__name__, r.history_type) for r in rows)
    assert kinds == [
        ("HistoricalInvoice", "+"),
        ("HistoricalInvoice", "-"),
        ("HistoricalInvoice", "~"),
        ("HistoricalLine", "+"),
        ("HistoricalLine", "+"),
        ("HistoricalLine", "-"),
        ("HistoricalLine", "-"),
        ("HistoricalLine", "~"),
    ]


def test_many_to_many_history_is_written_for_the_revert(scenario: Scenario) -> None:
    result = koherent.revert_assignation(scenario.assignation_id)
    row = Invoice.history.filter(assignation_id=result.revert_assignation_id, id=scenario.kept.pk)
    (restored,) = row
    assert [link.label.name for link in restored.labels.all()] == ["red"]


def test_foreign_key_order_of_writes(scenario: Scenario) -> None:
    with CaptureQueriesContext(connection) as queries:
        koherent.revert_assignation(scenario.assignation_id)
    writes = _writes(queries)

    quote = connection.ops.quote_name

    def first(prefix: str, table: str) -> int:
        return next(i for i, sql in enumerate(writes) if sql.startswith(prefix) and table in sql)

    invoice, line = quote("undoapp_invoice"), quote("undoapp_line")
    any_table = quote("undoapp_")[:-1]  # the opening quote and the prefix
    # Re-creation: the invoice before its line. Deletion: the lines before their invoice.
    assert first("INSERT", invoice) < first("INSERT", line)
    assert first("DELETE", line) < first("DELETE", invoice)
    # Restores come between: after re-creations, before deletions.
    assert first("INSERT", line) < first("UPDATE", any_table)
    assert first("UPDATE", any_table) < first("DELETE", line)


@pytest.mark.postgres
def test_order_holds_with_immediate_constraint_checks(scenario: Scenario) -> None:
    """With constraints checked at each statement (as MySQL does), the order still works."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        koherent.revert_assignation(scenario.assignation_id)
        assert snapshot() == scenario.before
    # Control: the same checks refuse a parent deleted before its children.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("DELETE FROM undoapp_invoice WHERE id = %s", [scenario.kept.pk])


def test_conflict_is_detected_and_nothing_changes(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    with koherent.assignation(app="later") as later:
        kept = Invoice.objects.get(pk=scenario.kept.pk)
        kept.total = 99
        kept.save()
    # No assignation, and nothing changed: a row under signal capture, none under triggers.
    Line.objects.filter(invoice=scenario.created, position=1).get().save()
    state = snapshot()
    with pytest.raises(koherent.RevertConflict) as caught:
        koherent.revert_assignation(scenario.assignation_id)
    assert snapshot() == state
    conflicts = caught.value.conflicts
    line_saved = (
        ConflictKind.CHANGED_LATER,
        "undoapp.Line",
        Line.objects.get(invoice=scenario.created, position=1).pk,
        None,
    )
    assert [(c.kind, c.model_label, c.object_id, c.assignation_id) for c in conflicts] == [
        (ConflictKind.CHANGED_LATER, "undoapp.Invoice", scenario.kept.pk, later.assignation_id),
        *([] if capture_mode(Line) == "trigger" else [line_saved]),
    ]
    assert all(c.date is not None for c in conflicts)
    assert "changed later by" in str(caught.value)
    assert "force=True" in str(caught.value)
    assert not Assignation.objects.filter(origin="revert").exists()
    assert f"revert of assignation {scenario.assignation_id} refused" in caplog.text


def test_forced_revert_overrides_conflicts(scenario: Scenario) -> None:
    with koherent.assignation(app="later"):
        kept = Invoice.objects.get(pk=scenario.kept.pk)
        kept.total = 99
        kept.save()
    result = koherent.revert_assignation(scenario.assignation_id, force=True)
    assert snapshot() == scenario.before
    assert [c.object_id for c in result.forced_conflicts] == [scenario.kept.pk]


def test_revert_of_a_revert_restores_the_original_changes(scenario: Scenario) -> None:
    first = koherent.revert_assignation(scenario.assignation_id)
    assert snapshot() == scenario.before
    second = koherent.revert_assignation(first.revert_assignation_id)
    assert snapshot() == scenario.after
    assert second.plan.conflicts == ()
    assert Assignation.objects.get(pk=second.revert_assignation_id).parent_id == (
        first.revert_assignation_id
    )
    # The original is live again: it can be reverted once more, without conflicts from its
    # own revert chain.
    third = koherent.revert_assignation(scenario.assignation_id)
    assert snapshot() == scenario.before
    assert third.plan.conflicts == ()


def test_reverting_twice_is_refused_unless_forced(scenario: Scenario) -> None:
    first = koherent.revert_assignation(scenario.assignation_id)
    state = snapshot()
    with pytest.raises(koherent.AlreadyReverted) as caught:
        koherent.revert_assignation(scenario.assignation_id)
    assert caught.value.reverted_by == (first.revert_assignation_id,)
    assert "already reverted" in str(caught.value)
    assert snapshot() == state
    plan = koherent.revert_assignation(scenario.assignation_id, dry_run=True)
    assert plan.reverted_by == (first.revert_assignation_id,)
    forced = koherent.revert_assignation(scenario.assignation_id, force=True)
    assert forced.plan.is_empty  # already in the state from before
    assert snapshot() == state


def test_failure_midway_changes_nothing(scenario: Scenario, monkeypatch: Any) -> None:
    """A failure in the last stage (deletion) undoes the re-creations and restores before it."""
    original = _history_rows.write_history
    calls: list[str] = []

    def failing(t: Any, instances: Any, history_type: str, *args: Any) -> Any:
        calls.append(history_type)
        if history_type == "-":
            raise DatabaseError("injected failure")
        return original(t, instances, history_type, *args)

    monkeypatch.setattr(_history_rows, "write_history", failing)
    with pytest.raises(koherent.RevertError, match="injected failure"):
        koherent.revert_assignation(scenario.assignation_id)
    assert {"+", "~", "-"} <= set(calls)  # it did get midway
    assert snapshot() == scenario.after
    assert not Assignation.objects.filter(origin="revert").exists()
    assert not Invoice.history.filter(history_change_reason__startswith="revert").exists()


def test_database_refusal_midway_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A unique value taken since: the re-creation of the line fails after its invoice's."""
    with koherent.assignation(app="setup"):
        invoice = Invoice.objects.create(number="U-1")
        Line.objects.create(invoice=invoice, position=1, product="a")
        spare = Invoice.objects.create(number="U-2")
    with koherent.assignation() as ctx:
        spare.delete()
        Line.objects.get(invoice=invoice, position=1).delete()
    Line.objects.create(invoice=invoice, position=1, product="taken")  # outside any revert
    state = snapshot()
    with pytest.raises(koherent.RevertError, match="nothing was changed"):
        koherent.revert_assignation(ctx.assignation_id or "")
    assert snapshot() == state
    assert not Invoice.objects.filter(number="U-2").exists()  # its re-creation was undone
    assert "nothing was changed" in caplog.text


def test_dry_run_writes_nothing(scenario: Scenario) -> None:
    with CaptureQueriesContext(connection) as queries:
        plan = koherent.revert_assignation(scenario.assignation_id, dry_run=True)
    assert _writes(queries) == []
    assert snapshot() == scenario.after
    assert not Assignation.objects.filter(origin="revert").exists()

    created_lines = sorted(
        Line.objects.filter(invoice=scenario.created).values_list("pk", flat=True)
    )
    assert sorted((c.model_label, c.object_id) for c in plan.deletes) == sorted(
        [("undoapp.Invoice", scenario.created.pk)] + [("undoapp.Line", pk) for pk in created_lines]
    )
    assert {(c.model_label, c.object_id) for c in plan.recreates} >= {
        ("undoapp.Invoice", scenario.removed_id)
    }
    assert len(plan.recreates) == 3
    restored = {(c.model_label, c.object_id): c.fields for c in plan.restores}
    assert restored[("undoapp.Invoice", scenario.kept.pk)] == ("status", "total", "labels")
    assert list(restored.values()).count(("quantity",)) == 1
    assert plan.conflicts == ()
    assert plan.change_count == len(
        list(koherent.history_for_assignation(scenario.assignation_id))
    )
    assert plan.models == ("undoapp.Invoice", "undoapp.Line")
    assert all(c.action is RevertAction.DELETE for c in plan.deletes)
    assert "3 to delete, 2 to restore, 3 to re-create" in plan.summary()


def test_unknown_and_malformed_ids() -> None:
    with pytest.raises(koherent.AssignationNotFound, match="unknown assignation 'nope'"):
        koherent.revert_assignation("nope")
    with pytest.raises(koherent.AssignationNotFound):
        koherent.revert_assignation("nope", dry_run=True)
    with pytest.raises(ValueError):
        koherent.revert_assignation("bad id with spaces")


def test_assignation_with_a_record_but_no_rows_reverts_to_nothing() -> None:
    Assignation.objects.create(id="empty-op")
    result = koherent.revert_assignation("empty-op")
    assert result.plan.is_empty
    assert (result.deleted, result.restored, result.recreated) == (0, 0, 0)


def test_update_without_prior_state_is_a_conflict_and_skipped_when_forced() -> None:
    legacy = Invoice.objects.create(number="L-1", total=1)
    Invoice.history.filter(id=legacy.pk).delete()  # as if it predates its history
    with koherent.assignation() as ctx:
        legacy.total = 2
        legacy.save()
        made = Invoice.objects.create(number="L-2")
    with pytest.raises(koherent.RevertConflict) as caught:
        koherent.revert_assignation(ctx.assignation_id or "")
    assert [(c.kind, c.object_id) for c in caught.value.conflicts] == [
        (ConflictKind.NO_PRIOR_STATE, legacy.pk)
    ]
    assert "no history from before" in str(caught.value)
    koherent.revert_assignation(ctx.assignation_id or "", force=True)
    assert Invoice.objects.get(pk=legacy.pk).total == 2  # skipped: its old state is unknown
    assert not Invoice.objects.filter(pk=made.pk).exists()


def test_object_outside_the_revert_that_a_deletion_would_take_is_a_conflict() -> None:
    with koherent.assignation() as ctx:
        invoice = Invoice.objects.create(number="P-1")
    Payment.objects.create(invoice=invoice, amount=5)  # untracked, refers to it
    with pytest.raises(koherent.RevertConflict) as caught:
        koherent.revert_assignation(ctx.assignation_id or "")
    (conflict,) = caught.value.conflicts
    assert (conflict.kind, conflict.model_label) == (ConflictKind.DEPENDENT, "undoapp.Payment")
    assert Payment.objects.exists()
    result = koherent.revert_assignation(ctx.assignation_id or "", force=True)
    assert result.deleted == 1
    assert not Invoice.objects.filter(pk=invoice.pk).exists()
    assert not Payment.objects.exists()  # the cascade, as Django's delete() does it
    assert Invoice.history.filter(
        id=invoice.pk, history_type="-", assignation_id=result.revert_assignation_id
    ).exists()


def test_labels_of_a_deleted_object_come_back() -> None:
    red = Label.objects.create(name="red")
    with koherent.assignation():
        invoice = Invoice.objects.create(number="M-1")
        invoice.labels.add(red)
    with koherent.assignation() as ctx:
        invoice.delete()
    koherent.revert_assignation(ctx.assignation_id or "")
    assert list(Invoice.objects.get(number="M-1").labels.all()) == [red]


def _bulk_assignation(objects: int, rounds: int) -> str:
    """``objects`` invoices and lines changed ``rounds`` times each, with the bulk helpers."""
    from simple_history.utils import bulk_create_with_history, bulk_update_with_history

    invoices_count = max(1, objects // 10)
    prefix = f"B{uuid.uuid4().hex[:8]}-"
    with koherent.assignation(app="setup"):
        bulk_create_with_history(
            [Invoice(number=f"{prefix}{n}") for n in range(invoices_count)], Invoice
        )
        invoices = list(Invoice.objects.filter(number__startswith=prefix))
        bulk_create_with_history(
            [
                Line(invoice=invoices[n % invoices_count], position=n, product="p")
                for n in range(objects - invoices_count)
            ],
            Line,
        )
        lines = list(Line.objects.filter(invoice__in=invoices))
    with koherent.assignation(app="bulk") as ctx:
        for r in range(rounds):
            for invoice in invoices:
                invoice.total = r + 1
            bulk_update_with_history(invoices, Invoice, ["total"])
            for line in lines:
                line.quantity = r + 2
            bulk_update_with_history(lines, Line, ["quantity"])
    return ctx.assignation_id or ""


def _revert_queries(assignation_id: str, **kwargs: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as queries:
        result = koherent.revert_assignation(assignation_id, **kwargs)
    return len(queries), result


def test_query_count_grows_with_batches_not_with_changes() -> None:
    few = _bulk_assignation(objects=40, rounds=1)
    many = _bulk_assignation(objects=40, rounds=8)
    count_few, result_few = _revert_queries(few, batch_size=20)
    count_many, result_many = _revert_queries(many, batch_size=20)
    assert result_few.plan.change_count == 40
    assert result_many.plan.change_count == 320
    assert result_many.restored == result_few.restored == 40
    assert count_many == count_few
    # Smaller batches: more statements, still independent of the number of changes.
    count_small_batches, _ = _revert_queries(
        _bulk_assignation(objects=40, rounds=8), batch_size=10
    )
    assert count_small_batches > count_many


@pytest.mark.postgres
def test_ten_thousand_changes_revert_in_a_bounded_number_of_queries() -> None:
    """10,000 changes over 1,000 objects of two related models, conflict check included."""
    assignation_id = _bulk_assignation(objects=1000, rounds=10)
    assert koherent.history_for_assignation(assignation_id).count() == 10_000
    count, result = _revert_queries(assignation_id)
    assert result.restored == 1000
    assert count < 50, count
    assert set(Line.objects.values_list("quantity", flat=True)) == {1}
    assert set(Invoice.objects.values_list("total", flat=True)) == {0}
    # The same objects changed once each cost the same number of queries.
    once = _bulk_assignation(objects=1000, rounds=1)
    count_once, _ = _revert_queries(once)
    assert count_once == count


def test_multi_table_inherited_objects_are_deleted_and_recreated() -> None:
    from tests.undoapp.models import Contract, Document

    with koherent.assignation():
        kept = Contract.objects.create(title="kept", party="ACME")
    with koherent.assignation() as ctx:
        made = Contract.objects.create(title="made", party="Initech")
        kept_id = kept.pk
        kept.delete()
    assert list(Contract.objects.values_list("title", flat=True)) == ["made"]
    result = koherent.revert_assignation(ctx.assignation_id or "")
    # The deletion wrote history for both tracked tables of the kept contract; the creation
    # only for the child (Django sends no signal for the parent part).
    assert (result.deleted, result.recreated) == (1, 2)
    assert list(Contract.objects.values_list("pk", "title", "party")) == [
        (kept_id, "kept", "ACME")
    ]
    assert list(Document.objects.values_list("pk", flat=True)) == [kept_id]  # parent rows too
    assert not Contract.objects.filter(pk=made.pk).exists()
    recreated = Contract.history.get(assignation_id=result.revert_assignation_id, id=kept_id)
    assert recreated.history_type == "+"


def test_checking_unrecorded_changes_builds_no_instance_per_history_row(user: Any) -> None:
    """The check reads the objects' rows since the assignation's first change as plain
    values: a revert builds instances for the objects (their target and current state), not
    one per history row."""
    from django.db.models.signals import post_init

    invoices = [Invoice.objects.create(number=f"N-{n}", total=n) for n in range(5)]
    with koherent.assignation(user=user) as ctx:
        for _ in range(10):
            for invoice in invoices:
                invoice.total += 1
                invoice.save()
    assert ctx.assignation_id is not None
    built: list[Any] = []

    def count(sender: Any, instance: Any, **kwargs: Any) -> None:
        built.append(instance)

    history = Invoice.history.model
    post_init.connect(count, sender=history)
    try:
        plan = koherent.revert_assignation(ctx.assignation_id, dry_run=True)
    finally:
        post_init.disconnect(count, sender=history)
    assert len(plan.restores) == 5
    assert not plan.conflicts
    assert history.objects.filter(assignation_id=ctx.assignation_id).count() == 50
    assert len(built) <= 2 * len(invoices), len(built)
