"""The audit context across executors, threads and asyncio tasks.

asyncio tasks (``create_task``, ``gather``, ``TaskGroup``, ``wait_for``) and asgiref's
``sync_to_async`` / ``async_to_sync`` carry contextvars by themselves. ``loop.run_in_executor``,
``concurrent.futures`` executors and ``threading.Thread`` do not (Python 3.11 to 3.13, and 3.14
unless threads inherit contexts): the callee starts in the worker thread's own context, which
for a reused worker thread is whatever the previous job left there.

The helpers here run the callee in a copy of the submitter's context, taken when the work is
submitted. The callee sees every contextvar the submitter had (Koherent's and any other
library's); what it changes stays in its copy; and the worker thread's own context is never
touched, so nothing passes from one job to the next on a reused thread::

    await koherent.run_in_executor(None, render_report, order_id)

    with koherent.ContextThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(import_row, rows))          # each row in the submitter's context

    koherent.start_thread(rebuild_index)          # a thread that starts in this context

    koherent.create_task(notify(), fresh=True)    # an asyncio task under its own assignation
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from koherent.context import UNSET, assignation, context, may_leave, peek, set_context, use

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "ContextThread",
    "ContextThreadPoolExecutor",
    "copy_context",
    "create_task",
    "run_in_executor",
    "start_thread",
]


def _held_back(exit: str, what: object) -> bool:
    """Whether the context in effect may not go with work started here (it is logged)."""
    ctx = peek()
    return ctx is not None and not may_leave(ctx, exit, what)


def copy_context(exit: str = "thread", what: object = None) -> contextvars.Context:
    """``contextvars.copy_context()`` for work started here, without the audit context when
    it may not leave the request it belongs to (:func:`koherent.context.may_leave`)."""
    copied = contextvars.copy_context()
    if _held_back(exit, what):
        copied.run(set_context, None)
    return copied


def run_in_executor(
    executor: Executor | None,
    fn: Callable[..., R],
    /,
    *args: Any,
    loop: asyncio.AbstractEventLoop | None = None,
) -> asyncio.Future[R]:
    """``loop.run_in_executor(executor, fn, *args)``, with ``fn`` in the caller's context.

    ``executor`` ``None`` means the loop's default executor. The context is copied now, so
    ``fn`` sees the values in effect at this call, and its own changes do not come back.
    """
    running = loop if loop is not None else asyncio.get_running_loop()
    copied = copy_context("executor job", getattr(fn, "__qualname__", fn))
    return running.run_in_executor(executor, functools.partial(copied.run, fn, *args))


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose jobs run in the context of whoever submitted them.

    A drop-in replacement: ``submit`` (and ``map``, which submits every item) copies the
    submitter's context for each job. A job's own changes stay in its copy, so a worker thread
    reused for the next job starts that job clean.
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        copied = copy_context("executor job", getattr(fn, "__qualname__", fn))
        return super().submit(functools.partial(copied.run, fn, *args, **kwargs))


class ContextThread(threading.Thread):
    """A ``threading.Thread`` that runs in a copy of the context in which ``start()`` is called."""

    _koherent_context: contextvars.Context | None = None

    def start(self) -> None:
        self._koherent_context = copy_context("thread", self.name)
        super().start()

    def run(self) -> None:
        copied = self._koherent_context
        if copied is None:  # run() called directly, without start(): the caller's own context
            super().run()
        else:
            copied.run(super().run)


def start_thread(
    target: Callable[..., object],
    /,
    *args: Any,
    name: str | None = None,
    daemon: bool | None = None,
    **kwargs: Any,
) -> ContextThread:
    """Start a thread running ``target(*args, **kwargs)`` in a copy of the caller's context."""
    thread = ContextThread(target=target, args=args, kwargs=kwargs, name=name, daemon=daemon)
    thread.start()
    return thread


def create_task(
    coro: Coroutine[Any, Any, R],
    *,
    name: str | None = None,
    fresh: bool = False,
    assignation_id: str | None = None,
    **fields: Any,
) -> asyncio.Task[R]:
    """Start an asyncio task, optionally under its own assignation.

    Without options this is ``asyncio.create_task``: the task runs in a copy of the caller's
    context. ``fresh=True`` runs it under a new assignation (a UUID), ``assignation_id=`` under
    the given one; the caller's assignation is recorded as its parent. Other keywords
    (``user``, ``app``, ``origin``) change those fields for the task only; ``origin`` defaults
    to ``"task"`` for a new assignation. The caller's own context never changes. Values are
    validated before the task is created, so a bad one raises ``ValueError`` and nothing runs
    (the coroutine is closed).
    """
    unknown = set(fields) - {"user", "app", "origin"}
    if unknown:
        coro.close()
        raise TypeError(f"create_task() got unexpected keyword arguments: {sorted(unknown)}")
    try:
        if fresh and assignation_id is not None:
            raise ValueError("give either fresh=True or assignation_id, not both")
        if _held_back("asyncio task", name or getattr(coro, "__qualname__", coro)):
            # Nothing of a context that may not leave its request goes with the task.
            with use(None):
                return _create_task(coro, name, fresh, assignation_id, fields)
        return _create_task(coro, name, fresh, assignation_id, fields)
    except BaseException:
        coro.close()
        raise


def _create_task(
    coro: Coroutine[Any, Any, R],
    name: str | None,
    fresh: bool,
    assignation_id: str | None,
    fields: dict[str, Any],
) -> asyncio.Task[R]:
    if fresh or assignation_id is not None:
        scope = assignation(
            assignation_id,
            user=fields.get("user", UNSET),
            app=fields.get("app", UNSET),
            origin=fields.get("origin", "task"),
        )
    elif fields:
        scope = context(**fields)
    else:
        return asyncio.get_running_loop().create_task(coro, name=name)
    with scope:
        # asyncio copies the context here, with the task's value in effect.
        return asyncio.get_running_loop().create_task(coro, name=name)
