"""System checks of the GraphQL settings (koherent.E030, W030)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from koherent._config import GRAPHQL_FRESH_ASSIGNATION_MODES, fresh_assignation_mode, user_settings


def _is_fresh_assignation_mode(mode: str) -> bool:
    try:
        fresh_assignation_mode(mode)
    except ImproperlyConfigured:
        return False
    return True


@register(Tags.compatibility)
def check_graphql_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E030 and W030: the ``GRAPHQL_*`` settings."""
    raw = user_settings()  # empty unless a dict (koherent.E001)
    messages: list[CheckMessage] = []
    mode = raw.get("GRAPHQL_FRESH_ASSIGNATION")
    if isinstance(mode, str) and not _is_fresh_assignation_mode(mode):
        messages.append(
            Error(
                f"settings.KOHERENT['GRAPHQL_FRESH_ASSIGNATION'] = {mode!r} is not a mode "
                f"Koherent knows.",
                hint=f"Use one of {', '.join(map(repr, GRAPHQL_FRESH_ASSIGNATION_MODES))}.",
                id="koherent.E030",
            )
        )
    graphql_keys = sorted(key for key in raw if str(key).startswith("GRAPHQL_"))
    if graphql_keys and importlib.util.find_spec("strawberry_django") is None:
        messages.append(
            Warning(
                f"settings.KOHERENT sets {', '.join(graphql_keys)}, but "
                f"strawberry-graphql-django is not installed, so nothing reads them.",
                hint='Install the GraphQL integration: pip install "koherent[strawberry]".',
                id="koherent.W030",
            )
        )
    return messages
