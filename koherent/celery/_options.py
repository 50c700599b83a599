"""How a task takes its audit context: :class:`TaskOptions`, and where a task's options are.

The receivers (:mod:`koherent.celery.receivers`) read them with :func:`options_for`; the
opt-in (:mod:`koherent.celery.options`) puts them on a task. Two options:

``fresh_assignation``
    A task arriving without a context opens a fresh assignation (app and origin
    configurable), so the changes of each run, say of a beat-scheduled job, are grouped and
    can be undone together.
``require_context``
    A task arriving without a valid context fails with
    :class:`~koherent.exceptions.AuditContextRequired` before its body runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from koherent._validation import validate_app, validate_origin
from koherent.exceptions import AuditContextRequired

#: Attribute of a task function carrying its options (set by ``audited``).
OPTIONS_ATTRIBUTE = "__koherent_options__"
#: Attribute of a task class carrying its options (set by ``KoherentTask``).
CLASS_OPTIONS_ATTRIBUTE = "_koherent_task_options"
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
    request = getattr(task, "request", None)
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


def options_for(task: Any, installed: Callable[[Any], bool]) -> TaskOptions | None:
    """How ``task`` takes its context, or ``None`` when Koherent leaves it alone."""
    options = getattr(getattr(task, "run", None), OPTIONS_ATTRIBUTE, None)
    if options is not None:
        return options  # type: ignore[no-any-return]
    options = getattr(type(task), CLASS_OPTIONS_ATTRIBUTE, None)
    if isinstance(options, TaskOptions):
        return options
    if installed(task):
        return DEFAULT_OPTIONS
    return None
