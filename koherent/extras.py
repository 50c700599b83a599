"""Clear errors for the optional integrations imported without their extra.

Each integration (``koherent.celery``, ``koherent.strawberry``, ``koherent.http.httpx``,
``koherent.http.requests``) calls :func:`require` before importing its dependency, so that
``import koherent.celery`` in a project installed without ``koherent[celery]`` says which extra
to install instead of a bare ``No module named 'celery'`` (or, for strawberry, a misleading
``No module named 'graphql'``).
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["MissingExtra", "require"]


class MissingExtra(ModuleNotFoundError):
    """An optional integration was imported without the extra that installs its dependency.

    A :class:`ModuleNotFoundError` (so an :class:`ImportError`) whose ``name`` is the missing
    module and whose ``extra`` is the extra to install.
    """

    def __init__(self, integration: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{integration} needs the {missing!r} package, which is not installed: "
            f'pip install "koherent[{extra}]"',
            name=missing,
        )
        self.integration = integration
        self.extra = extra


def require(integration: str, extra: str, *modules: str) -> None:
    """Raise :class:`MissingExtra` unless every top-level module in ``modules`` is installed.

    Only looks the modules up (``importlib.util.find_spec``); it imports nothing.
    """
    for module in modules:
        if module in sys.modules:  # imported already (its __spec__ may be None: kombu's)
            continue
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(integration, extra, module)
