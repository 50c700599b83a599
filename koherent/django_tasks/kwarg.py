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

from koherent._logging import get_logger
from koherent.access import leaving_context
from koherent.context import AuditContext
from koherent.exceptions import InvalidSignedContext
from koherent.signing import sign_work, verify_work, work_binding
from koherent.validation import validate_task_id

logger = get_logger("koherent.tasks")  # the logger keeps its name

#: The reserved keyword argument.
KWARG: Final = "_koherent_context"
#: The signing purpose (a value signed for another use, a Celery header say, does not verify).
PURPOSE: Final = "tasks"
#: The origin of assignations a task writes first.
ORIGIN: Final = "tasks"


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
    if ctx is None:
        return sent
    try:
        sent[KWARG] = sign_work(ctx, purpose=PURPOSE, name=module_path, args=args, kwargs=sent)
    except (InvalidSignedContext, TypeError, ValueError) as exc:
        logger.warning(
            "koherent: task %s is enqueued without its audit context, which cannot be signed: %s",
            module_path,
            exc,
        )
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
    own_id = _valid_task_id(task_id)
    if raw is None:
        if task_id is None:
            return KEEP
        return AuditContext(task_id=own_id, origin=ORIGIN)
    try:
        return verify_work(
            raw,
            purpose=PURPOSE,
            name=module_path,
            args=args,
            kwargs=kwargs,
            task_id=own_id,
            origin=ORIGIN,
        )
    except InvalidSignedContext as exc:
        reason, detail = exc.reason, exc.detail
    logger.warning(
        "koherent: task %s[%s]: audit context refused (%s): %s; the task runs without it",
        module_path,
        task_id,
        reason,
        detail,
    )
    return AuditContext(task_id=own_id, origin=ORIGIN)


def _valid_task_id(task_id: object) -> str | None:
    if task_id is None:
        return None
    try:
        return validate_task_id(str(task_id))
    except ValueError:
        return None
