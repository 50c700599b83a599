"""System checks of the tracked models: what querying and reverting rely on, and trigger
capture (koherent.E040, W040, W041, E070 to E074)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.compatibility, Tags.admin)
def check_undo(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E040, W040, W041: what querying and reverting by assignation rely on."""
    from django.apps import apps

    from koherent._config import get_setting
    from koherent._registry import tracked_models

    messages: list[CheckMessage] = []
    admin_installed = apps.is_installed("koherent.admin")
    if admin_installed and not apps.is_installed("django.contrib.admin"):
        messages.append(
            Error(
                "'koherent.admin' is in INSTALLED_APPS, but 'django.contrib.admin' is not.",
                hint="Add 'django.contrib.admin' (the assignation pages live in the admin), "
                "or remove 'koherent.admin'.",
                id="koherent.E040",
            )
        )
    if admin_installed and not get_setting("RECORD_ASSIGNATIONS"):
        messages.append(
            Warning(
                "'koherent.admin' is installed but KOHERENT['RECORD_ASSIGNATIONS'] is False: "
                "the admin lists assignation records, so its list stays empty.",
                hint="Turn RECORD_ASSIGNATIONS on, or query history by id with "
                "koherent.history_for_assignation().",
                id="koherent.W041",
            )
        )
    for tracked in tracked_models():
        if getattr(tracked.history_model, "koherent_cascade_delete_history", False):
            messages.append(
                Warning(
                    f"{tracked.label} is tracked with cascade_delete_history=True: deleting an "
                    f"object deletes its history, so reverting cannot re-create it and its "
                    f"changes disappear from the history of their assignations.",
                    hint="Leave cascade_delete_history off for models whose changes you may "
                    "revert.",
                    obj=tracked.model,
                    id="koherent.W040",
                )
            )
    return messages


@register(Tags.compatibility, Tags.models, Tags.database)
def check_capture(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E070 to E074: trigger capture."""
    from django.apps import apps
    from django.db import connections, router

    from koherent._registry import tracked_models
    from koherent.capture import CAPTURE_MODES, MODE_ATTRIBUTE

    messages: list[CheckMessage] = []
    raw = getattr(settings, "KOHERENT", None)
    mode = raw.get("CAPTURE") if isinstance(raw, dict) else None
    if isinstance(mode, str) and mode not in CAPTURE_MODES:
        messages.append(
            Error(
                f"settings.KOHERENT['CAPTURE'] = {mode!r} is not a capture mode.",
                hint="Use 'signal' (simple-history's signals, every database) or 'trigger' "
                "(PostgreSQL triggers). Until then, models are captured by signals.",
                id="koherent.E070",
            )
        )
    triggered = [
        t for t in tracked_models() if getattr(t.model, MODE_ATTRIBUTE, None) == "trigger"
    ]
    if not triggered:
        return messages
    if not apps.is_installed("pgtrigger"):
        messages.append(
            Error(
                "Models are captured by triggers, but 'pgtrigger' is not in INSTALLED_APPS: "
                "makemigrations would not write their triggers and no history would be "
                "recorded.",
                hint='pip install "koherent[postgres]" and add "pgtrigger" to INSTALLED_APPS.',
                id="koherent.E072",
            )
        )
    for tracked in triggered:
        model = tracked.model
        alias = router.db_for_write(model)
        connection = connections[alias]
        if connection.vendor != "postgresql":
            messages.append(
                Error(
                    f"{tracked.label} is captured by triggers, but its database {alias!r} is "
                    f"{connection.display_name}: trigger capture needs PostgreSQL.",
                    hint="Use HistoryField(capture='signal') for this model (signals capture "
                    "on every database), or route it to a PostgreSQL database.",
                    obj=model,
                    id="koherent.E071",
                )
            )
            continue
        if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding") is True:
            messages.append(
                Error(
                    f"Database {alias!r} of {tracked.label} uses server-side binding "
                    f"(OPTIONS['server_side_binding'] = True), which cannot send the audit "
                    f"context in the same statement as the change.",
                    hint="Remove server_side_binding, or capture this model by signals.",
                    obj=model,
                    id="koherent.E074",
                )
            )
        messages.extend(_trigger_capture_limits(tracked, connection))
    return messages


def _trigger_capture_limits(tracked: Any, connection: Any) -> list[CheckMessage]:
    """E073: what a model captured by triggers may not use."""
    from koherent import stamping
    from koherent.models import KOHERENT_HISTORY_COLUMNS

    model = tracked.model
    history = tracked.history_model
    problems: list[str] = []
    if tracked.m2m:
        problems.append(
            "tracked many-to-many fields (m2m_fields): their history is written by Python "
            "when the relation changes"
        )
    if model._meta.parents:
        problems.append(
            "multi-table inheritance: the trigger of the child's table cannot see the "
            "parent's columns"
        )
    field = _history_field_of(model)
    get_user = getattr(field, "get_user", stamping.get_history_user)
    if get_user is not stamping.get_history_user:
        problems.append(
            "a custom get_user: the user comes from the audit context, not from Python code"
        )
    id_field = history._meta.pk
    if id_field.get_internal_type() not in ("AutoField", "BigAutoField", "UUIDField"):
        problems.append(
            f"a history_id_field of type {id_field.get_internal_type()} (use an auto field "
            f"or a UUIDField)"
        )
    known = {
        "history_id",
        "history_date",
        "history_type",
        "history_change_reason",
        "history_user_id",
        "history_relation_id",
        *KOHERENT_HISTORY_COLUMNS,
        *(f.column for f in history.tracked_fields),
    }
    known.add(id_field.column)
    for column in history._meta.concrete_fields:
        if column.column in known or column.null or column.has_db_default():
            continue
        problems.append(
            f"the history column {column.column!r}, which the trigger cannot fill (make it "
            f"nullable or give it a db_default)"
        )
    user_column = next(
        (f for f in history._meta.concrete_fields if f.column == "history_user_id"), None
    )
    if user_column is not None:
        from koherent._triggers import user_key_check

        if user_key_check(user_column, connection) is None:
            problems.append("a user model whose primary key type trigger capture does not know")
    return [
        Error(
            f"{tracked.label} is captured by triggers but uses {problem}.",
            hint="Capture this model by signals (HistoryField(capture='signal')), or remove "
            "what the triggers cannot capture.",
            obj=model,
            id="koherent.E073",
        )
        for problem in problems
    ]


def _history_field_of(model: Any) -> Any:
    return getattr(model, "_koherent_history_field", None)
