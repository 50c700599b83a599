"""koherent 0.2's ``koherent.utils``, kept so that 0.2 code still runs (deprecated).

Importing it warns; so does each of its 0.2 names when used. See :mod:`koherent.legacy` and
docs/upgrading.md for the replacements.
"""

from __future__ import annotations

from typing import Any

from django.utils.datastructures import CaseInsensitiveMapping

from koherent import legacy
from koherent.resolvers import assignation_id_from_headers

legacy.warn_module(__name__)


def __getattr__(name: str) -> Any:
    return legacy.resolve(__name__, name)


def _get_assignation_id_or_none(headers: Any) -> str | None:
    """0.2.0's header reader: the assignation id in ``headers``, or ``None``.

    Reads ``KOHERENT["ASSIGNATION_HEADER"]`` (``X-Assignation-ID``, 0.2.0's header) in any
    case, and validates it (``ValueError`` for a malformed id).
    """
    # InvalidRequestContext, raised for a malformed id, is a ValueError.
    return assignation_id_from_headers(CaseInsensitiveMapping(dict(headers)))
