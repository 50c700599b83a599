"""The context reaches real workers over a real broker, through every way a task is sent."""

from __future__ import annotations

from typing import Any

import pytest

import koherent
from koherent.models import Assignation
from tests.celery.harness import Worker, wait_for
from tests.testapp.models import Order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TIMEOUT = 60


def history(label: str) -> Any:
    return Order.history.get(reference=label)


@pytest.mark.urls("tests.celery.views")
def test_request_delay_reaches_the_worker(worker: Worker, client: Any, user: Any) -> None:
    client.force_login(user)
    response = client.post(f"/enqueue/?worker={worker.key}&label=from-request")
    assert response.status_code == 200
    sent = response.json()
    seen = worker.app.AsyncResult(sent["task_id"]).get(timeout=TIMEOUT)

    assert seen["assignation_id"] == sent["assignation_id"] is not None
    assert (seen["user_id"], seen["app"]) == (user.pk, "tests")
    assert seen["context_task_id"] == sent["task_id"]
    row = history("from-request")
    assert row.history_user_id == user.pk
    assert row.user_pk == str(user.pk)
    assert (row.app, row.assignation_id, row.task_id) == (
        "tests",
        sent["assignation_id"],
        sent["task_id"],
    )
    # The request wrote nothing, so the worker wrote the assignation's record.
    record = Assignation.objects.get(pk=sent["assignation_id"])
    assert (record.origin, record.user_id, record.app, record.task_id) == (
        "celery",
        user.pk,
        "tests",
        sent["task_id"],
    )


@pytest.mark.urls("tests.celery.views")
def test_anonymous_request_sends_no_user(redis_worker: Worker, client: Any) -> None:
    """Control: the same request without a login gives the task no user."""
    response = client.post(f"/enqueue/?worker={redis_worker.key}&label=anonymous")
    sent = response.json()
    seen = redis_worker.app.AsyncResult(sent["task_id"]).get(timeout=TIMEOUT)
    assert seen["user_id"] is None
    assert seen["assignation_id"] == sent["assignation_id"] is not None
    assert history("anonymous").history_user_id is None


def assert_stamped(label: str, ctx: Any, user: Any, task_id: str | None = None) -> Any:
    """The history row of ``label`` carries ``ctx``'s assignation and app, and ``user``."""
    row = history(label)
    assert (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
        ctx.assignation_id,
        ctx.app,
        user.pk,
        str(user.pk),
    ), label
    if task_id is not None:
        assert row.task_id == task_id, label
    assert row.task_id is not None, label
    return row


@pytest.fixture
def sending(user: Any) -> Any:
    """The context the test process sends tasks under."""
    with koherent.assignation(user=user, app="sender") as ctx:
        yield ctx


def test_child_delay_inside_a_task(worker: Worker, sending: Any, user: Any) -> None:
    parent = worker.tasks.spawn.delay("parent").get(timeout=TIMEOUT)
    child = worker.app.AsyncResult(parent["child_id"]).get(timeout=TIMEOUT)
    assert_stamped("parent", sending, user, task_id=parent["task_id"])
    assert_stamped("parent-child", sending, user, task_id=parent["child_id"])
    # Celery's own lineage, not ids of Koherent's making.
    assert child["parent_id"] == parent["task_id"]
    assert child["root_id"] == parent["task_id"]


def test_a_tasks_queryset_update_is_recorded_under_the_senders_assignation(
    worker: Worker, sending: Any, user: Any
) -> None:
    Order.objects.create(reference="to-reserve")
    done = worker.tasks.reserve.delay("to-reserve").get(timeout=TIMEOUT)

    assert done["updated"] == 1
    row = Order.history.get(reference="to-reserve", history_type="~")
    assert row.status == "reserving"
    assert (row.assignation_id, row.app, row.history_user_id, row.task_id) == (
        sending.assignation_id,
        "sender",
        user.pk,
        done["task_id"],
    )
    assert row.history_changed_fields == "status"


def test_send_task_by_name(redis_worker: Worker, sending: Any, user: Any) -> None:
    result = redis_worker.app.send_task("kt.write", args=["by-name"])
    result.get(timeout=TIMEOUT)
    assert_stamped("by-name", sending, user, task_id=result.id)


def test_chain_every_step(worker: Worker, sending: Any, user: Any) -> None:
    from celery import chain

    write = worker.tasks.write
    result = chain(write.si("chain-1"), write.si("chain-2"), write.si("chain-3")).delay()
    result.get(timeout=TIMEOUT)
    ids = {assert_stamped(f"chain-{n}", sending, user).task_id for n in (1, 2, 3)}
    assert len(ids) == 3


def test_group(redis_worker: Worker, sending: Any, user: Any) -> None:
    from celery import group

    write = redis_worker.tasks.write
    group(write.si(f"group-{n}") for n in range(3)).delay().get(timeout=TIMEOUT)
    for n in range(3):
        assert_stamped(f"group-{n}", sending, user)


def test_chord_header_and_callback(worker: Worker, sending: Any, user: Any) -> None:
    from celery import chord

    write = worker.tasks.write
    result = chord([write.si("chord-a"), write.si("chord-b")], write.si("chord-callback"))()
    seen = result.get(timeout=TIMEOUT)
    assert_stamped("chord-a", sending, user)
    assert_stamped("chord-b", sending, user)
    assert_stamped("chord-callback", sending, user, task_id=seen["task_id"])


