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
