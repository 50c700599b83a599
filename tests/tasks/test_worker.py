"""Django's tasks framework with the database backend of django-tasks-db, run by its real
``db_worker`` process: tasks run in the context they were enqueued under, nothing leaks from a
task to the next, and values written to the task store by anyone but Koherent are refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import koherent
from koherent.django_tasks import KWARG
from koherent.django_tasks.compat import FRAMEWORKS
from koherent.models import Assignation
from tests.tasks import jobs
from tests.tasks.forgeries import REASONS, claim, forge, genuine
from tests.tasks.worker import BACKEND, DbWorker
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def stamp(label: str) -> tuple[Any, ...]:
    row = Order.history.get(reference=label)
    return row.assignation_id, row.app, row.history_user_id, row.task_id


def test_tasks_run_in_their_enqueuing_context(db_worker: DbWorker, user: Any) -> None:
    with koherent.assignation(user=user, app="web") as ctx:
        results = {
            "sync": db_worker.task(jobs.write).enqueue("w-sync", total=3),
            "async": db_worker.task(jobs.write_async).enqueue("w-async"),
            "with-context": db_worker.task(jobs.write_with_context).enqueue("w-ctx"),
        }
    without = db_worker.task(jobs.write).enqueue("w-none")
    db_worker.wait([*results.values(), without])

    for kind, label in (("sync", "w-sync"), ("async", "w-async"), ("with-context", "w-ctx")):
        result = results[kind]
        assert result.status == "SUCCESSFUL", (kind, db_worker.log()[-3000:])
        seen = result.return_value
        assert (seen["assignation_id"], seen["app"], seen["user_id"]) == (
            ctx.assignation_id,
            "web",
            user.pk,
        ), kind
        assert seen["task_id"] == str(result.id), kind
        assert stamp(label) == (ctx.assignation_id, "web", user.pk, str(result.id)), kind
    assert Order.objects.get(reference="w-sync").total == 3
    # The assignation's first change was the worker's.
    assert Assignation.objects.get(id=ctx.assignation_id).origin == "tasks"
    # Control: the task enqueued outside the block.
    assert without.return_value["assignation_id"] is None
    assert stamp("w-none") == (None, None, None, str(without.id))


def test_tasks_without_context_see_none(db_worker: DbWorker, user: Any) -> None:
    """Tasks with a context (half of them failing) alternate with tasks without one, all run
    one after the other by the worker's one thread."""
    sent: list[tuple[str, Any, str | None]] = []
    for n in range(60):
        label = f"leak-{n}"
        if n % 2:
            sent.append((label, db_worker.task(jobs.write).enqueue(label), None))
            continue
        task = jobs.fail if n % 4 == 0 else jobs.write
        with koherent.assignation(user=user, app="leaky") as ctx:
            sent.append((label, db_worker.task(task).enqueue(label), ctx.assignation_id))
    db_worker.wait([result for _, result, _ in sent])

    for label, result, assignation_id in sent:
        if assignation_id is None:
            assert result.status == "SUCCESSFUL", label
            assert stamp(label) == (None, None, None, str(result.id)), label
            assert Order.history.get(reference=label).user_pk is None
        else:
            assert stamp(label) == (assignation_id, "leaky", user.pk, str(result.id)), label
    assert {r.status for label, r, a in sent if a and int(label.split("-")[1]) % 4 == 0} == {
        "FAILED"
    }


def _enqueue_below_koherent(db_worker: DbWorker, label: str, value: Any) -> Any:
    """Store a task with ``value`` under the reserved argument, as someone with write access to
    the task store could: through the backend, past the audited task's ``enqueue()``."""
    backend = FRAMEWORKS[0].task_backends[BACKEND]
    return backend.enqueue(db_worker.task(jobs.write), [label], {KWARG: value})


def test_forged_values_are_refused(db_worker: DbWorker, user: Any) -> None:
    results = {}
    for kind in REASONS:
        label = f"forged-{kind}-{uuid.uuid4().hex[:6]}"
        value = forge(kind, jobs.write.module_path, [label], claim(user.pk))
        results[kind] = (label, _enqueue_below_koherent(db_worker, label, value))
    db_worker.wait([result for _, result in results.values()])

    for kind, (label, result) in results.items():
        assert result.status == "SUCCESSFUL", kind  # refused, and run all the same
        assert result.return_value["user_id"] is None, kind
        assert stamp(label) == (None, None, None, str(result.id)), kind
        db_worker.wait_for_log(
            f"task {jobs.write.module_path}[{result.id}]: audit context refused ({REASONS[kind]})"
        )
    assert db_worker.alive()


def test_a_genuine_value_stored_the_same_way_is_accepted(db_worker: DbWorker, user: Any) -> None:
    """Control for the forgery test: the refusals come from the checks."""
    value = genuine(jobs.write.module_path, ["genuine"], claim(user.pk))
    result = _enqueue_below_koherent(db_worker, "genuine", value)
    db_worker.wait([result])
    assert stamp("genuine") == ("forged-op", "forged-app", user.pk, str(result.id))
