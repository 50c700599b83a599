"""The three signal receivers that carry the audit context through Celery.

``before_task_publish``
    Every message any process publishes (``delay``, ``apply_async``, ``send_task``, canvas
    steps, retries, ``replace``, link and link_error callbacks, chord callbacks, beat) gets the
    signed current context in its header, or loses any header the caller put there when no
    context is in effect. Never raises.
``task_prerun``
    Before the task body, the context is set from the verified header, with the running
    task's id as ``task_id`` and ``celery`` as origin. A missing or refused header gives a
    context holding only the task id (and a WARNING naming the task and the reason when it
    was refused). In eager mode (``task_always_eager``, ``apply()``) the caller's context is
    used, and the header ignored. Every child the task publishes, and every callback Celery
    publishes for it, happens before ``task_postrun`` and is sent under this context.
``task_postrun``
    The context is reset with the token taken in ``task_prerun``: after a success, an
    exception, a retry or a rejection alike, so nothing reaches the next task of the worker
    thread or process, and an eager caller gets its own context back unchanged.

They are connected once per process (``weak=False``, with a ``dispatch_uid``), by
:func:`koherent.celery.install` or by the first task that opts in.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from koherent._carrier import valid_task_id
from koherent._config import get_setting
from koherent._logging import get_logger
from koherent.celery._options import PROBLEM_ATTRIBUTE, TaskOptions, options_for
from koherent.celery.header import CARRIER, read_header, request_work, write_header
from koherent.context import AuditContext, new_assignation_id, peek, reset_context, set_context

if TYPE_CHECKING:
    from celery import Celery

logger = get_logger("koherent.celery")

#: Attribute of a task request holding the token that undoes ``task_prerun``'s change.
TOKEN_ATTRIBUTE = "_koherent_token"

_installed_apps: weakref.WeakSet[Celery] = weakref.WeakSet()
#: Bumped by every ``install()``, so options cached on tasks before it are worked out again.
_generation = 0
#: Attribute of a task instance caching ``(generation, options)``.
OPTIONS_CACHE_ATTRIBUTE = "_koherent_options_cache"


def _is_installed(task: Any) -> bool:
    return bool(_installed_apps) and getattr(task, "app", None) in _installed_apps


def _options(task: Any) -> TaskOptions | None:
    """``options_for(task)``, cached on the task (tasks live as long as their process)."""
    cached = getattr(task, OPTIONS_CACHE_ATTRIBUTE, None)
    if cached is not None and cached[0] == _generation:
        return cached[1]  # type: ignore[no-any-return]
    options = options_for(task, _is_installed)
    setattr(task, OPTIONS_CACHE_ATTRIBUTE, (_generation, options))
    return options


def on_before_task_publish(
    sender: Any = None, body: Any = None, headers: Any = None, **kwargs: Any
) -> None:
    """Write (or strip) the context header of a message about to be published."""
    if not isinstance(headers, dict):
        return
    try:
        write_header(headers, sender, body)
    except Exception:  # never stop a publish
        logger.exception("koherent: could not prepare the audit context header of %s", sender)


def on_task_prerun(task_id: Any = None, task: Any = None, **kwargs: Any) -> None:
    """Set the context of a task about to run."""
    if task is None:
        return
    try:
        options = _options(task)
    except Exception:
        logger.exception("koherent: could not read the audit options of task %s", task)
        return
    if options is None:
        return
    ambient = peek()
    # Fail closed: from here on nothing set before this task is in effect, whatever happens.
    token = set_context(None)
    try:
        request = task.request
        setattr(request, TOKEN_ATTRIBUTE, token)
    except Exception:
        reset_context(token)
        logger.exception("koherent: task %s[%s]: cannot keep its context token", task, task_id)
        return
    try:
        ctx, problem = _arriving_context(task, request, options, ambient)
        setattr(request, PROBLEM_ATTRIBUTE, problem)
        set_context(ctx)
    except Exception:
        logger.exception(
            "koherent: task %s[%s]: could not restore its audit context; it runs without one",
            getattr(task, "name", task),
            task_id,
        )


def on_task_postrun(task: Any = None, **kwargs: Any) -> None:
    """Restore the context that was in effect before the task."""
    request = getattr(task, "request", None)
    if request is None:
        return
    token = request.__dict__.pop(TOKEN_ATTRIBUTE, None)
    if token is not None:
        reset_context(token)


def _arriving_context(
    task: Any, request: Any, options: TaskOptions, ambient: AuditContext | None
) -> tuple[AuditContext, str | None]:
    """The context a task runs in, and why it has none when it has none."""
    task_id = valid_task_id(request.id)
    if request.is_eager:
        # No message was sent: the task runs in its caller's context.
        if ambient is not None and not ambient.is_empty:
            return replace(ambient, task_id=task_id), None
        problem = "called eagerly without a context"
    else:
        raw = read_header(request)
        if raw is None:
            problem = "no context header"
        else:
            what = f"task {getattr(task, 'name', None)}[{request.id}]"
            ctx = CARRIER.verify(raw, what, request_work(task, request), task_id)
            if isinstance(ctx, AuditContext):
                return ctx, None
            problem = f"context header refused: {ctx.reason}"
    if options.fresh_assignation:
        return AuditContext(
            assignation_id=new_assignation_id(),
            app=options.app if options.app is not None else get_setting("APP"),
            origin=options.origin,
            task_id=task_id,
        ), None
    return CARRIER.without(task_id), problem


def connect() -> None:
    """Connect the receivers (once per process; calling again does nothing)."""
    before_task_publish.connect(
        on_before_task_publish, weak=False, dispatch_uid="koherent.celery.publish"
    )
    task_prerun.connect(on_task_prerun, weak=False, dispatch_uid="koherent.celery.prerun")
    task_postrun.connect(on_task_postrun, weak=False, dispatch_uid="koherent.celery.postrun")


def install(app: Celery) -> None:
    """Carry the audit context through every task of ``app``; idempotent.

    Call it where the Celery app is made (the module ``celery -A`` names, imported by web
    processes, workers and beat alike)::

        app = Celery("proj")
        koherent.celery.install(app)
    """
    global _generation
    connect()
    _installed_apps.add(app)
    _generation += 1


def installed_apps() -> list[Celery]:
    """The apps passed to :func:`install` (and still alive)."""
    return list(_installed_apps)
