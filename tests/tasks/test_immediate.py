"""Django's tasks framework, immediate backend: the task runs in the context it was enqueued
under, stamped with its own result id, and the caller's context is untouched afterwards."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import koherent
from koherent._users import StaticUserRef
from koherent.context import AuditContext, use
from koherent.django_tasks import KWARG, PURPOSE, audited
from koherent.django_tasks.kwarg import binding
from koherent.models import Assignation
from koherent.signing import sign_context
from tests.tasks import jobs
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

NO_CONTEXT = {"assignation_id": None, "app": None, "user_id": None}


def stamp(label: str) -> tuple[Any, ...]:
    row = Order.history.get(reference=label)
    return row.assignation_id, row.app, row.history_user_id, row.task_id


def test_task_runs_in_the_enqueuing_context(user: Any) -> None:
    with koherent.assignation(user=user, app="shop") as ctx:
        result = jobs.write.enqueue("immediate")
        after = koherent.current()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == {
        "assignation_id": ctx.assignation_id,
        "app": "shop",
        "user_id": user.pk,
        "task_id": result.id,
        "origin": "tasks",
    }
    assert stamp("immediate") == (ctx.assignation_id, "shop", user.pk, result.id)
    assert after is ctx  # the caller's own context object, exactly
    assert koherent.current().is_empty
    # Opened by the caller, first written by the task.
    assert Assignation.objects.get(id=ctx.assignation_id).origin == "tasks"


def test_task_enqueued_without_context_has_only_its_id() -> None:
    result = jobs.write.enqueue("bare")
    assert KWARG not in result.kwargs
    assert result.return_value == {**NO_CONTEXT, "task_id": result.id, "origin": "tasks"}
    assert stamp("bare") == (None, None, None, result.id)


def test_the_function_never_sees_the_argument() -> None:
    with koherent.assignation(app="shop"):
        result = jobs.echo_kwargs.enqueue(a=1, b=2)
    assert KWARG in result.kwargs  # stored with the task...
    assert result.return_value["kwargs"] == ["a", "b"]  # ...but taken out before the call


def test_a_caller_value_is_stripped_without_context(user: Any) -> None:
    claim = AuditContext(assignation_id="claimed", user_ref=StaticUserRef(user.pk))
    forged = sign_context(claim, bind=binding(jobs.write.module_path, ["x"], {}), purpose=PURPOSE)
    result = jobs.write.enqueue("x", **{KWARG: forged})
    assert KWARG not in result.kwargs
    assert result.return_value["assignation_id"] is None
    assert stamp("x") == (None, None, None, result.id)


def test_a_caller_value_is_overwritten_by_the_context(user: Any) -> None:
    claim = AuditContext(assignation_id="claimed", user_ref=StaticUserRef(user.pk))
    forged = sign_context(claim, bind=binding(jobs.write.module_path, ["y"], {}), purpose=PURPOSE)
    with koherent.assignation(app="real") as ctx:
        result = jobs.write.enqueue("y", **{KWARG: forged})
    assert (result.return_value["assignation_id"], result.return_value["user_id"]) == (
        ctx.assignation_id,
        None,
    )


def test_a_failing_task_leaks_nothing(user: Any) -> None:
    with koherent.assignation(user=user, app="shop") as ctx:
        failed = jobs.fail.enqueue("failing")
        assert koherent.current() is ctx
    assert failed.status == "FAILED"
    assert stamp("failing") == (ctx.assignation_id, "shop", user.pk, failed.id)
    after = jobs.write.enqueue("after-failure")  # control: no context now
    assert after.return_value == {**NO_CONTEXT, "task_id": after.id, "origin": "tasks"}
    assert koherent.current().is_empty


def test_alternating_tasks_do_not_leak(user: Any) -> None:
    sent: dict[int, tuple[Any, str | None]] = {}
    for n in range(20):
        if n % 2:
            sent[n] = (jobs.write.enqueue(f"n{n}"), None)
        else:
            with koherent.assignation(user=user, app="alt") as ctx:
                sent[n] = (jobs.write.enqueue(f"n{n}"), ctx.assignation_id)
    for n, (result, assignation_id) in sent.items():
        if assignation_id is None:
            assert stamp(f"n{n}") == (None, None, None, result.id)
        else:
            assert stamp(f"n{n}") == (assignation_id, "alt", user.pk, result.id)


def test_task_taking_the_task_context(user: Any) -> None:
    with koherent.assignation(user=user) as ctx:
        result = jobs.write_with_context.enqueue("with-context")
    seen = result.return_value
    assert seen is not None
    assert (seen["assignation_id"], seen["user_id"]) == (ctx.assignation_id, user.pk)
    assert seen["task_id"] == seen["result_id"] == result.id


def test_async_task(user: Any) -> None:
    with koherent.assignation(user=user, app="async") as ctx:
        result = jobs.write_async.enqueue("async-task")
    assert result.return_value["assignation_id"] == ctx.assignation_id
    assert stamp("async-task") == (ctx.assignation_id, "async", user.pk, result.id)


@pytest.mark.django_db(transaction=True)  # the ORM runs in asgiref's thread
async def test_aenqueue_from_async_code() -> None:
    async with koherent.assignation(app="aenqueue") as ctx:
        result = await jobs.write_async.aenqueue("aenqueued")
        assert koherent.current() is ctx
    assert result.return_value["assignation_id"] == ctx.assignation_id
    assert result.return_value["task_id"] == result.id


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_keep_their_own_contexts() -> None:
    async def one(n: int) -> tuple[str, Any]:
        async with koherent.assignation(app=f"c{n}") as ctx:
            await asyncio.sleep(0)
            result = await jobs.write_async.aenqueue(f"concurrent-{n}")
            return str(ctx.assignation_id), result.return_value

    async def many() -> list[tuple[str, Any]]:
        return await asyncio.gather(*(one(n) for n in range(8)))

    for assignation_id, seen in asyncio.run(many()):
        assert seen["assignation_id"] == assignation_id


def test_a_direct_call_keeps_the_callers_context() -> None:
    with koherent.assignation(app="direct") as ctx:
        seen = jobs.write.call("direct")
        assert koherent.current() is ctx
    assert (seen["assignation_id"], seen["task_id"], seen["origin"]) == (
        ctx.assignation_id,
        None,
        "manual",
    )


def test_using_keeps_the_task_audited() -> None:
    changed = jobs.write.using(priority=5)
    assert isinstance(changed, type(jobs.write))
    with koherent.assignation() as ctx:
        result = changed.enqueue("using")
    assert result.return_value["assignation_id"] == ctx.assignation_id


def test_audited_twice_is_the_same_task() -> None:
    assert audited(jobs.write) is jobs.write


def test_audited_refuses_what_is_not_a_task() -> None:
    def function() -> None: ...

    with pytest.raises(TypeError, match="place @audited above @task"):
        audited(function)


def test_audited_refuses_a_celery_task_and_names_celerys_audited() -> None:
    """The two task runners' ``audited`` go in the same place and tell each other's tasks."""
    from celery import Celery

    from koherent.celery import audited as celery_audited

    def run() -> None: ...

    app = Celery("placement", set_as_current=False)
    app.finalize()
    try:
        celery_task = app.task(name="placement.celery")(run)
        with pytest.raises(TypeError, match=r"for Celery use koherent\.celery\.audited"):
            audited(celery_task)
        with pytest.raises(TypeError, match=r"use koherent\.django_tasks\.audited"):
            celery_audited(jobs.plain)
    finally:
        app.close()


def test_plain_tasks_are_left_alone() -> None:
    with koherent.assignation(app="plain"):
        result = jobs.plain.enqueue("plain")
    assert KWARG not in result.kwargs
    # An immediate backend runs a plain task in its caller's thread, as a function call.
    assert result.return_value is not None
    assert result.return_value["app"] == "plain"
    assert result.return_value["task_id"] is None


def test_an_unsignable_context_still_enqueues_the_task(caplog: pytest.LogCaptureFixture) -> None:
    broken = AuditContext(assignation_id="op-1", user_ref=StaticUserRef("line\nbreak"))
    with use(broken), caplog.at_level(logging.WARNING, logger="koherent.tasks"):
        result = jobs.write.enqueue("unsignable")
    assert result.status == "SUCCESSFUL"
    assert result.return_value["assignation_id"] is None
    assert f"task {jobs.write.module_path} is enqueued without its audit context" in caplog.text


def test_arguments_that_are_not_json_fail_as_without_koherent() -> None:
    with koherent.assignation(), pytest.raises(TypeError):
        jobs.write.enqueue({"a", "set"})
