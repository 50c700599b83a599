"""The audit context across asyncio, executors, threads and asgiref: no loss, no leak.

Each guarantee has a negative control showing the raw primitive really loses, leaks or writes
back, so the test would fail if the helper did nothing.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils.functional import SimpleLazyObject

import koherent
from koherent._users import RequestUserRef
from koherent.context import EMPTY, peek, set_context, use

# A plain variable, set and never reset by callees: shows which boundaries write back or leak.
probe: ContextVar[str] = ContextVar("probe", default="")

THREADS_INHERIT = bool(getattr(sys.flags, "thread_inherit_context", 0))
needs_no_inheritance = pytest.mark.skipif(
    THREADS_INHERIT, reason="threads inherit the context here (-X thread_inherit_context=1)"
)


# --- asyncio ---------------------------------------------------------------------------------


async def _child(
    seen: list[koherent.AuditContext], inside: asyncio.Event, go: asyncio.Event
) -> str:
    seen.append(koherent.current())
    async with koherent.assignation(app="child") as mine:
        inside.set()
        await go.wait()  # the parent looks at its own context now
        assert koherent.current() is mine
    return str(mine.assignation_id)


async def _spawn_create_task(coro: Coroutine[Any, Any, str]) -> Awaitable[str]:
    return asyncio.create_task(coro)


async def _spawn_koherent_create_task(coro: Coroutine[Any, Any, str]) -> Awaitable[str]:
    return koherent.create_task(coro)


async def _spawn_gather(coro: Coroutine[Any, Any, str]) -> Awaitable[str]:
    async def first() -> str:
        return (await asyncio.gather(coro))[0]

    return asyncio.ensure_future(first())


async def _spawn_task_group(coro: Coroutine[Any, Any, str]) -> Awaitable[str]:
    async def run() -> str:
        async with asyncio.TaskGroup() as group:
            task = group.create_task(coro)
        return task.result()

    return asyncio.ensure_future(run())


SPAWNERS: dict[str, Callable[[Coroutine[Any, Any, str]], Awaitable[Awaitable[str]]]] = {
    "create_task": _spawn_create_task,
    "koherent.create_task": _spawn_koherent_create_task,
    "gather": _spawn_gather,
    "TaskGroup": _spawn_task_group,
}


@pytest.mark.parametrize("how", list(SPAWNERS))
async def test_child_task_sees_the_context_and_its_own_assignation_stays_its_own(
    how: str,
) -> None:
    seen: list[koherent.AuditContext] = []
    inside, go = asyncio.Event(), asyncio.Event()
    async with koherent.assignation(user=7, app="parent") as parent:
        running = await SPAWNERS[how](_child(seen, inside, go))
        await inside.wait()
        # The child is inside its own assignation right now; the parent is not.
        assert koherent.current() is parent
        go.set()
        child_id = await running
        assert koherent.current() is parent
    assert seen == [parent]
    assert seen[0].user_id == 7
    assert child_id != parent.assignation_id
    assert koherent.current() is EMPTY


async def test_wait_for_child_sees_the_context_and_does_not_change_the_parents() -> None:
    seen: list[koherent.AuditContext] = []

    async def child() -> koherent.AuditContext:
        seen.append(koherent.current())
        async with koherent.assignation(app="child") as mine:
            await asyncio.sleep(0)
        return mine

    async with koherent.assignation(app="parent") as parent:
        mine = await asyncio.wait_for(child(), timeout=30)
        assert koherent.current() is parent
    assert seen == [parent]
    assert mine.parent_assignation_id == parent.assignation_id


async def test_many_children_each_in_their_own_assignation() -> None:
    async def child(n: int) -> tuple[int, str | None, str | None]:
        async with koherent.assignation(app=f"c{n}") as mine:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert koherent.current() is mine
            return n, mine.parent_assignation_id, koherent.get_current_app()

    async with koherent.assignation() as parent:
        results = await asyncio.gather(*(child(n) for n in range(50)))
        assert koherent.current() is parent
    assert results == [(n, parent.assignation_id, f"c{n}") for n in range(50)]


async def test_create_task_under_a_fresh_or_given_assignation() -> None:
    async def read() -> koherent.AuditContext:
        await asyncio.sleep(0)
        return koherent.current()

    async with koherent.assignation(user=3, app="web") as caller:
        fresh = await koherent.create_task(read(), fresh=True, name="fresh")
        given = await koherent.create_task(read(), assignation_id="job-1", app="jobs")
        same = await koherent.create_task(read())
        changed = await koherent.create_task(read(), app="other")
        assert koherent.current() is caller
    assert fresh.assignation_id not in (None, caller.assignation_id)
    assert (fresh.parent_assignation_id, fresh.user_id, fresh.app) == (
        caller.assignation_id,
        3,
        "web",
    )
    assert fresh.origin == "task"
    assert (given.assignation_id, given.app, given.parent_assignation_id) == (
        "job-1",
        "jobs",
        caller.assignation_id,
    )
    assert same is caller
    assert (changed.assignation_id, changed.app) == (caller.assignation_id, "other")


async def test_create_task_refuses_bad_values_before_running_anything() -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    # The coroutines are closed, not left unawaited (a RuntimeWarning is an error here).
    with pytest.raises(ValueError, match="assignation"):
        koherent.create_task(work(), assignation_id="bad id")
    with pytest.raises(ValueError, match="not both"):
        koherent.create_task(work(), fresh=True, assignation_id="x")
    with pytest.raises(TypeError, match="tenant"):
        koherent.create_task(work(), tenant="x")
    await asyncio.sleep(0)
    assert ran == []
    assert koherent.current() is EMPTY


async def test_decorated_async_generators_interleaved_keep_their_own_context() -> None:
    @koherent.assignation(app="stream")
    async def stream(n: int) -> Any:
        for _ in range(3):
            yield koherent.current()
            await asyncio.sleep(0)

    async with koherent.assignation(app="consumer") as consumer:
        first, second = stream(1), stream(2)
        seen_first, seen_second = [], []
        for _ in range(3):
            seen_first.append(await anext(first))
            assert koherent.current() is consumer
            seen_second.append(await anext(second))
            assert koherent.current() is consumer
        await first.aclose()
        await second.aclose()
    assert len({c.assignation_id for c in seen_first}) == 1
    assert len({c.assignation_id for c in seen_second}) == 1
    assert seen_first[0].assignation_id != seen_second[0].assignation_id
    assert {c.parent_assignation_id for c in seen_first + seen_second} == {consumer.assignation_id}


async def test_one_scope_object_entered_by_interleaved_tasks() -> None:
    """A shared ``with`` target exits each task into that task's own previous value."""
    shared = koherent.context(app="shared")
    a_inside, b_inside, a_left = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def a() -> koherent.AuditContext:
        async with koherent.assignation(app="a") as mine:
            async with shared:
                a_inside.set()
                await b_inside.wait()
            a_left.set()
            assert koherent.current() is mine
            return koherent.current()

    async def b() -> koherent.AuditContext:
        async with koherent.assignation(app="b") as mine:
            await a_inside.wait()
            async with shared:
                b_inside.set()
                await a_left.wait()
                assert koherent.get_current_app() == "shared"
            assert koherent.current() is mine
            return koherent.current()

    after_a, after_b = await asyncio.gather(a(), b())
    assert (after_a.app, after_b.app) == ("a", "b")


