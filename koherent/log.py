"""The audit context on log records: a ``logging.Filter`` (and, in ``koherent.structlog``, a
structlog processor).

:class:`AuditContextFilter` adds ``assignation_id``, ``user_id``, ``app`` and ``task_id`` to every
record it sees: the values in effect where the record was made, or an empty string when unset,
so a format string naming them never breaks. Put it on the *handlers* (a filter on a logger is
not applied to records propagated from its child loggers)::

    LOGGING = {
        "version": 1,
        "filters": {"audit": {"()": "koherent.log.AuditContextFilter"}},
        "formatters": {
            "audit": {
                "format": "%(levelname)s %(name)s [%(assignation_id)s %(user_id)s %(app)s "
                "%(task_id)s] %(message)s"
            }
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "filters": ["audit"],
                "formatter": "audit",
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
    }

A field the record already has (``logger.info(..., extra={"app": ...})``, or a value added by
this filter on a ``QueueHandler`` before the record crossed to the listener thread) is kept.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from koherent._logging import escape, get_logger
from koherent.context import current

__all__ = ["FIELDS", "AuditContextFilter", "audit_log_fields", "escape", "get_logger"]

#: The record attributes (and structlog keys) Koherent adds.
FIELDS: tuple[str, ...] = ("assignation_id", "user_id", "app", "task_id")

# Set while the fields are being read: reading a request's user may run a query, whose own log
# record must not read the user again.
_reading: ContextVar[bool] = ContextVar("koherent_log_reading", default=False)


def audit_log_fields(empty: Any = "") -> dict[str, Any]:
    """The audit context in effect as the four log fields, ``empty`` for those unset.

    Never raises: a user that cannot be read (no database in reach, a nested log call while it
    is being read) is given as ``empty``.
    """
    ctx = current()
    fields = {
        "assignation_id": ctx.assignation_id,
        "user_id": None,
        "app": ctx.app,
        "task_id": ctx.task_id,
    }
    if ctx.user_ref is not None and not _reading.get():
        token = _reading.set(True)
        try:
            fields["user_id"] = ctx.user_id
        except Exception:  # a log call must never fail because of the user lookup
            fields["user_id"] = None
        finally:
            _reading.reset(token)
    return {key: empty if value is None else value for key, value in fields.items()}


class AuditContextFilter(logging.Filter):
    """Add ``assignation_id``, ``user_id``, ``app`` and ``task_id`` to every log record.

    Never filters anything out. ``empty`` is the value of an unset field (``""`` by default).
    """

    def __init__(self, name: str = "", *, empty: Any = "") -> None:
        super().__init__(name)
        self.empty = empty

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in audit_log_fields(self.empty).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
