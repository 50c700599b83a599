"""Work started with koherent.aio's helpers asks the request's access verdict first.

The context is that of a request that named user A's assignation while anonymous (the
middleware's deferred check, :class:`koherent.access.CheckedLaterUserRef`). A thread, an
executor job or an asyncio task started from it must not carry A's assignation while the
verdict refuses; once the view has authenticated user A, the same helpers carry it (control).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

import koherent
from koherent.access import CheckedLaterUserRef
from koherent.context import EMPTY, AuditContext, use
from koherent.resolvers import context_from_request
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def owned_by(user: Any) -> str:
    with koherent.assignation(f"owned-{uuid.uuid4().hex[:12]}", user=user) as ctx:
        Order.objects.create(reference=f"opened-{ctx.assignation_id}")
    assert ctx.assignation_id is not None
    return ctx.assignation_id


def deferred(user: Any) -> tuple[Any, AuditContext]:
    """An anonymous request naming ``user``'s assignation, and the context the middleware
    gives it."""
    request = RequestFactory().get("/", headers={"X-Assignation-ID": owned_by(user)})
    request.user = AnonymousUser()
    ctx = context_from_request(request, defer_anonymous=True)
    assert type(ctx.user_ref) is CheckedLaterUserRef
    return request, ctx


def spawned(ctx: AuditContext) -> dict[str, AuditContext]:
    """What work started by each helper under ``ctx`` sees."""
    seen: dict[str, AuditContext] = {}

    def record(kind: str) -> None:
        seen[kind] = koherent.current()

    async def arecord(kind: str) -> None:
        record(kind)

    async def from_the_loop() -> None:
        with use(ctx):
            await koherent.run_in_executor(None, record, "run_in_executor")
            await koherent.create_task(arecord("create_task"))
            await koherent.create_task(arecord("create_task_fresh"), fresh=True)

    with use(ctx):
        koherent.start_thread(record, "start_thread").join()
        with koherent.ContextThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(record, "executor").result()
    asyncio.run(from_the_loop())
    return seen


def test_refused_context_does_not_go_with_spawned_work(
    user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _request, ctx = deferred(user)
    with caplog.at_level("WARNING", logger="koherent"):
        seen = spawned(ctx)
    for kind in ("start_thread", "executor", "run_in_executor", "create_task"):
        assert seen[kind] is EMPTY, kind
    fresh = seen["create_task_fresh"]  # its own assignation, nothing of the request's
    assert fresh.assignation_id not in (None, ctx.assignation_id)
    assert (fresh.parent_assignation_id, fresh.user_ref) == (None, None)
    refusals = [r.getMessage() for r in caplog.records if "goes without" in r.getMessage()]
    assert len(refusals) == 5
    assert all("an anonymous request may not join assignation" in line for line in refusals)


def test_the_owner_authenticated_later_takes_it_along(user: Any) -> None:
    """Control: once the view authenticated user A, the helpers carry A's context."""
    request, ctx = deferred(user)
    request.user = user
    seen = spawned(ctx)
    for kind in ("start_thread", "executor", "run_in_executor", "create_task"):
        assert seen[kind].assignation_id == ctx.assignation_id, kind
        assert seen[kind].user_id == user.pk, kind
    assert seen["create_task_fresh"].parent_assignation_id == ctx.assignation_id
