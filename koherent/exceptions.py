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
    #: Correctly signed, but a field is not an allowed value (see ``koherent.validation``).
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
