"""The one message header carrying the audit context, written on publish and read on arrival.

The header is named :data:`HEADER`. Its value is the signed text of :mod:`koherent.signing`,
signed for the purpose :data:`PURPOSE` and bound (:func:`koherent.signing.work_binding`) to
the message it travels in, as the worker reads it:

* the task id and the task name (the ``id`` and ``task`` headers);
* a digest of the arguments and keyword arguments, and of the canvas options that decide what
  else runs: ``callbacks``, ``errbacks``, ``chain`` and ``chord`` (the third element of a
  protocol 2 body), the ``group`` and ``group_index`` headers, and the ``retries`` header (a
  task may act on its attempt number).

The publisher signs what ``before_task_publish`` is given (``body`` and ``headers``); the
worker checks against ``task.request`` (``args``, ``kwargs``, ``callbacks``, ...), so a header
copied into another message (another task, other arguments, an added callback) is refused.
A message replayed byte for byte is the message it copies, and runs as a redelivery would.
About 100 characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NotRequired, TypedDict, Unpack

from koherent._carrier import Carrier
from koherent._logging import get_logger
from koherent.access import leaving_context
from koherent.exceptions import InvalidSignedContext
from koherent.signing import Work, sign_work, verify_work, work_binding

if TYPE_CHECKING:
    from koherent.context import AuditContext

logger = get_logger("koherent.celery")

#: The message header holding the signed audit context.
HEADER: Final = "koherent_context"
#: The signing purpose of Celery headers (a value signed for another use does not verify).
PURPOSE: Final = "celery"
#: The origin of assignations a worker writes first.
ORIGIN: Final = "celery"
#: The options bound with the arguments: the body's embedded canvas options, the group, and
#: the attempt (a task may act on ``self.request.retries``).
BOUND_OPTIONS: Final = (
    "callbacks",
    "errbacks",
    "chain",
    "chord",
    "group",
    "group_index",
    "retries",
)
_EMBEDDED: Final = ("callbacks", "errbacks", "chain", "chord")

CARRIER: Final = Carrier(PURPOSE, ORIGIN, logger, leaves="sent", value="audit context header")


class Message(TypedDict):
    """A message as its header is bound to it (the keyword arguments of :func:`sign_message`
    and :func:`verify_message`)."""

    task_id: str
    task_name: str
    args: Sequence[Any] | None
    kwargs: Mapping[str, Any] | None
    #: The :data:`BOUND_OPTIONS` the message carries (missing ones are ``None``).
    options: NotRequired[Mapping[str, Any] | None]


def _work(message: Message) -> Work:
    """The work ``message`` starts, as its header is bound to it."""
    options = message.get("options") or {}
    bound = {name: options.get(name) for name in BOUND_OPTIONS}
    bound["retries"] = bound["retries"] or 0  # a request without the header has 0
    return Work(
        name=message["task_name"],
        args=message["args"],
        kwargs=message["kwargs"],
        options=bound,
        work_id=message["task_id"],
    )


def sign_message(ctx: AuditContext, **message: Unpack[Message]) -> str:
    """The header value for ``ctx`` on the message starting ``task_name`` with these values.

    Raises :class:`~koherent.exceptions.InvalidSignedContext` when ``ctx`` or the
    arguments cannot be signed.
    """
    return sign_work(ctx, purpose=PURPOSE, **_work(message))


def message_binding(
    task_id: str,
    task_name: str,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any] | None = None,
) -> str:
    """What the header of this message is bound to (:func:`koherent.signing.work_binding`)."""
    message = Message(
        task_id=task_id, task_name=task_name, args=args, kwargs=kwargs, options=options
    )
    return work_binding(**_work(message))


def verify_message(
    value: object, *, origin: str | None = None, **message: Unpack[Message]
) -> AuditContext:
    """The context in a header value :func:`sign_message` signed for exactly this message.

    Raises :class:`~koherent.exceptions.InvalidSignedContext` (``bad-signature`` for a value
    signed for another task id, task name, arguments or :data:`BOUND_OPTIONS`).
    """
    return verify_work(value, purpose=PURPOSE, origin=origin, **_work(message))


def _protocol_2(body: object) -> tuple[Any, Any, Any] | None:
    """``(args, kwargs, embed)`` of a protocol 2 body, or ``None``."""
    if isinstance(body, tuple | list) and len(body) == 3:
        args, kwargs, embed = body
        if (
            isinstance(args, tuple | list)
            and isinstance(kwargs, Mapping)
            and (embed is None or isinstance(embed, Mapping))
        ):
            return args, kwargs, embed
    return None


def _published(headers: Mapping[str, Any], task_id: object, name: object, body: object) -> Work:
    """The work a message about to be published starts; raises
    :class:`~koherent.exceptions.InvalidSignedContext` for one a worker could not check."""
    message = _protocol_2(body)
    if message is None:
        raise InvalidSignedContext(
            InvalidSignedContext.MALFORMED,
            "not a Celery protocol 2 message (task_protocol=2, Celery's default, is needed)",
        )
    if not isinstance(task_id, str) or not isinstance(name, str):
        raise InvalidSignedContext(
            InvalidSignedContext.MALFORMED, "the message has no task id or task name"
        )
    args, kwargs, embed = message
    options = {key: (embed or {}).get(key) for key in _EMBEDDED}
    for key in ("group", "group_index", "retries"):
        options[key] = headers.get(key)
    return _work(
        Message(task_id=task_id, task_name=name, args=args, kwargs=kwargs, options=options)
    )


def write_header(headers: dict[str, Any], task_name: object = None, body: object = None) -> None:
    """Put the signed current context in a message's ``headers``, or take any out.

    Whatever the caller put under :data:`HEADER` is overwritten, or removed when no context
    is in effect or it may not leave the process (:func:`koherent.access.leaving_context`),
    so a message only ever carries a context its publisher was running under. A context that
    cannot be signed for this message is logged and the message goes without it.
    """
    nested = headers.get("headers")
    task_id = headers.get("id")
    name = headers.get("task", task_name)
    ctx = leaving_context("celery task", f"{name}[{task_id}]")
    value = None
    if ctx is not None:
        what = f"task {name}[{task_id}]"
        try:
            value = CARRIER.sign(ctx, what, _published(headers, task_id, name, body))
        except Exception as exc:  # whatever fails, the caller's header does not go
            CARRIER.cannot_sign(what, exc)
    if value is None:
        headers.pop(HEADER, None)
        if isinstance(nested, dict):
            nested.pop(HEADER, None)
        return
    headers[HEADER] = value
    if isinstance(nested, dict) and HEADER in nested:
        nested[HEADER] = value


def read_header(request: Any) -> Any:
    """The raw header value of a task request (``None`` when there is none).

    The message's top-level header becomes an attribute of the request; ``request.headers``
    is the fallback, as it differs between Celery versions and is replaced by a nested
    ``headers`` dict some integrations send.
    """
    value = request.get(HEADER)
    if value is None:
        nested = request.headers
        if isinstance(nested, dict):
            value = nested.get(HEADER)
    return value


def request_work(task: Any, request: Any) -> Work:
    """The work the message ``request`` was read from starts, as the worker read it: the
    running task's name, the request's id, arguments and :data:`BOUND_OPTIONS`."""
    name = getattr(task, "name", None)
    return _work(
        Message(
            task_id=request.id or "",
            task_name=name if isinstance(name, str) else "",
            args=request.args,
            kwargs=request.kwargs,
            options={key: getattr(request, key, None) for key in BOUND_OPTIONS},
        )
    )