def test_retry_with_countdown(worker: Worker, sending: Any, user: Any) -> None:
    result = worker.tasks.retrying.delay("retry", 2, 1)
    last = result.get(timeout=TIMEOUT)
    assert last["retries"] == 2
    rows = [assert_stamped(f"retry-{n}", sending, user, task_id=result.id) for n in range(3)]
    # One header, signed again for each attempt: every attempt got one of the same size.
    lengths = {Order.objects.get(reference=f"retry-{n}").status for n in range(3)}
    assert lengths == {str(last["header_length"])}
    assert int(lengths.pop()) < 120
    assert [row.total for row in rows] == [0, 1, 2]


def test_retry_with_other_arguments(worker: Worker, sending: Any, user: Any) -> None:
    """``retry(args=..., kwargs=...)`` sends a message with other arguments: the worker signs
    it for them, so the header (bound to the arguments) still verifies on each attempt."""
    result = worker.tasks.retry_args.delay("retry-args")
    last = result.get(timeout=TIMEOUT)
    assert last["kwargs"] == {"note": "after 1"}
    rows = [assert_stamped(f"retry-args-{n}", sending, user, task_id=result.id) for n in range(3)]
    assert [row.total for row in rows] == [0, 1, 2]


def test_autoretry_for(redis_worker: Worker, sending: Any, user: Any) -> None:
    result = redis_worker.tasks.autoretrying.delay("autoretry", 2)
    result.get(timeout=TIMEOUT)
    for n in range(3):
        assert_stamped(f"autoretry-{n}", sending, user, task_id=result.id)


def test_eta(redis_worker: Worker, sending: Any, user: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    result = redis_worker.tasks.write.apply_async(
        ("eta",), eta=timezone.now() + timedelta(seconds=1)
    )
    result.get(timeout=TIMEOUT)
    assert_stamped("eta", sending, user, task_id=result.id)


def test_link(redis_worker: Worker, sending: Any, user: Any) -> None:
    write = redis_worker.tasks.write
    result = write.apply_async(("linked-parent",), link=write.si("linked-callback"))
    result.get(timeout=TIMEOUT)
    wait_for(lambda: Order.objects.filter(reference="linked-callback").exists(), what="link")
    assert_stamped("linked-parent", sending, user, task_id=result.id)
    callback = assert_stamped("linked-callback", sending, user)
    assert callback.task_id != result.id


def test_link_error(redis_worker: Worker, sending: Any, user: Any) -> None:
    tasks = redis_worker.tasks
    result = tasks.failing.apply_async(
        ("fails",), link_error=[tasks.errback_inline.s(), tasks.errback_published.s()]
    )
    with pytest.raises(ValueError, match="fails on purpose"):
        result.get(timeout=TIMEOUT)
    inline, published = f"eb-in-{result.id}", f"eb-pub-{result.id}"
    wait_for(
        lambda: Order.objects.filter(reference__in=[inline, published]).count() == 2,
        what="both errbacks",
    )
    assert_stamped("fails", sending, user, task_id=result.id)
    assert_stamped(inline, sending, user, task_id=result.id)  # ran inside the failed task
    assert history(published).task_id != result.id  # a task of its own
    assert_stamped(published, sending, user)


def test_replace(redis_worker: Worker, sending: Any, user: Any) -> None:
    result = redis_worker.tasks.replacing.delay("replaced")
    result.get(timeout=TIMEOUT)
    wait_for(
        lambda: Order.objects.filter(reference="replaced-replacement").exists(),
        what="the replacement",
    )
    assert_stamped("replaced", sending, user)
    assert_stamped("replaced-replacement", sending, user)


def test_eager_child_inside_a_worker_task(redis_worker: Worker, sending: Any, user: Any) -> None:
    seen = redis_worker.tasks.spawn_eager.delay("eager-parent").get(timeout=TIMEOUT)
    assert_stamped("eager-parent", sending, user, task_id=seen["task_id"])
    assert_stamped("eager-parent-child", sending, user, task_id=seen["child"]["task_id"])
    # After the eager child, the parent is back in its own context.
    assert seen["after_child"]["task_id"] == seen["task_id"]
    assert seen["after_child"]["assignation_id"] == sending.assignation_id


def test_no_context_sends_none(redis_worker: Worker) -> None:
    """Control: without a context in the sender, the task sees none (only its own id)."""
    result = redis_worker.tasks.spawn.delay("unattributed")
    seen = result.get(timeout=TIMEOUT)
    child = redis_worker.app.AsyncResult(seen["child_id"]).get(timeout=TIMEOUT)
    for observed, label in ((seen, "unattributed"), (child, "unattributed-child")):
        assert (observed["assignation_id"], observed["app"], observed["user_id"]) == (
            None,
            None,
            None,
        )
        assert observed["header_length"] is None
        row = history(label)
        assert (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
            None,
            None,
            None,
            None,
        )
        assert row.task_id == observed["task_id"]


def test_user_deleted_before_the_task_runs(redis_worker: Worker, django_user_model: Any) -> None:
    doomed = django_user_model.objects.create_user(username="doomed", password="pw")
    pk = doomed.pk
    with koherent.assignation(user=doomed, app="sender") as ctx:
        doomed.delete()
        result = redis_worker.tasks.write.delay("orphaned")
    result.get(timeout=TIMEOUT)
    row = history("orphaned")
    # The change is kept, without a user, but with the id of the one who made it.
    assert Order.objects.filter(reference="orphaned").exists()
    assert (row.history_user_id, row.user_pk, row.assignation_id) == (
        None,
        str(pk),
        ctx.assignation_id,
    )
    record = Assignation.objects.get(pk=ctx.assignation_id)
    assert (record.user_id, record.user_pk, record.origin) == (None, str(pk), "celery")
    assert f"user {pk!r} does not exist" in redis_worker.log()
