"""System check of the logging configuration (koherent.W020)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.utils.module_loading import import_string

_LOG_FIELD = re.compile(r"%\(assignation_id\)|\{assignation_id\b|\$\{?assignation_id\b")


@register(Tags.compatibility)
def check_logging_filter(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W020: a handler whose format names ``assignation_id`` needs ``AuditContextFilter``.

    Without the filter every record it formats fails ("KeyError: 'assignation_id'") and is lost.
    """
    config = getattr(settings, "LOGGING", None)
    if not isinstance(config, dict):
        return []
    formatters = config.get("formatters") or {}
    filters = config.get("filters") or {}
    messages: list[CheckMessage] = []
    for name, handler in (config.get("handlers") or {}).items():
        if not isinstance(handler, dict):
            continue
        formatter = formatters.get(handler.get("formatter"))
        if not isinstance(formatter, dict):
            continue
        fmt = formatter.get("format", formatter.get("fmt"))
        if not isinstance(fmt, str) or not _LOG_FIELD.search(fmt):
            continue
        if any(_is_audit_filter(filters.get(f)) for f in handler.get("filters") or ()):
            continue
        messages.append(
            Warning(
                f"LOGGING handler {name!r} formats assignation_id but has no "
                "koherent.log.AuditContextFilter.",
                hint=(
                    'Add {"()": "koherent.log.AuditContextFilter"} to LOGGING["filters"] and '
                    "list it in the handler's filters (on the handler, not on a logger: logger "
                    "filters miss records propagated from child loggers)."
                ),
                id="koherent.W020",
            )
        )
    return messages


def _is_audit_filter(spec: Any) -> bool:
    from koherent.log import AuditContextFilter

    if isinstance(spec, AuditContextFilter):
        return True
    if not isinstance(spec, dict):
        return False
    factory = spec.get("()")
    if isinstance(factory, str):
        try:
            factory = import_string(factory)
        except ImportError:
            return False
    return isinstance(factory, type) and issubclass(factory, AuditContextFilter)
