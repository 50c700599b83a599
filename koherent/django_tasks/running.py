"""Which task result a backend is about to run, from the ``task_started`` signal.

A task function is called without its result, so the id stamped on the rows it writes (the
context's ``task_id``) is taken from ``task_started``, which every backend sends just before
calling the task, in the thread that calls it. The call takes the id (:func:`take`), so it is
seen once, by that call only; ``task_finished`` clears anything left over.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from koherent._logging import get_logger
from koherent.django_tasks.compat import FRAMEWORKS

logger = get_logger("koherent.tasks")  # the logger keeps its name

#: ``(module path, result id)`` of the audited task a backend is about to call here.
_starting: ContextVar[tuple[str, str] | None] = ContextVar("koherent_tasks_starting", default=None)

#: Class attribute marking the ``Task`` classes made by :func:`koherent.django_tasks.audited`.
AUDITED_MARK = "koherent_audited"


def on_task_started(sender: Any = None, task_result: Any = None, **kwargs: Any) -> None:
    """Note the result about to run, for the call that follows. Never raises."""
    try:
        task = task_result.task
        if getattr(task, AUDITED_MARK, False):
            _starting.set((task.module_path, str(task_result.id)))
    except Exception:  # a signal receiver must not stop the task
        logger.exception("koherent: could not read the task result being started")


def on_task_finished(sender: Any = None, **kwargs: Any) -> None:
    """Forget a start no call took (the task could not be called, say)."""
    if _starting.get() is not None:
        _starting.set(None)


def take(module_path: str) -> str | None:
    """The id of the result being run, if a backend is about to run ``module_path``."""
    starting = _starting.get()
    if starting is None:
        return None
    _starting.set(None)
    return starting[1] if starting[0] == module_path else None


def connect() -> None:
    """Connect the receivers to every framework's signals (once per process)."""
    for framework in FRAMEWORKS:
        framework.task_started.connect(
            on_task_started, weak=False, dispatch_uid=f"koherent.tasks.started.{framework.name}"
        )
        framework.task_finished.connect(
            on_task_finished,
            weak=False,
            dispatch_uid=f"koherent.tasks.finished.{framework.name}",
        )
