"""koherent 0.2's ``koherent.signals``, kept so that 0.2 code still runs (deprecated).

Importing it warns; so does each of its 0.2 names when used. See :mod:`koherent.legacy` and
docs/upgrading.md for the replacements.
"""

from __future__ import annotations

from typing import Any

from koherent import legacy

legacy.warn_module(__name__)


def __getattr__(name: str) -> Any:
    return legacy.resolve(__name__, name)
