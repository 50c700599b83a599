"""Revert under failure: a real database error in the middle of a large revert, and reverts
racing concurrent changes to their objects. PostgreSQL only.

A large assignation changes the undo app's models: invoices updated (fields and labels) and
created, lines updated twice, deleted and created, whole invoices deleted with their lines,
documents updated, multi-table contracts created and updated. Then:

* **Failure.** A trigger made by the test raises an exception when the revert writes the
  60 %-th of its history rows of lines, deep inside the revert's transaction (the re-creations
  and most restores are written by then: the trigger's sequence, which no rollback resets, says
  how far it got). The revert must raise ``koherent.RevertError`` and leave every table exactly
  as it was (a full compare of every model, through and history table and the ``Assignation``
  records); once the trigger is gone, the same revert goes through and every model is back to
  its state before the assignation.
* **Race.** Rounds of a revert of a large assignation while another connection changes random
  objects of it in transactions of their own (``SELECT ... FOR UPDATE`` then ``save()``, as
  careful application code does): changes committed before the revert locks its objects, while
  it writes (they wait for its locks), and freely interleaved. Each outcome must be either a
  ``RevertConflict`` with every row as the concurrent changes left it (nothing of the revert
  written), or a completed revert after which every concurrent committed change is still there,
  its history row after the revert's: never a change silently overwritten, never half a revert.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction
from simple_history.utils import bulk_create_with_history

import koherent
from koherent.models import Assignation
from tests.soak import support
from tests.undoapp.models import Contract, Document, Invoice, Label, Line

pytestmark = [support.soak, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHANGES = support.size(10_000, 500)
RACE_CHANGES = support.size(2_000, 150)
RACE_ROUNDS = support.size(6, 3)
RACER_CHANGES = support.size(40, 8)
ROWS_PER_GROUP = 12  # history rows one group of build() writes, about
FAIL_AT = 0.6
LABELS = ("red", "green", "blue")
TRIGGER = "koherent_soak_revert_failure"
SEQUENCE = "koherent_soak_revert_rows"

Rows = dict[str, list[tuple[Any, ...]]]
State = dict[str, dict[Any, tuple[Any, ...]]]


# -- snapshots ---------------------------------------------------------------------------------


def tables() -> list[str]:
    """Every table of the undo app (models, through, history) and the Assignation records."""
    names = connection.introspection.table_names()
    return sorted(n for n in names if n.startswith("undoapp_") or n == "koherent_assignation")


def full_snapshot() -> Rows:
    """Every row of :func:`tables`, sorted."""
    found = {}
    with connection.cursor() as cursor:
        for table in tables():
            cursor.execute(f'SELECT * FROM "{table}"')
            found[table] = sorted(cursor.fetchall(), key=repr)
    return found


def model_state() -> State:
    """The undo app's objects: by model, primary key -> fields; labels as (invoice, label)."""
    through = Invoice.labels.through
    return {
        "invoice": {
            row[0]: row for row in Invoice.objects.values_list("id", "number", "status", "total")
        },
        "line": {
            row[0]: row
            for row in Line.objects.values_list(
                "id", "invoice_id", "position", "product", "quantity"
            )
        },
        "labels": {row: row for row in through.objects.values_list("invoice_id", "label__name")},
        "document": {row[0]: row for row in Document.objects.values_list("id", "title")},
        "contract": {row[0]: row for row in Contract.objects.values_list("pk", "party")},
    }


def differences(expected: State, actual: State) -> list[str]:
    found = []
    for kind in expected:
        for key in sorted(set(expected[kind]) | set(actual[kind]), key=repr):
            if expected[kind].get(key) != actual[kind].get(key):
                found.append(f"{kind} {key}: {expected[kind].get(key)} != {actual[kind].get(key)}")
    return found


# -- the large assignation ---------------------------------------------------------------------


@dataclass
class Built:
    assignation_id: str
    #: The objects before the assignation.
    before: State
    #: History rows it wrote.
    changes: int


