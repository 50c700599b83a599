"""Log lines that untrusted values cannot forge: :func:`escape`, :func:`get_logger`.

Koherent logs values that come from outside: request paths and header values, task ids and
names, signed-context details, assignation ids. A CR or LF in one of them would start what
looks like a new log line (a forged "reverted assignation ..." line, say). Every Koherent
logger is made by :func:`get_logger`, whose records carry their arguments escaped the way
Django escapes the request path since CVE-2025-48432 (``django.utils.log.log_response``):
``str.encode("unicode_escape")``, so control characters, backslashes and non-ASCII
characters appear as ``\\n``, ``\\\\``, ``\\xe9``. The message templates are Koherent's own
constants. This module imports nothing of Koherent's, so any module can use it.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["EscapingLogger", "error_reason", "escape", "get_logger"]


def escape(value: object) -> str:
    """``value`` as text that fits on one log line: control characters (CR, LF, ESC, ...),
    backslashes and non-ASCII characters written as Python escapes."""
    text = value if isinstance(value, str) else str(value)
    return text.encode("unicode_escape").decode("ascii")


def error_reason(exc: BaseException) -> str:
    """The first line of an error: a database driver adds the query, with its values, below
    (psycopg does)."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


def _escaped(arg: object) -> object:
    """A log argument that cannot break the line: text escaped, numbers as they are, and any
    other object kept (for ``%r`` and ``%d``) unless its text needs escaping."""
    if isinstance(arg, str):
        return escape(arg)
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    try:
        text = str(arg)
    except Exception:  # a broken __str__: logging reports it as it always does
        return arg
    safe = escape(text)
    return arg if safe == text else safe


class EscapingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose records' arguments are escaped with :func:`escape`."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, None)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            # Report the caller's line, not this method's.
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.log(level, msg, *map(_escaped, args), **kwargs)


def get_logger(name: str) -> EscapingLogger:
    """The logger ``name``, escaping every argument of what is logged through it."""
    return EscapingLogger(logging.getLogger(name))
