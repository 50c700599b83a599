"""What both task runners do with the signed context their work carries.

Celery carries it in a message header (:mod:`koherent.celery.header`), Django's tasks framework
in a keyword argument (:mod:`koherent.django_tasks.kwarg`). Each is a :class:`Carrier`: its
signing purpose, the origin of what its tasks write first, and its logger. On the way out
:meth:`Carrier.sign` signs the context for the work, or says why it cannot; on arrival
:meth:`Carrier.verify` gives the verified context, or says why it refuses the value, and the
task falls back to :meth:`Carrier.without` (a context holding only its id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from koherent._validation import validate_task_id
from koherent.context import AuditContext
from koherent.exceptions import InvalidSignedContext
from koherent.signing import Work, sign_work, verify_work

if TYPE_CHECKING:
    from koherent._logging import EscapingLogger

__all__ = ["Carrier", "valid_task_id"]

_CANNOT_SIGN: Final = "koherent: %s is %s without its audit context, which cannot be signed: %s"
_REFUSED: Final = "koherent: %s: %s refused (%s): %s; the task runs without it"


@dataclass(frozen=True, slots=True)
class Carrier:
    """One way the signed context travels with work."""

    #: The signing purpose (a value signed for another carrier does not verify).
    purpose: str
    #: The origin of assignations its tasks write first.
    origin: str
    #: The logger its warnings go to.
    logger: EscapingLogger
    #: How work leaves (``sent``, ``enqueued``) and what arrives with it, for the warnings.
    leaves: str
    value: str

    def sign(self, ctx: AuditContext, what: str, work: Work) -> str | None:
        """``ctx`` signed for ``work``, or ``None`` (with a WARNING naming ``what``) when it
        cannot be: the work then goes without it."""
        try:
            return sign_work(ctx, purpose=self.purpose, **work)
        except (InvalidSignedContext, TypeError, ValueError) as exc:
            self.cannot_sign(what, exc)
            return None

    def cannot_sign(self, what: str, reason: object) -> None:
        """Say that ``what`` leaves without its context, and why."""
        self.logger.warning(_CANNOT_SIGN, what, self.leaves, reason)

    def verify(
        self, raw: object, what: str, work: Work, task_id: str | None
    ) -> AuditContext | InvalidSignedContext:
        """The context ``raw`` carries for ``work``, with ``task_id`` and this carrier's origin;
        or, when it is refused, the refusal (logged at WARNING, naming ``what``)."""
        try:
            return verify_work(
                raw, purpose=self.purpose, task_id=task_id, origin=self.origin, **work
            )
        except InvalidSignedContext as exc:
            self.logger.warning(_REFUSED, what, self.value, exc.reason, exc.detail)
            return exc

    def without(self, task_id: str | None) -> AuditContext:
        """The context of a task that arrived without a valid one: its id only."""
        return AuditContext(task_id=task_id, origin=self.origin)


def valid_task_id(task_id: object) -> str | None:
    """``task_id`` as the context's ``task_id``, or ``None`` when it has none or no valid one."""
    if task_id is None:
        return None
    try:
        return validate_task_id(str(task_id))
    except ValueError:
        return None
