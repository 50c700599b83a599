"""Per-task opt-in: the :func:`audited` decorator, the :class:`KoherentTask` base class.

Either one makes a task restore the audit context it was sent with, even when its app was not
passed to :func:`koherent.celery.install`, and takes the options of
:class:`~koherent.celery.options.TaskOptions` (``fresh_assignation``, ``require_context``).

``@audited`` goes above the task decorator, as for Django's tasks framework
(:func:`koherent.django_tasks.audited`); under it (on the function), its place before 0.3.0,
works as well.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from celery import Task, current_task
from celery import _state as celery_state
from celery.local import Proxy

from koherent.celery._options import (
    CLASS_OPTIONS_ATTRIBUTE,
    DEFAULT_OPTIONS,
    OPTIONS_ATTRIBUTE,
    PROBLEM_ATTRIBUTE,
    TaskOptions,
    check_context_arrived,
    options_for,
)
from koherent.celery.receivers import connect

__all__ = [
    "DEFAULT_OPTIONS",
    "OPTIONS_ATTRIBUTE",
    "PROBLEM_ATTRIBUTE",
    "KoherentTask",
    "TaskOptions",
    "audited",
    "check_context_arrived",
    "options_for",
]

T = TypeVar("T")

#: Class attribute of a task class whose ``before_start`` checks that a context arrived.
_CHECKS_MARK = "_koherent_checks_context"


@overload
def audited(fn: T, /) -> T: ...


@overload
def audited(
    *,
    fresh_assignation: bool = False,
    require_context: bool = False,
    app: str | None = None,
    origin: str = "celery",
) -> Callable[[T], T]: ...


def audited(
    fn: Any = None,
    /,
    *,
    fresh_assignation: bool = False,
    require_context: bool = False,
    app: str | None = None,
    origin: str = "celery",
) -> Any:
    """Make a task restore its audit context; place it *above* ``@app.task``::

        @koherent.celery.audited(fresh_assignation=True, app="nightly", origin="beat")
        @app.task
        def nightly_cleanup(): ...

    Above ``@app.task`` or ``@shared_task`` it is given the task (or Celery's lazy proxy of
    it, which it does not evaluate) and marks the function every app makes its task from;
    under the task decorator it is given that function. Anything else (a task of Django's
    tasks framework, say) raises ``TypeError``. See :mod:`koherent.celery._options` for the
    options.
    """
    options = TaskOptions(
        fresh_assignation=fresh_assignation,
        require_context=require_context,
        app=app,
        origin=origin,
    )
    connect()

    def decorate(target: T) -> T:
        function = _task_function(target)
        if function is None:  # under the task decorator: the function itself
            result: T = _audit_function(target, options)
            return result
        setattr(function, OPTIONS_ATTRIBUTE, options)
        if options.require_context:
            _for_every_task_of(function, _check_before_start)
        return target

    return decorate if fn is None else decorate(fn)


def _audit_function(function: Any, options: TaskOptions) -> Any:
    """``function``, a task's function, marked with ``options`` (wrapped by a check that a
    context arrived when ``require_context``)."""
    if not inspect.isroutine(function):
        raise TypeError(
            f"koherent.celery.audited() takes a Celery task or its function, not {function!r}"
            + (
                ": for Django's tasks framework use koherent.django_tasks.audited"
                if type(function).__module__.startswith(("django.tasks", "django_tasks"))
                else ""
            )
        )
    target: Any = function
    if options.require_context:

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check_context_arrived(current_task)
            return function(*args, **kwargs)

        target = checked
    setattr(target, OPTIONS_ATTRIBUTE, options)
    return target


def _run_function(task: Any) -> Any:
    """The function a task runs (its ``run``, unbound)."""
    run = task.run
    return getattr(run, "__func__", run)


def _task_function(target: object) -> Any:
    """The function the Celery task ``target`` runs, or ``None`` when it is no task.

    Celery's proxies (``@app.task`` before the app is finalized, ``@shared_task``) are read
    without being evaluated: evaluating one makes the task, in the current app, now.
    """
    kind = type(target)  # not target.__class__, which evaluates a proxy
    if issubclass(kind, Task):
        return _run_function(target)
    if not issubclass(kind, Proxy):
        return None
    read = object.__getattribute__
    try:
        return _run_function(read(target, "__thing"))  # an evaluated PromiseProxy
    except AttributeError:
        pass
    args = read(target, "_Proxy__args")  # @app.task: PromiseProxy(app._task_from_fun, (fun,))
    if args and inspect.isroutine(args[0]):
        return args[0]
    made_by = read(target, "_Proxy__local")  # @shared_task: a getter closing over the function
    function = inspect.getclosurevars(made_by).nonlocals.get("fun")
    if not inspect.isroutine(function):
        raise TypeError(
            f"koherent.celery.audited() cannot find the function of {target!r}: place "
            "@audited under the task decorator"
        )
    return function


def _for_every_task_of(function: Any, change: Callable[[Any], None]) -> None:
    """Apply ``change`` to every task made from ``function``: in the apps finalized now, and
    in each app finalized later, once it has made all its tasks."""

    def in_app(sender: Any, **kwargs: Any) -> None:  # the app (the signal's sender)
        for task in list(sender._tasks.values()):  # app.tasks would finalize the app
            if _run_function(task) is function:
                change(task)

    for app in celery_state._get_active_apps():  # type: ignore[attr-defined]
        if app.finalized:
            in_app(app)
    celery_state.connect_on_app_finalize(
        lambda app: app.on_after_finalize.connect(in_app, weak=False)
    )


def _check_before_start(task: Any) -> None:
    """Make ``task`` fail before its body when it arrived without a valid context."""
    cls = type(task)
    if cls.__dict__.get(_CHECKS_MARK):
        return
    before = cls.before_start

    def before_start(self: Any, task_id: str, args: Any, kwargs: Any) -> None:
        check_context_arrived(self)
        before(self, task_id, args, kwargs)

    cls.before_start = before_start
    setattr(cls, _CHECKS_MARK, True)


class KoherentTask(Task[Any, Any]):
    """Base class of tasks that restore their audit context.

    Options are class attributes, also given as keyword arguments of the task decorator::

        @app.task(base=KoherentTask, koherent_require_context=True)
        def charge(order_id): ...
    """

    koherent_fresh_assignation: bool = False
    koherent_require_context: bool = False
    koherent_app: str | None = None
    koherent_origin: str = "celery"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        connect()
        # Checked when the task is defined, so bad options fail at import, not at run time.
        setattr(cls, CLASS_OPTIONS_ATTRIBUTE, cls.koherent_options())

    _koherent_task_options: TaskOptions = DEFAULT_OPTIONS

    @classmethod
    def koherent_options(cls) -> TaskOptions:
        """The options given by the class attributes."""
        return TaskOptions(
            fresh_assignation=cls.koherent_fresh_assignation,
            require_context=cls.koherent_require_context,
            app=cls.koherent_app,
            origin=cls.koherent_origin,
        )

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        if self.koherent_require_context:
            check_context_arrived(self)
        super().before_start(task_id, args, kwargs)