def build(prefix: str, target: int) -> Built:
    """Objects (with their history), then one assignation of about ``target`` changes."""
    groups = max(1, target // ROWS_PER_GROUP)
    labels = [Label.objects.get_or_create(name=name)[0] for name in LABELS]
    with koherent.assignation(app="soak-setup"):
        invoices = bulk_create_with_history(
            [Invoice(number=f"{prefix}{g}", total=g) for g in range(groups)], Invoice
        )
        doomed = bulk_create_with_history(
            [Invoice(number=f"{prefix}d{g}") for g in range(0, groups, 5)], Invoice
        )
        lines = bulk_create_with_history(
            [
                Line(invoice=invoice, position=p, product=f"p{p}", quantity=p)
                for invoice in invoices + doomed
                for p in (1, 2, 3)
            ],
            Line,
        )
        documents = bulk_create_with_history(
            [Document(title=f"{prefix}doc{g}") for g in range(0, groups, 2)], Document
        )
        contracts = [
            Contract.objects.create(title=f"{prefix}con{g}", party="old")
            for g in range(0, groups, 4)
        ]
        for invoice in invoices[::3]:
            invoice.labels.add(labels[0])
    lines_of: dict[Any, list[Line]] = {}
    for line in lines:
        lines_of.setdefault(line.invoice_id, []).append(line)
    before = model_state()
    with koherent.assignation(app="soak") as ctx:
        for g, invoice in enumerate(invoices):
            invoice.status = "sent"
            invoice.total += 100
            invoice.save()
            if g % 3 == 0:
                invoice.labels.remove(labels[0])
            invoice.labels.add(labels[1])
            first, second, _ = lines_of[invoice.pk]
            first.quantity += 10
            first.save()
            first.quantity += 1
            first.save()
            second.delete()
            Line.objects.create(invoice=invoice, position=4, product="added")
            new = Invoice.objects.create(number=f"{prefix}n{g}", total=1)
            Line.objects.create(invoice=new, position=1, product="n1")
            Line.objects.create(invoice=new, position=2, product="n2")
            new.labels.add(labels[2])
            if g % 5 == 0:
                doomed[g // 5].delete()  # with its three lines
            if g % 2 == 0:
                document = documents[g // 2]
                document.title += "!"
                document.save()
            if g % 4 == 0:
                contract = contracts[g // 4]
                contract.party = "new"
                contract.save()
                Contract.objects.create(title=f"{prefix}c{g}", party="created")
    assignation_id = ctx.assignation_id or ""
    changes = koherent.revert_assignation(assignation_id, dry_run=True).change_count
    return Built(assignation_id, before, changes)


# -- failure in the middle ---------------------------------------------------------------------


@pytest.fixture
def failing_trigger() -> Iterator[Callable[[int], None]]:
    """``arm(n)``: the n-th history row of a line inserted from then on raises an exception."""

    def arm(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SEQUENCE {SEQUENCE}")
            cursor.execute(
                f"""
                CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
                DECLARE n bigint;
                BEGIN
                    n := nextval('{SEQUENCE}');
                    IF n >= {n} THEN
                        RAISE EXCEPTION 'soak trigger: history row % of a line refused', n;
                    END IF;
                    RETURN NEW;
                END $$
                """
            )
            cursor.execute(
                f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON undoapp_historicalline "
                f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
            )

    try:
        yield arm
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON undoapp_historicalline")
            cursor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")
            cursor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


def drop_trigger() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {TRIGGER} ON undoapp_historicalline")


def test_a_database_error_in_the_middle_of_a_large_revert_changes_nothing(
    failing_trigger: Callable[[int], None], caplog: pytest.LogCaptureFixture
) -> None:
    built = build("F", CHANGES)
    plan = koherent.revert_assignation(built.assignation_id, dry_run=True)
    assert not plan.conflicts
    line_rows = sum(1 for change in plan.changes if change.model_label == "undoapp.Line")
    fail_at = math.ceil(line_rows * FAIL_AT)
    before = full_snapshot()
    failing_trigger(fail_at)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "koherent"), pytest.raises(koherent.RevertError) as info:
        koherent.revert_assignation(built.assignation_id)
    failed_after = time.monotonic() - started
    error = info.value
    assert not isinstance(error, koherent.RevertConflict)
    assert isinstance(error.__cause__, DatabaseError)
    assert "nothing was changed" in str(error)
    assert f"history row {fail_at} of a line refused" in str(error)
    assert f"reverting assignation {built.assignation_id} failed" in caplog.text
    with connection.cursor() as cursor:  # sequences ignore rollbacks: how far the revert got
        cursor.execute(f"SELECT last_value FROM {SEQUENCE}")
        assert cursor.fetchone()[0] == fail_at

    after = full_snapshot()
    changed = [table for table in before if before[table] != after[table]]
    assert changed == []
    assert not Assignation.objects.filter(origin="revert").exists()
    assert not Assignation.objects.filter(parent_id=built.assignation_id).exists()

    # Control: without the trigger the same revert goes through, back to the state before.
    drop_trigger()
    started = time.monotonic()
    result = koherent.revert_assignation(built.assignation_id)
    reverted_after = time.monotonic() - started
    assert differences(built.before, model_state()) == []
    record = Assignation.objects.get(pk=result.revert_assignation_id)
    assert (record.origin, record.parent_id) == ("revert", built.assignation_id)
    support.report(
        "revert-failure",
        changes=built.changes,
        objects=len(plan.changes),
        line_rows=line_rows,
        failed_at_line_row=fail_at,
        tables_compared=len(before),
        rows_compared=sum(len(rows) for rows in before.values()),
        tables_changed=len(changed),
        failed_after_s=round(failed_after, 2),
        reverted_after_s=round(reverted_after, 2),
    )


# -- racing concurrent changes -----------------------------------------------------------------

#: The field a concurrent change sets, per model (and its place in model_state's tuples).
RACED: dict[str, tuple[type[Any], str, int]] = {
    "invoice": (Invoice, "total", 3),
    "line": (Line, "quantity", 4),
}


@dataclass
class Committed:
    kind: str
    pk: Any
    value: int
    assignation_id: str


@dataclass
class Racer:
    """Changes random objects of an assignation, each in a transaction of its own."""

    targets: list[tuple[str, Any]]
    count: int
    seed: int
    #: Set once the first change is committed.
    first: threading.Event = field(default_factory=threading.Event)
    #: Set to let changes after the first one start.
    go: threading.Event = field(default_factory=threading.Event)
    committed: list[Committed] = field(default_factory=list)
    gone: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        chooser = random.Random(self.seed)
        try:
            for n in range(self.count):
                if n == 1:
                    self.go.wait(timeout=60)
                kind, pk = chooser.choice(self.targets)
                model, name, _ = RACED[kind]
                value = 1_000_000 + self.seed * 1000 + n
                with transaction.atomic(), koherent.assignation(app="racer") as ctx:
                    obj = model.objects.select_for_update().filter(pk=pk).first()
                    if obj is not None:
                        setattr(obj, name, value)
                        obj.save()
                if obj is None:  # deleted by the revert meanwhile
                    self.gone += 1
                else:
                    self.committed.append(Committed(kind, pk, value, ctx.assignation_id or ""))
                if n == 0:
                    self.first.set()
                time.sleep(chooser.random() * 0.005)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.first.set()
            connections.close_all()


def someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


def wait_until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(600):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def targets_of(assignation_id: str) -> list[tuple[str, Any]]:
    """The objects of the assignation that exist now, by kind and primary key."""
    found = []
    for kind, (model, _, _) in RACED.items():
        pks = set(model.history.filter(assignation_id=assignation_id).values_list("id", flat=True))
        found += [
            (kind, pk) for pk in model.objects.filter(pk__in=pks).values_list("pk", flat=True)
        ]
    return sorted(found)


def with_changes(state: State, committed: list[Committed]) -> State:
    """``state`` with the committed concurrent changes applied, in commit order."""
    result = {kind: dict(rows) for kind, rows in state.items()}
    for change in committed:
        _, _, place = RACED[change.kind]
        row = result[change.kind].get(change.pk)
        if row is None:  # the object is not in ``state``: expect it changed, not gone
            result[change.kind][change.pk] = ("changed by", change.assignation_id)
            continue
        result[change.kind][change.pk] = (*row[:place], change.value, *row[place + 1 :])
    return result


def overwritten(committed: list[Committed], state: State) -> list[str]:
    """The concurrent changes ``state`` does not show (the last one per object)."""
    last = {(c.kind, c.pk): c for c in committed}
    found = []
    for (kind, pk), change in last.items():
        row = state[kind].get(pk)
        if row is None or row[RACED[kind][2]] != change.value:
            found.append(f"{kind} {pk}: {change.value} by {change.assignation_id}, now {row}")
    return found


def race(round_: int, mode: str) -> dict[str, Any]:
    """One round: build, then revert while a racer changes objects. Checks the outcome."""
    built = build(f"R{round_}-", RACE_CHANGES)
    racer = Racer(targets_of(built.assignation_id), RACER_CHANGES, seed=round_)
    before_revert = model_state()
    outcome: dict[str, Any] = {}
    writing = threading.Event()
    release = threading.Event()

    def progress(stage: str, done: int, total: int) -> None:
        # Once the revert writes (every object locked), let the racer run into the locks.
        if mode == "during" and stage != "read" and not writing.is_set():
            writing.set()
            release.wait(timeout=60)

    def revert() -> None:
        try:
            outcome["result"] = koherent.revert_assignation(
                built.assignation_id, progress=progress
            )
        except Exception as exc:
            outcome["result"] = exc
        finally:
            writing.set()
            connections.close_all()

    racing = threading.Thread(target=racer.run)
    reverting = threading.Thread(target=revert)
    try:
        if mode == "before":  # one change committed before the revert starts, the rest during it
            racing.start()
            assert racer.first.wait(timeout=60)
            reverting.start()
            racer.go.set()
        elif mode == "during":  # every change attempted while the revert holds its locks
            reverting.start()
            assert writing.wait(timeout=120)
            racer.go.set()
            racing.start()
            if "result" not in outcome:
                wait_until(someone_waits_for_a_lock, "the racer to wait for the revert's locks")
            release.set()
        else:  # free: both at once
            racer.go.set()
            reverting.start()
            racing.start()
    finally:  # whatever failed above, let both threads finish
        racer.go.set()
        release.set()
        for thread in (reverting, racing):
            if thread.ident is not None:
                thread.join(timeout=300)
    assert racer.error is None, racer.error
    result = outcome["result"]
    after = model_state()
    revert_records = Assignation.objects.filter(origin="revert", parent_id=built.assignation_id)

    if isinstance(result, koherent.RevertConflict):
        # Nothing of the revert was written: every row is as the concurrent changes left it.
        assert not revert_records.exists()
        assert overwritten(racer.committed, after) == []
        assert differences(with_changes(before_revert, racer.committed), after) == []
        racers = {c.assignation_id for c in racer.committed}
        assert {c.assignation_id for c in result.conflicts} <= racers
        assert result.conflicts
        outcome_name = "conflict"
    else:
        assert isinstance(result, koherent.RevertResult), result
        assert revert_records.count() == 1
        # Back to the state before the assignation, with every concurrent change on top: none
        # was overwritten, and each one's history row comes after the revert's row.
        assert overwritten(racer.committed, after) == []
        assert differences(with_changes(built.before, racer.committed), after) == []
        for change in racer.committed:
            model, _, _ = RACED[change.kind]
            rows = list(
                model.history.filter(id=change.pk)
                .order_by("history_date", "history_id")
                .values_list("assignation_id", flat=True)
            )
            if result.revert_assignation_id in rows:
                assert rows.index(result.revert_assignation_id) < rows.index(
                    change.assignation_id
                ), (change, rows)
        outcome_name = "reverted"
    if mode == "before":
        assert outcome_name == "conflict"
    if mode == "during":
        assert outcome_name == "reverted"
    return {
        "outcome": outcome_name,
        "changes": built.changes,
        "committed": len(racer.committed),
        "gone": racer.gone,
    }


def test_reverts_racing_concurrent_changes_never_overwrite_them_nor_half_apply() -> None:
    modes = [("before", "during", "free")[n % 3] for n in range(RACE_ROUNDS)]
    rounds = [race(n, mode) for n, mode in enumerate(modes)]
    outcomes = [r["outcome"] for r in rounds]
    support.report(
        "revert-race",
        rounds=len(rounds),
        changes_per_assignation=rounds[0]["changes"],
        concurrent_changes=sum(r["committed"] for r in rounds),
        changes_on_reverted_away_objects=sum(r["gone"] for r in rounds),
        conflicts=outcomes.count("conflict"),
        completed=outcomes.count("reverted"),
    )
    assert {"conflict", "reverted"} <= set(outcomes)
