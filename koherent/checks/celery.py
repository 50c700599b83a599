"""System check of the Celery integration (koherent.W010)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.compatibility)
def check_celery_protocol(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W010: Celery apps with Koherent installed must send protocol 2 messages."""
    receivers = sys.modules.get("koherent.celery.receivers")
    if receivers is None:  # Celery integration not in use: nothing to check, nothing to import
        return []
    messages: list[CheckMessage] = []
    for app in receivers.installed_apps():
        protocol = app.conf.task_protocol
        if protocol != 2:
            messages.append(
                Warning(
                    f"Celery app {app.main!r} sends task protocol {protocol} messages.",
                    hint=(
                        "Koherent binds the context header to the task id, name, arguments "
                        "and canvas options of a protocol 2 message; other messages are sent "
                        "without the context. Remove task_protocol from the Celery settings "
                        "(2 is the default)."
                    ),
                    id="koherent.W010",
                )
            )
    return messages
