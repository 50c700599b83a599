"""Koherent's exceptions."""

from __future__ import annotations


class KoherentError(Exception):
    """Base class of Koherent's own errors."""


class InvalidRequestContext(KoherentError, ValueError):
    """A request names an audit context Koherent refuses (a malformed header, say).

    The middleware answers it with HTTP 400 and the GraphQL extension with a GraphQL error,
    before the view or resolver runs, so nothing is written.
    """

    status_code = 400
    #: The ``error`` of the middleware's JSON answer.
    code = "invalid_audit_context"


class AssignationAccessDenied(InvalidRequestContext):
    """A request names an assignation that ``KOHERENT["ASSIGNATION_ACCESS"]`` does not let its
    user join (by default: one opened by another user).

    The middleware answers it with HTTP 403 and the GraphQL extension with a GraphQL error
    (code ``KOHERENT_ASSIGNATION_ACCESS_DENIED``), before the view or resolver runs, so nothing
    is written. ``assignation_id``, ``user_pk`` (``None`` for an anonymous request) and
    ``policy`` say who was refused what, and under which policy.
    """

    status_code = 403
    code = "assignation_access_denied"

    def __init__(self, assignation_id: str, user_pk: object, policy: str) -> None:
        who = "an anonymous request" if user_pk is None else f"user {user_pk}"
        super().__init__(
            f"{who} may not join assignation {assignation_id!r} "
            f"(KOHERENT['ASSIGNATION_ACCESS'] = {policy!r})"
        )
        self.assignation_id = assignation_id
        self.user_pk = user_pk
        self.policy = policy

    def __reduce__(self) -> tuple[type[AssignationAccessDenied], tuple[str, object, str]]:
        return (type(self), (self.assignation_id, self.user_pk, self.policy))


class InvalidSignedContext(KoherentError, ValueError):
    """A signed audit context (a task header, say) was refused.

    ``reason`` says why, as one of the constants below; the message gives the detail. Nothing
    from a refused value is used.
    """

    #: No value at all.
    MISSING = "missing"
    #: The value is not text.
    NOT_A_STRING = "not-a-string"
    #: The value is longer than any signed context can be.
    OVERSIZED = "oversized"
    #: The value has no signature.
    UNSIGNED = "unsigned"
    #: The signature does not match: tampered with, signed with another key, for another
    #: purpose, or bound to another task.
    BAD_SIGNATURE = "bad-signature"
    #: Correctly signed, but not a context this version of Koherent can read.
    MALFORMED = "malformed"
    #: Correctly signed, but a field is not an allowed value (see ``koherent._validation``).
    INVALID = "invalid"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"signed audit context refused ({reason}): {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidSignedContext], tuple[str, str]]:
        return (type(self), (self.reason, self.detail))


class AuditContextRequired(KoherentError, RuntimeError):
    """Work that must run under an audit context arrived without a valid one.

    Raised by a Celery task declared with ``require_context=True`` before its body runs, so
    nothing is written unattributed.
    """


class AssignationSpansDatabases(KoherentError, LookupError):
    """An assignation has history rows on more than one database, and the call named none.

    Reading or reverting it needs ``using=`` naming one database: Koherent reads one database
    per call, and a revert is one transaction, which cannot span two databases. ``databases``
    names the ones holding its rows.
    """

    def __init__(self, assignation_id: str, databases: tuple[str, ...]) -> None:
        super().__init__(
            f"assignation {assignation_id!r} has history on several databases "
            f"({', '.join(databases)}); pass using= to name one"
        )
        self.assignation_id = assignation_id
        self.databases = databases

    def __reduce__(self) -> tuple[type[AssignationSpansDatabases], tuple[str, tuple[str, ...]]]:
        return (type(self), (self.assignation_id, self.databases))
