"""The one message header carrying the audit context, written on publish and read on arrival.

The header is named :data:`HEADER`. Its value is the signed text of
:mod:`koherent.signing`, bound to the id of the task the message starts (so it cannot be
copied onto another task) and signed for the purpose :data:`PURPOSE`. About 100 characters.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from koherent.context import peek
from koherent.signing import sign_context

logger = logging.getLogger("koherent.celery")

#: The message header holding the signed audit context.
HEADER: Final = "koherent_context"
#: The signing purpose of Celery headers (a value signed for another use does not verify).
PURPOSE: Final = "celery"


def write_header(headers: dict[str, Any], task_name: object = None) -> None:
    """Put the signed current context in a message's ``headers``, or take any out.

    Whatever the caller put under :data:`HEADER` is overwritten, or removed when no context
    is in effect, so a message only ever carries a context its publisher was running under.
    A context that cannot be signed is logged and the message goes without it.
    """
    nested = headers.get("headers")
    ctx = peek()
    if ctx is None or ctx.is_empty:
        _remove(headers, nested)
        return
    task_id = headers.get("id")
    try:
        value = sign_context(
            ctx, bind=task_id if isinstance(task_id, str) else "", purpose=PURPOSE
        )
    except Exception as exc:
        _remove(headers, nested)
        logger.warning(
            "koherent: task %s[%s] is sent without its audit context, which cannot be signed: %s",
            task_name,
            task_id,
            exc,
        )
        return
    headers[HEADER] = value
    if isinstance(nested, dict) and HEADER in nested:
        nested[HEADER] = value


def _remove(headers: dict[str, Any], nested: object) -> None:
    headers.pop(HEADER, None)
    if isinstance(nested, dict):
        nested.pop(HEADER, None)


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
