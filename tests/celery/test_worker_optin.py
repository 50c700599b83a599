"""Per-task opt-in, on a worker whose app was *not* passed to ``install()``; and beat."""

from __future__ import annotations

from typing import Any

import pytest

import koherent
from koherent.exceptions import AuditContextRequired
from koherent.models import Assignation
from tests.celery.harness import Beat, Worker, wait_for
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TIMEOUT = 60


def test_opted_in_tasks_restore_the_context(optin_worker: Worker, user: Any) -> None:
    tasks = optin_worker.tasks
    with koherent.assignation(user=user, app="sender") as ctx:
        decorated = tasks.optin_decorated.delay("decorated")
        based = tasks.optin_class.delay("based")
        plain = tasks.write.delay("plain")
    for result in (decorated, based):
        seen = result.get(timeout=TIMEOUT)
        assert (seen["assignation_id"], seen["user_id"], seen["context_task_id"]) == (
            ctx.assignation_id,
            user.pk,
            result.id,
        )
    # Control: the header reached the task that did not opt in, and was left alone.
    seen = plain.get(timeout=TIMEOUT)
    assert seen["header_length"] is not None
    assert (seen["assignation_id"], seen["user_id"], seen["context_task_id"]) == (None,) * 3
    assert Order.history.get(reference="plain").assignation_id is None


def test_fresh_assignation_for_tasks_sent_without_context(optin_worker: Worker, user: Any) -> None:
    first = optin_worker.tasks.fresh.delay("fresh-1").get(timeout=TIMEOUT)
    second = optin_worker.tasks.fresh.delay("fresh-2").get(timeout=TIMEOUT)
    assert first["assignation_id"] != second["assignation_id"]
    for seen in (first, second):
        assert (seen["app"], seen["origin"], seen["user_id"]) == ("nightly", "beat", None)
        record = Assignation.objects.get(pk=seen["assignation_id"])
        assert (record.origin, record.app, record.task_id) == ("beat", "nightly", seen["task_id"])
        row = Order.history.get(reference=seen["label"])
        assert row.assignation_id == seen["assignation_id"]
    # A task that arrives with a context keeps it.
    with koherent.assignation(user=user, app="sender") as ctx:
        result = optin_worker.tasks.fresh.delay("fresh-sent")
    seen = result.get(timeout=TIMEOUT)
    assert (seen["assignation_id"], seen["app"], seen["user_id"]) == (
        ctx.assignation_id,
        "sender",
        user.pk,
    )


@pytest.mark.parametrize("name", ["required", "required_class"])
def test_require_context(optin_worker: Worker, user: Any, name: str) -> None:
    task = getattr(optin_worker.tasks, name)
    refused = task.delay(f"{name}-bare")
    with pytest.raises(AuditContextRequired, match=r"requires an audit context.*no context"):
        refused.get(timeout=TIMEOUT)
    assert not Order.objects.filter(reference=f"{name}-bare").exists()  # the body never ran
    with koherent.assignation(user=user, app="sender") as ctx:
        accepted = task.delay(f"{name}-sent")
    assert accepted.get(timeout=TIMEOUT)["assignation_id"] == ctx.assignation_id


def test_require_context_refuses_a_forged_header(
    optin_worker: Worker, forge: dict[str, object]
) -> None:
    import uuid

    task_id = str(uuid.uuid4())
    forge[task_id] = "1|op|app||1:" + "A" * 43
    result = optin_worker.tasks.required.apply_async(("required-forged",), task_id=task_id)
    with pytest.raises(AuditContextRequired, match="bad-signature"):
        result.get(timeout=TIMEOUT)
    assert not Order.objects.filter(reference="required-forged").exists()


def test_beat_scheduled_runs_each_open_an_assignation(optin_worker: Worker, tmp_path: Any) -> None:
    with Beat(optin_worker, "beat-run", tmp_path / "schedule", tmp_path / "beat.log"):
        rows = wait_for(
            lambda: (
                list(Order.history.filter(reference="beat-run"))
                if Order.history.filter(reference="beat-run").count() >= 2
                else None
            ),
            timeout=45,
            what="two beat runs",
        )
    optin_worker.drain()  # the last run beat sent ends before the test does
    assignations = {row.assignation_id for row in rows}
    assert len(assignations) == len(rows)  # one per run
    assert None not in assignations
    records = Assignation.objects.filter(pk__in=assignations)
    assert {(r.origin, r.app, r.user_id) for r in records} == {("beat", "nightly", None)}
