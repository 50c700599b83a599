"""System checks of projects upgraded from koherent 0.2 (koherent.W070, W071)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register

from koherent._config import (
    DEFAULTS,
)

AUTHENTIKATE_APP_RESOLVER = "koherent.contrib.authentikate.client_app"


@register(Tags.compatibility)
def check_authentikate(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W070: a koherent 0.2 project on authentikate whose app resolver ignores the client."""
    from django.apps import apps

    from koherent._config import get_setting

    if not apps.is_installed("authentikate") or get_setting("APP_RESOLVER") != DEFAULTS.get(
        "APP_RESOLVER"
    ):
        return []
    return [
        Warning(
            "'authentikate' is installed, but KOHERENT['APP_RESOLVER'] is the default: history "
            "rows of GraphQL operations get no app from the authentikate client (koherent 0.2 "
            "recorded it in 'client').",
            hint=f"Set KOHERENT['APP_RESOLVER'] = {AUTHENTIKATE_APP_RESOLVER!r} (see "
            f"docs/upgrading.md), or silence koherent.W070 if the app comes from elsewhere.",
            id="koherent.W070",
        )
    ]


@register(Tags.database)
def check_upgraded_rows(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """W071: rows koherent 0.2 wrote that ``koherent_upgrade`` has not backfilled yet."""
    from django.db import DatabaseError

    from koherent.upgrade import history_models

    messages: list[CheckMessage] = []
    for using in databases or ():
        for model in history_models(using):
            fields = {f.name for f in model._meta.get_fields()}
            pending = model._default_manager.db_manager(using).none()
            if "history_user" in fields:
                pending = pending | model._default_manager.db_manager(using).filter(
                    user_pk__isnull=True, history_user_id__isnull=False
                )
            if "client" in fields:
                pending = pending | model._default_manager.db_manager(using).filter(
                    app__isnull=True, client_id__isnull=False
                )
            try:
                found = pending.exists()
            except DatabaseError:  # not migrated yet: migrate's own checks say so
                continue
            if found:
                messages.append(
                    Warning(
                        f"{model._meta.label} ({using}) has history rows written by koherent "
                        f"0.2 without user_pk or app.",
                        hint="Run manage.py koherent_upgrade (docs/upgrading.md).",
                        obj=model,
                        id="koherent.W071",
                    )
                )
    return messages