# --- executors and threads -------------------------------------------------------------------


def _observe() -> tuple[koherent.AuditContext, int, str]:
    return koherent.current(), threading.get_ident(), probe.get()


def _misbehave(value: str) -> tuple[koherent.AuditContext, int, str]:
    """A job that sets Koherent's context and the probe and never resets either."""
    seen = _observe()
    set_context(koherent.AuditContext(assignation_id=value))
    probe.set(value)
    return seen


async def test_run_in_executor_carries_the_context_and_raw_does_not() -> None:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:
        async with koherent.assignation(user=5) as ctx:
            helped = await koherent.run_in_executor(pool, _observe)
            default = await koherent.run_in_executor(None, _observe)
            raw = await loop.run_in_executor(pool, _observe)
            leaked = await koherent.run_in_executor(pool, _misbehave, "job-1")
            after = await loop.run_in_executor(pool, _observe)
            assert koherent.current() is ctx
    assert helped[0] is ctx
    assert default[0] is ctx
    if not THREADS_INHERIT:
        assert raw[0] is EMPTY  # negative control: the raw call loses the context
    assert leaked[0] is ctx
    # The misbehaving job ran in a copy: the reused worker thread kept nothing of it.
    assert after[1] == leaked[1]
    assert (after[0], after[2]) == (EMPTY, "")


def test_context_thread_pool_executor_submit_and_map() -> None:
    with koherent.ContextThreadPoolExecutor(max_workers=1) as pool:
        with koherent.assignation(app="one") as one:
            first = pool.submit(_misbehave, "job-1").result()
        clean = pool.submit(_observe).result()
        with koherent.assignation(app="two") as two:
            mapped = list(pool.map(lambda _: _observe(), range(3)))
            mapped_misbehaving = list(pool.map(_misbehave, ["m1", "m2"]))
        last = pool.submit(_observe).result()
    threads = {first[1], clean[1], last[1], *(m[1] for m in mapped)}
    assert len(threads) == 1  # one reused worker thread
    assert first[0] is one
    assert (clean[0], clean[2]) == (EMPTY, "")
    assert [m[0] for m in mapped] == [two, two, two]
    assert [(m[0], m[2]) for m in mapped_misbehaving] == [(two, ""), (two, "")]
    assert (last[0], last[2]) == (EMPTY, "")
    assert koherent.current() is EMPTY


@needs_no_inheritance
def test_plain_thread_pool_loses_and_leaks() -> None:
    """Negative control: what ContextThreadPoolExecutor fixes."""
    with ThreadPoolExecutor(max_workers=1) as pool, koherent.assignation() as ctx:
        lost = pool.submit(_observe).result()
        pool.submit(_misbehave, "job-1").result()
        leaked = pool.submit(_observe).result()
    assert ctx is not EMPTY
    assert lost[0] is EMPTY
    assert (leaked[0].assignation_id, leaked[2]) == ("job-1", "job-1")


