"""System checks of the requests in and out: the middleware's place, and where outgoing HTTP
calls send the assignation (koherent.W001, E050, E051)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from koherent._config import (
    DEFAULTS,
    user_settings,
)

MIDDLEWARE_PATH = "koherent.middleware.KoherentMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register(Tags.compatibility)
def check_middleware_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: the middleware must come after authentication."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    ours = [i for i, path in enumerate(middleware) if _is_koherent_middleware(path)]
    auth = [i for i, path in enumerate(middleware) if path == AUTH_MIDDLEWARE_PATH]
    if ours and auth and ours[0] < auth[0]:
        return [
            Warning(
                "KoherentMiddleware comes before AuthenticationMiddleware in MIDDLEWARE.",
                hint=(
                    "Move it after AuthenticationMiddleware: in async views the request's "
                    "user can only be read when authentication has run first."
                ),
                id="koherent.W001",
            )
        ]
    return []


def _is_koherent_middleware(path: str) -> bool:
    if path == MIDDLEWARE_PATH:
        return True
    try:
        from koherent.middleware import KoherentMiddleware

        target = import_string(path)
    except ImportError:
        return False
    return isinstance(target, type) and issubclass(target, KoherentMiddleware)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@register(Tags.security)
def check_outgoing_http(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E050 and E051: where outgoing HTTP calls send the assignation, and under which names."""
    from koherent.http.hosts import parse_host_pattern

    raw = user_settings()  # empty unless a dict (koherent.E001)
    messages: list[CheckMessage] = []
    hosts = raw.get("OUTGOING_HOSTS")
    if isinstance(hosts, (list, tuple)):
        for entry in hosts:
            try:
                parse_host_pattern(entry)
            except ValueError as exc:
                messages.append(
                    Error(
                        f"settings.KOHERENT['OUTGOING_HOSTS']: {exc}.",
                        hint="Use 'host', 'host:port' or '*.domain' (see docs/services.md); "
                        "the entry is ignored until then.",
                        id="koherent.E050",
                    )
                )
    names = {}
    for key in ("OUTGOING_ASSIGNATION_HEADER", "OUTGOING_APP_HEADER"):
        value = raw.get(key)
        if not isinstance(value, str):
            continue
        if _HEADER_NAME.fullmatch(value) is None:
            messages.append(
                Error(
                    f"settings.KOHERENT[{key!r}] = {value!r} is not a valid header name.",
                    hint="Use letters, digits and '-', as in 'X-Assignation-ID'.",
                    id="koherent.E051",
                )
            )
        else:
            names[key] = value.lower()
    assignation_header = (
        names.get("OUTGOING_ASSIGNATION_HEADER")
        or str(raw.get("ASSIGNATION_HEADER", DEFAULTS["ASSIGNATION_HEADER"])).lower()
    )
    if names.get("OUTGOING_APP_HEADER") == assignation_header:
        messages.append(
            Error(
                "settings.KOHERENT['OUTGOING_APP_HEADER'] names the header that carries the "
                "assignation id.",
                hint="Give the app a header of its own, e.g. 'X-Koherent-App'.",
                id="koherent.E051",
            )
        )
    return messages
