"""Eager mode (``task_always_eager``, ``apply()``): the task runs in its caller's context,
its children too, and the caller's context is unchanged afterwards. No broker needed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery

import koherent
from koherent.celery.header import HEADER, PURPOSE, message_binding
from koherent.context import peek
from koherent.exceptions import AuditContextRequired
from koherent.signing import sign_context
from tests.celery.project import make_app
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def eager() -> Iterator[SimpleNamespace]:
    app, tasks = make_app(
        "eager", broker="memory://", backend="cache+memory://", queue="eager", eager=True
    )
    yield tasks
    app.close()


@pytest.fixture(scope="module")
def uninstalled() -> Iterator[tuple[Celery, SimpleNamespace]]:
    """An eager app Koherent was not installed on."""
    app, tasks = make_app(
        "uninstalled",
        broker="memory://",
        backend="cache+memory://",
        queue="uninstalled",
        eager=True,
        install=False,
    )
    yield app, tasks
    app.close()


def test_task_sees_the_callers_context_which_is_unchanged(eager: Any, user: Any) -> None:
    with koherent.assignation(user=user, app="caller") as ctx:
        before = peek()
        result = eager.write.delay("eager")
        assert peek() is before  # the very same value
    seen = result.get()
    assert (seen["assignation_id"], seen["user_id"], seen["app"]) == (
        ctx.assignation_id,
        user.pk,
        "caller",
    )
    assert seen["context_task_id"] == result.id  # its own id, for the rows it writes
    assert seen["origin"] == "manual"  # the caller's: no worker opened anything
    assert Order.history.get(reference="eager").task_id == result.id
    assert peek() is None


def test_children_see_it(eager: Any, user: Any) -> None:
    with koherent.assignation(user=user, app="caller") as ctx:
        spawned = eager.spawn.delay("parent").get()
        nested = eager.spawn_eager.apply(("nested",)).get()
        after = peek()
    assert after is not None
    assert after.task_id is None
    child = Order.history.get(reference="parent-child")
    assert (child.assignation_id, child.task_id) == (ctx.assignation_id, spawned["child_id"])
    assert nested["child"]["assignation_id"] == ctx.assignation_id
    assert nested["child"]["context_task_id"] != nested["task_id"]
    assert nested["after_child"]["task_id"] == nested["task_id"]  # the parent's, again


def test_no_context_stays_none(eager: Any) -> None:
    seen = eager.spawn.delay("bare").get()
    assert (seen["assignation_id"], seen["user_id"], seen["app"]) == (None, None, None)
    assert seen["context_task_id"] == seen["task_id"]
    assert peek() is None


def test_header_given_eagerly_is_ignored_and_does_not_reach_the_caller(
    eager: Any, user: Any
) -> None:
    task_id = str(uuid.uuid4())
    valid = koherent.AuditContext(assignation_id="claimed", user_ref=None)
    bind = message_binding(task_id, "kt.write", ["eager-header"], {})
    header = sign_context(valid, bind=bind, purpose=PURPOSE)
    seen = eager.write.apply_async(("eager-header",), task_id=task_id, headers={HEADER: header})
    assert seen.get()["assignation_id"] is None
    assert peek() is None


def test_retries_run_in_the_callers_context(eager: Any, user: Any) -> None:
    with koherent.assignation(user=user, app="caller") as ctx:
        before = peek()
        eager.retrying.delay("eager-retry", 2, 0).get()
        eager.autoretrying.delay("eager-auto", 1).get()
        assert peek() is before
    rows = Order.history.filter(reference__startswith="eager-")
    assert rows.count() == 5
    assert {row.assignation_id for row in rows} == {ctx.assignation_id}


def test_failure_restores_the_caller(eager: Any, user: Any) -> None:
    with koherent.assignation(user=user) as ctx:
        before = peek()
        result = eager.failing.delay("eager-fails")
        with pytest.raises(ValueError, match="on purpose"):
            result.get()
        assert peek() is before
    assert Order.history.get(reference="eager-fails").assignation_id == ctx.assignation_id


def test_fresh_assignation(eager: Any, user: Any) -> None:
    first, second = eager.fresh.delay("f1").get(), eager.fresh.delay("f2").get()
    assert first["assignation_id"] != second["assignation_id"]
    assert (first["app"], first["origin"]) == ("nightly", "beat")
    with koherent.assignation(user=user, app="caller") as ctx:
        assert eager.fresh.delay("f3").get()["assignation_id"] == ctx.assignation_id
    assert peek() is None


@pytest.mark.parametrize("name", ["required", "required_class"])
def test_require_context(eager: Any, user: Any, name: str) -> None:
    task = getattr(eager, name)
    with pytest.raises(AuditContextRequired, match="called eagerly without a context"):
        task.delay("refused").get()
    assert not Order.objects.filter(reference="refused").exists()
    with koherent.assignation(user=user):
        assert task.delay("accepted").get()["user_id"] == user.pk


def test_uninstalled_app_is_left_alone(uninstalled: Any, user: Any) -> None:
    """Control: without ``install()`` a task gets no context of Koherent's making (eagerly it
    still shares the caller's contextvars, but never gets its own task id)."""
    _, tasks = uninstalled
    with koherent.assignation(user=user) as ctx:
        seen = tasks.write.delay("left-alone").get()
        opted = tasks.optin_decorated.delay("opted-in").get()
    assert (seen["assignation_id"], seen["context_task_id"]) == (ctx.assignation_id, None)
    assert (opted["assignation_id"], opted["context_task_id"]) == (
        ctx.assignation_id,
        opted["task_id"],
    )
