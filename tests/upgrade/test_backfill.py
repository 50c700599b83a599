"""``koherent_upgrade`` on rows shaped like koherent 0.2.0's, in this project's own tables.

Rows are written by this version and then stripped to what 0.2.0 wrote (``user_pk`` and
``app`` empty, no ``Assignation`` record). ``test_upgrade_020.py`` runs the command on a
database that 0.2.0 itself wrote; these tests cover batching, resuming and idempotence.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

import koherent
from koherent import records
from koherent.models import Assignation
from koherent.upgrade import IMPORTED_ORIGIN, backfill_user_pk, upgrade
from tests.testapp.models import Order, Project

pytestmark = pytest.mark.django_db


def as_020() -> None:
    """Strip every history row and record to what koherent 0.2.0 left behind."""
    for model in (Order, Project):
        model.history.update(user_pk=None, app=None)
    Assignation.objects.all().delete()
    records.clear_cache()


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("koherent_upgrade", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_dry_run_counts_and_writes_nothing(user: Any) -> None:
    with koherent.assignation(user=user, app="lab"):
        Order.objects.create(reference="A")
    as_020()
    out = command("--dry-run")
    assert "testapp.HistoricalOrder: would write user_pk of 1 row(s)" in out
    assert "testapp.HistoricalOrder: would write 1 assignation record(s)" in out
    assert Order.history.get().user_pk is None
    assert not Assignation.objects.exists()


def test_an_interrupted_upgrade_resumes_and_a_rerun_changes_nothing(
    user: Any, other_user: Any
) -> None:
    ids = []
    for n in range(5):
        with koherent.assignation(user=user if n % 2 else other_user, app=f"app{n}") as ctx:
            Order.objects.create(reference=f"o{n}")
        ids.append(ctx.assignation_id)
    as_020()

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(model: Any, step: str, done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        upgrade(batch_size=2, progress=stop_after_first_batch)
    # The first batch is committed, the rest is not written yet.
    assert Order.history.exclude(user_pk=None).count() == 2

    results = upgrade(batch_size=2)
    done = {(r.step, r.label): r.done for r in results}
    assert done[("user_pk", "testapp.HistoricalOrder")] == 3
    assert done[("assignations", "testapp.HistoricalOrder")] == 5
    for row in Order.history.all():
        assert row.user_pk == str(row.history_user_id)
    for n, assignation_id in enumerate(ids):
        record = Assignation.objects.get(pk=assignation_id)
        expected_user = user if n % 2 else other_user
        assert (record.user_id, record.user_pk, record.origin) == (
            expected_user.pk,
            str(expected_user.pk),
            IMPORTED_ORIGIN,
        )
    assert "Nothing to upgrade" in command()


def test_user_pk_batches_cost_a_fixed_number_of_queries(user: Any) -> None:
    with koherent.assignation(user=user):
        for n in range(6):
            Order.objects.create(reference=f"o{n}")
    as_020()
    history = Order.history.model
    with CaptureQueriesContext(connection) as queries:
        result = backfill_user_pk(history, using="default", batch_size=2)
    assert result.done == 6
    # One count, then per batch of 2: a select of keys and an update (plus savepoints).
    work = [q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(work) == 1 + 3 * 2 + 1  # the last select finds no more rows


def test_a_record_takes_the_first_row_across_models(user: Any, other_user: Any) -> None:
    with koherent.assignation(user=user, app="first") as ctx:
        Project.objects.create(name="p")  # testapp.Project sorts after testapp.Order
        Order.objects.create(reference="o")
    Order.history.update(user_pk=str(other_user.pk), history_user=other_user, app="later")
    as_020()
    Order.history.update(app="later")
    Project.history.update(app="first")
    upgrade()
    record = Assignation.objects.get(pk=ctx.assignation_id)
    assert (record.user_id, record.app) == (user.pk, "first")
    assert record.created == Project.history.get().history_date


def test_records_koherent_wrote_itself_are_left_alone(user: Any) -> None:
    with koherent.assignation(user=user, app="live", origin="request") as ctx:
        Order.objects.create(reference="o")
    before = Assignation.objects.get(pk=ctx.assignation_id)
    upgrade()
    after = Assignation.objects.get(pk=ctx.assignation_id)
    assert (after.origin, after.app, after.created) == ("request", "live", before.created)


def test_a_bad_batch_size_is_refused() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 1"):
        command("--batch-size", "0")
