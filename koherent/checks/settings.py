"""System checks of the ``KOHERENT`` dict: keys, types, dotted paths, signing keys and the
assignation access policy (koherent.E001 to E004, E010, E011, E060, W060)."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from koherent._config import (
    ASSIGNATION_ACCESS_POLICIES,
    DEFAULTS,
    DOTTED_PATH_KEYS,
    HISTORY_FUNCTION_MODES,
    KoherentSettings,
    user_settings,
)
from koherent._validation import validate_app
from koherent.access import policy_named

_HEADER_KEYS = ("ASSIGNATION_HEADER", "APP_HEADER")


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits a ``KoherentSettings`` annotation (``str | None``, ``bool``...)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is typing.Any:
        return True
    origin = typing.get_origin(annotation) or annotation
    if origin is bool:
        return isinstance(value, bool)
    if origin in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, origin)


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001 to E004: the ``KOHERENT`` dict."""
    raw = getattr(settings, "KOHERENT", None)
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [
            Error(
                f"settings.KOHERENT must be a dict, not {type(raw).__name__}.",
                id="koherent.E001",
            )
        ]
    messages: list[CheckMessage] = []
    annotations = typing.get_type_hints(KoherentSettings)
    for key, value in raw.items():
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1)
            messages.append(
                Error(
                    f"settings.KOHERENT has an unknown key {key!r}.",
                    hint=f"Did you mean {close[0]!r}?"
                    if close
                    else "See docs/settings.md for the keys Koherent reads.",
                    id="koherent.E002",
                )
            )
            continue
        if not _accepts(annotations[key], value):
            messages.append(
                Error(
                    f"settings.KOHERENT[{key!r}] has the wrong type: {value!r}.",
                    hint=f"Expected {annotations[key]}; the default is {DEFAULTS[key]!r}.",  # type: ignore[literal-required]
                    id="koherent.E004",
                )
            )
            continue
        if key in DOTTED_PATH_KEYS:
            messages.extend(_check_dotted_path(key, value))
        elif key in _HEADER_KEYS and not value.strip():
            messages.append(
                Error(f"settings.KOHERENT[{key!r}] must name a header.", id="koherent.E004")
            )
        elif key == "HISTORY_FUNCTION" and value not in HISTORY_FUNCTION_MODES:
            messages.append(
                Error(
                    f"settings.KOHERENT['HISTORY_FUNCTION'] = {value!r} is not a mode.",
                    hint=f"Use one of {', '.join(map(repr, HISTORY_FUNCTION_MODES))}; until "
                    "then the history function is not used.",
                    id="koherent.E004",
                )
            )
        elif key == "APP" and value is not None:
            try:
                validate_app(value)
            except ValueError as exc:
                messages.append(Error(f"settings.KOHERENT['APP']: {exc}", id="koherent.E004"))
    return messages


def _check_dotted_path(key: str, path: str) -> list[CheckMessage]:
    try:
        target = import_string(path)
    except ImportError as exc:
        return [
            Error(
                f"settings.KOHERENT[{key!r}] = {path!r} does not import: {exc}",
                hint="Give the dotted path of a function, e.g. 'koherent.resolvers.static_app'.",
                id="koherent.E003",
            )
        ]
    if not callable(target):
        return [
            Error(
                f"settings.KOHERENT[{key!r}] = {path!r} is not callable.",
                id="koherent.E003",
            )
        ]
    return []


@register(Tags.security)
def check_signing_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E010 and E011: the keys that sign the audit context in task headers."""
    raw = user_settings()  # empty unless a dict (koherent.E001)
    messages: list[CheckMessage] = []
    key = raw.get("SIGNING_KEY")
    if isinstance(key, str) and not key.strip():
        messages.append(
            Error(
                "settings.KOHERENT['SIGNING_KEY'] is empty.",
                hint="Give a long random key, or None to sign with SECRET_KEY.",
                id="koherent.E010",
            )
        )
    fallbacks = raw.get("SIGNING_KEY_FALLBACKS")
    if isinstance(fallbacks, list) and not all(
        isinstance(k, str) and k.strip() for k in fallbacks
    ):
        messages.append(
            Error(
                "settings.KOHERENT['SIGNING_KEY_FALLBACKS'] must hold non-empty strings only.",
                hint="List the keys that signed messages still in flight, newest first.",
                id="koherent.E011",
            )
        )
    return messages


@register(Tags.security)
def check_assignation_access(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E060 and W060: who may join an assignation a request names."""
    raw = user_settings()  # empty unless a dict (koherent.E001)
    policy = raw.get("ASSIGNATION_ACCESS", DEFAULTS["ASSIGNATION_ACCESS"])
    if not isinstance(policy, str):
        return []  # koherent.E004
    messages: list[CheckMessage] = []
    try:
        policy_named(policy)
    except ImproperlyConfigured as exc:
        return [
            Error(
                f"settings.{exc}",
                hint=f"Use {' or '.join(map(repr, ASSIGNATION_ACCESS_POLICIES))}, or the dotted "
                "path of fn(user, assignation_id, record) -> bool (see docs/security.md).",
                id="koherent.E060",
            )
        ]
    if policy == "owner" and raw.get("RECORD_ASSIGNATIONS") is False:
        messages.append(
            Warning(
                "settings.KOHERENT['RECORD_ASSIGNATIONS'] is off, so no assignation has a "
                f"recorded owner and ASSIGNATION_ACCESS = {policy!r} lets every request join "
                "every assignation.",
                hint="Turn RECORD_ASSIGNATIONS on, or set ASSIGNATION_ACCESS to 'any' to say so.",
                id="koherent.W060",
            )
        )
    return messages
