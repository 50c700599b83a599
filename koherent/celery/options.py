"""Per-task opt-in: the :func:`audited` decorator, the :class:`KoherentTask` base class.

Either one makes a task restore the audit context it was sent with, even when its app was not
passed to :func:`koherent.celery.install`, and takes two options:

``fresh_assignation``
    A task arriving without a context opens a fresh assignation (app and origin
    configurable), so the changes of each run, say of a beat-scheduled job, are grouped and
    can be undone together.
``require_context``
    A task arriving without a valid context fails with
    :class:`~koherent.exceptions.AuditContextRequired` before its body runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from celery import Task, current_task

from koherent.exceptions import AuditContextRequired
from koherent.validation import validate_app, validate_origin

if TYPE_CHECKING:
    from celery.app.task import Context

P = ParamSpec("P")
R = TypeVar("R")

#: Attribute of a task function carrying its options (set by :func:`audited`).
OPTIONS_ATTRIBUTE = "__koherent_options__"
#: Attribute of a task request saying why no context arrived (``None`` when one did).
PROBLEM_ATTRIBUTE = "_koherent_problem"


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a task takes its audit context."""

    #: Open a fresh assignation when the task arrives without a context.
    fresh_assignation: bool = False
    #: Fail the task, before its body runs, when it arrives without a valid context.
    require_context: bool = False
    #: App of a fresh assignation (default: ``KOHERENT["APP"]``).
    app: str | None = None
    #: Origin recorded for a fresh assignation.
    origin: str = "celery"

    def __post_init__(self) -> None:
        if self.fresh_assignation and self.require_context:
            raise ValueError(
                "fresh_assignation and require_context exclude each other: a task either "
                "opens its own assignation when none arrives, or refuses to run"
            )
        if self.app is not None:
            validate_app(self.app)
        validate_origin(self.origin)


#: The options of every task of an app passed to ``install()``.
DEFAULT_OPTIONS = TaskOptions()


def check_context_arrived(task: Any) -> None:
    """Raise :class:`AuditContextRequired` unless ``task``'s request arrived with a context."""
    request: Context | None = getattr(task, "request", None)
    problem = (
        getattr(request, PROBLEM_ATTRIBUTE, "Koherent's task hooks did not run")
        if request is not None
        else "the task is not running"
    )
    if problem is not None:
        name = getattr(task, "name", task)
        task_id = getattr(request, "id", None)
        raise AuditContextRequired(
            f"task {name}[{task_id}] requires an audit context and arrived without a valid "
            f"one ({problem}); it did not run"
        )


@overload
def audited(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def audited(
    *,
    fresh_assignation: bool = False,
    require_context: bool = False,
    app: str | None = None,
    origin: str = "celery",
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def audited(
    fn: Callable[P, R] | None = None,
    /,
    *,
    fresh_assignation: bool = False,
    require_context: bool = False,
    app: str | None = None,
    origin: str = "celery",
) -> Any:
    """Make a task restore its audit context; place it *under* ``@app.task``::

        @app.task
        @koherent.celery.audited(fresh_assignation=True, app="nightly", origin="beat")
        def nightly_cleanup(): ...

    See the module documentation for the options.
    """
    options = TaskOptions(
        fresh_assignation=fresh_assignation,
        require_context=require_context,
        app=app,
        origin=origin,
    )
    from koherent.celery.receivers import connect

    connect()

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        target = function
        if options.require_context:

            @functools.wraps(function)
            def checked(*args: P.args, **kwargs: P.kwargs) -> R:
                check_context_arrived(current_task)
                return function(*args, **kwargs)

            target = checked
        setattr(target, OPTIONS_ATTRIBUTE, options)
        return target

    return decorate if fn is None else decorate(fn)


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
        from koherent.celery.receivers import connect

        connect()
        # Checked when the task is defined, so bad options fail at import, not at run time.
        cls._koherent_task_options = cls.koherent_options()

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


def options_for(task: Any, installed: Callable[[Any], bool]) -> TaskOptions | None:
    """How ``task`` takes its context, or ``None`` when Koherent leaves it alone."""
    options = getattr(getattr(task, "run", None), OPTIONS_ATTRIBUTE, None)
    if options is not None:
        return options  # type: ignore[no-any-return]
    if isinstance(task, KoherentTask):
        return task._koherent_task_options
    if installed(task):
        return DEFAULT_OPTIONS
    return None
