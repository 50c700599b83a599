"""A structlog processor adding the audit context to every event (needs ``structlog``).

::

    structlog.configure(
        processors=[
            koherent.structlog.add_audit_context,
            structlog.processors.JSONRenderer(),
        ]
    )

Each event gets ``assignation_id``, ``user_id``, ``app`` and ``task_id``: the values in effect
where the event was logged, an empty string when unset (``AddAuditContext(empty=None)`` gives
``None`` instead). Keys the event already has are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from koherent.log import audit_log_fields

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["AddAuditContext", "add_audit_context"]


class AddAuditContext:
    """The processor; ``empty`` is the value of an unset field."""

    def __init__(self, *, empty: Any = "") -> None:
        self.empty = empty

    def __call__(
        self, logger: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> EventDict:
        for key, value in audit_log_fields(self.empty).items():
            event_dict.setdefault(key, value)
        return event_dict


#: The processor with the default ``empty=""``.
add_audit_context = AddAuditContext()
