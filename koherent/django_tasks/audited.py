"""Audited tasks: ``enqueue()`` records the audit context, the run restores it.

:func:`audited` turns a ``Task`` into one of a subclass of its own class whose

``enqueue()`` / ``aenqueue()``
    add the signed current context to the task's arguments under
    :data:`~koherent.django_tasks.kwarg.KWARG` (or take out any value the caller put there, when no
    context is in effect);
``call()`` / ``acall()``
    (what every backend, and its worker, calls to run the task) take that argument out, verify
    it, and run the task function in the verified context with the task result's id as
    ``task_id`` and ``tasks`` as origin; the previous context is restored when the function
    returns or raises, so nothing reaches the next task of the worker or the caller of an
    immediate backend. An argument that fails verification is refused with a WARNING naming the
    task and the reason, and the function runs under a context holding only the task's id.

The ``Task`` stays what it was otherwise: ``using()`` keeps it audited, the backend, the queue
and the worker see an ordinary task of their framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar, overload

from koherent.context import use
from koherent.django_tasks import running
from koherent.django_tasks.compat import framework_of, require
from koherent.django_tasks.kwarg import KEEP, arriving_context, outgoing_kwargs

TaskT = TypeVar("TaskT")


class AuditedTask:
    """The mixin of audited ``Task`` classes (placed before the framework's ``Task``)."""

    __slots__ = ()

    koherent_audited = True

    # Provided by the framework's Task.
    module_path: str
    takes_context: bool

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        return super().enqueue(  # type: ignore[misc]
            *args, **outgoing_kwargs(self.module_path, args, kwargs)
        )

    async def aenqueue(self, *args: Any, **kwargs: Any) -> Any:
        return await super().aenqueue(  # type: ignore[misc]
            *args, **outgoing_kwargs(self.module_path, args, kwargs)
        )

    def _arriving(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.takes_context and args:
            # The first argument is the TaskContext, which holds the result being run.
            running.take(self.module_path)
            task_id = getattr(getattr(args[0], "task_result", None), "id", None)
            return arriving_context(self.module_path, args[1:], kwargs, task_id)
        return arriving_context(self.module_path, args, kwargs, running.take(self.module_path))

    def call(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self._arriving(args, kwargs)
        if ctx is KEEP:
            return super().call(*args, **kwargs)  # type: ignore[misc]
        with use(ctx):
            return super().call(*args, **kwargs)  # type: ignore[misc]

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self._arriving(args, kwargs)
        if ctx is KEEP:
            return await super().acall(*args, **kwargs)  # type: ignore[misc]
        async with use(ctx):
            return await super().acall(*args, **kwargs)  # type: ignore[misc]


_classes: dict[type[Any], type[Any]] = {}


def _audited_class(base: type[Any]) -> type[Any]:
    cls = _classes.get(base)
    if cls is None:
        cls = type(f"Audited{base.__name__}", (AuditedTask, base), {"__slots__": ()})
        cls.__module__ = __name__
        _classes[base] = cls
    return cls


def audited(task: TaskT) -> TaskT:
    """``task`` (made by ``@task``), audited; place it *above* ``@task`` (as Celery's
    :func:`koherent.celery.audited` above ``@app.task``)::

        from django.tasks import task
        from koherent.django_tasks import audited


        @audited
        @task(queue_name="emails")
        def send_receipt(order_id): ...

    Auditing an audited task returns it unchanged.
    """
    if isinstance(task, AuditedTask):
        return task
    require()
    if framework_of(task) is None:
        celery = any(kind.__module__.startswith("celery.") for kind in type(task).__mro__)
        raise TypeError(
            f"koherent.django_tasks.audited() takes a Task made by @task, not {task!r}: "
            + (
                "for Celery use koherent.celery.audited"
                if celery
                else "place @audited above @task"
            )
        )
    running.connect()
    values = {
        field.name: getattr(task, field.name)
        for field in fields(task)  # type: ignore[arg-type]
        if field.init
    }
    result: TaskT = _audited_class(type(task))(**values)
    return result


@overload
def task(function: Callable[..., Any], /) -> Any: ...


@overload
def task(
    *,
    priority: int = ...,
    queue_name: str = ...,
    backend: str = ...,
    takes_context: bool = ...,
) -> Callable[[Callable[..., Any]], Any]: ...


def task(function: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Django's ``@task`` (same arguments), making an audited task::

        from koherent.django_tasks import task


        @task(priority=10)
        def charge(order_id): ...

    Uses ``django.tasks`` when Django has it (6.0 and newer), else the ``django-tasks`` backport.
    """
    make = require()[0].task

    def decorate(fn: Callable[..., Any]) -> Any:
        return audited(make(fn, **options) if options else make(fn))

    return decorate if function is None else decorate(function)
