"""The keyword argument carrying the signed audit context from ``enqueue()`` to the run.

Django's tasks framework stores nothing with a task but its arguments, so the context travels
as one reserved keyword argument, :data:`KWARG`: the signed text of :mod:`koherent.signing`,
signed for the purpose :data:`PURPOSE` and bound to the task's module path and a digest of its
other arguments, so it cannot be moved to another task, or to the same task with other
arguments. It is taken out before the task function is called, which never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from koherent._carrier import Carrier, valid_task_id
from koherent._logging import get_logger
from koherent.access import leaving_context
from koherent.context import AuditContext
from koherent.signing import Work, work_binding

#: The reserved keyword argument.
KWARG: Final = "_koherent_context"
#: The signing purpose (a value signed for another use, a Celery header say, does not verify).
PURPOSE: Final = "tasks"
#: The origin of assignations a task writes first.
ORIGIN: Final = "tasks"

logger = get_logger("koherent.tasks")  # the logger keeps its name
_CARRIER: Final = Carrier(PURPOSE, ORIGIN, logger, leaves="enqueued", value="audit context")


def binding(module_path: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """What the signature is bound to: the task and its arguments (without :data:`KWARG`).

    :func:`koherent.signing.work_binding`, the same before the task is stored and after it is
    read back (the framework requires arguments to round-trip through JSON).
    """
    return work_binding(module_path, args, kwargs)


def outgoing_kwargs(
    module_path: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """``kwargs`` to enqueue: with the signed current context, or without any :data:`KWARG`.

    A value the caller put under :data:`KWARG` is never passed on. A context that may not
    leave the process (:func:`koherent.access.leaving_context`) or cannot be signed is
    logged, and the task goes without it.
    """
    sent = dict(kwargs)
    sent.pop(KWARG, None)
    ctx = leaving_context("task", module_path)
    if ctx is not None:
        work = Work(name=module_path, args=args, kwargs=sent)
        value = _CARRIER.sign(ctx, f"task {module_path}", work)
        if value is not None:
            sent[KWARG] = value
    return sent


#: Returned by :func:`arriving_context` when the call keeps its caller's context.
KEEP: Final = object()


def arriving_context(
    module_path: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    task_id: object,
) -> AuditContext | object:
    """The context a task runs in; takes :data:`KWARG` out of ``kwargs``.

    ``task_id`` is the id of the task result being run, or ``None`` when the task is called
    directly (not by a backend), which keeps the caller's context (:data:`KEEP`) unless a
    signed context arrived. A value that fails verification is refused, with a WARNING naming
    the task and the reason, and the task runs under a context holding only its id.
    """
    raw = kwargs.pop(KWARG, None)
    own_id = valid_task_id(task_id)
    if raw is None:
        return KEEP if task_id is None else _CARRIER.without(own_id)
    work = Work(name=module_path, args=args, kwargs=kwargs)
    ctx = _CARRIER.verify(raw, f"task {module_path}[{task_id}]", work, own_id)
    return ctx if isinstance(ctx, AuditContext) else _CARRIER.without(own_id)