def test_start_thread_and_context_thread() -> None:
    results: dict[str, Any] = {}

    def record(key: str) -> None:
        results[key] = _observe()
        _misbehave(f"{key}-own")

    with koherent.assignation(app="threads") as ctx:
        started = koherent.start_thread(record, "helper", name="koherent-test")
        subclass = koherent.ContextThread(target=record, args=("subclass",))
        subclass.start()
        raw = threading.Thread(target=record, args=("raw",))
        raw.start()
        for thread in (started, subclass, raw):
            thread.join()
        assert koherent.current() is ctx
        assert probe.get() == ""
    assert started.name == "koherent-test"
    assert results["helper"][0] is ctx
    assert results["subclass"][0] is ctx
    if not THREADS_INHERIT:
        assert results["raw"][0] is EMPTY  # negative control


def test_context_thread_run_called_directly_runs_in_the_callers_context() -> None:
    seen: list[koherent.AuditContext] = []
    with koherent.context(app="direct") as ctx:
        koherent.ContextThread(target=lambda: seen.append(koherent.current())).run()
    assert seen == [ctx]


# --- asgiref ---------------------------------------------------------------------------------


def _callee_opens_and_closes() -> koherent.AuditContext:
    seen = koherent.current()
    with koherent.assignation(app="callee") as inner:
        assert koherent.current() is inner
    probe.set("written back")  # the control: asgiref copies this back to the caller
    return seen


@pytest.mark.parametrize("thread_sensitive", [True, False])
@pytest.mark.parametrize("outer", ["none", "assignation"])
async def test_sync_to_async_sees_and_never_writes_back(
    thread_sensitive: bool, outer: str
) -> None:
    probe.set("")
    call = sync_to_async(_callee_opens_and_closes, thread_sensitive=thread_sensitive)
    if outer == "none":
        seen = await call()
        assert peek() is None
        assert seen is EMPTY
    else:
        async with koherent.assignation(user=2) as ctx:
            seen = await call()
            assert koherent.current() is ctx
        assert seen is ctx
    assert probe.get() == "written back"  # negative control: asgiref does write back


@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_decorated_sync_function_through_sync_to_async(thread_sensitive: bool) -> None:
    @koherent.assignation(app="decorated")
    def work() -> koherent.AuditContext:
        return koherent.current()

    async with koherent.context(app="caller") as ctx:
        inner = await sync_to_async(work, thread_sensitive=thread_sensitive)()
        assert koherent.current() is ctx
    assert inner.app == "decorated"
    assert inner.parent_assignation_id is None


async def _async_callee() -> koherent.AuditContext:
    seen = koherent.current()
    async with koherent.assignation(app="callee"):
        await asyncio.sleep(0)
    probe.set("written back")
    return seen


@pytest.mark.parametrize("outer", ["none", "assignation"])
def test_async_to_sync_from_a_plain_thread(outer: str) -> None:
    probe.set("")
    if outer == "none":
        seen = async_to_sync(_async_callee)()
        assert peek() is None
        assert seen is EMPTY
    else:
        with koherent.assignation(user=4) as ctx:
            seen = async_to_sync(_async_callee)()
            assert koherent.current() is ctx
        assert seen is ctx
    assert probe.get() == "written back"
    probe.set("")


@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_async_to_sync_inside_sync_to_async(thread_sensitive: bool) -> None:
    """Django's own pattern (sync middleware and signals calling async code)."""
    probe.set("")

    def sync_layer() -> koherent.AuditContext:
        with koherent.context(app="sync-layer") as layer:
            seen = async_to_sync(_async_callee)()
            assert koherent.current() is layer
        return seen

    async with koherent.assignation() as ctx:
        seen = await sync_to_async(sync_layer, thread_sensitive=thread_sensitive)()
        assert koherent.current() is ctx
    assert seen.app == "sync-layer"
    assert seen.assignation_id == ctx.assignation_id
    assert probe.get() == "written back"


class _Request:
    def __init__(self) -> None:
        self.evaluations = 0

        def load() -> Any:
            self.evaluations += 1
            raise AssertionError("request.user was evaluated")

        self.user = SimpleLazyObject(load)


def test_crossing_asgiref_does_not_evaluate_a_lazy_request_user() -> None:
    """asgiref compares every contextvar after each hop (``is not`` now, ``!=`` in older releases);
    neither comparison may read the request's user."""
    request = _Request()
    ctx = koherent.AuditContext(assignation_id="lazy", user_ref=RequestUserRef(request))  # type: ignore[arg-type]

    async def hop() -> str | None:
        return await sync_to_async(koherent.get_current_assignation_id)()

    assert ctx == ctx
    assert not ctx.__ne__(ctx)  # what older asgiref asked at each hop
    with use(ctx):
        assert async_to_sync(hop)() == "lazy"
    assert request.evaluations == 0
