"""System checks for Koherent's configuration (``manage.py check``).

=================  ======================================================================
id                 problem
=================  ======================================================================
``koherent.E001``  ``KOHERENT`` is not a dict
``koherent.E002``  ``KOHERENT`` has a key Koherent does not know (a typo, most likely)
``koherent.E003``  a dotted-path setting does not import, or is not callable
``koherent.E004``  a setting has a value of the wrong type or form
``koherent.W001``  ``KoherentMiddleware`` comes before ``AuthenticationMiddleware``
``koherent.E010``  ``KOHERENT["SIGNING_KEY"]`` is empty
``koherent.E011``  ``KOHERENT["SIGNING_KEY_FALLBACKS"]`` holds something other than keys
``koherent.W010``  a Celery app given to ``koherent.celery.install()`` sends protocol 1
                   messages, which are sent without the context
``koherent.W020``  a ``LOGGING`` handler formats ``assignation_id`` without Koherent's filter
``koherent.E030``  ``GRAPHQL_FRESH_ASSIGNATION`` is not ``mutation``, ``operation`` or ``never``
``koherent.W030``  ``GRAPHQL_*`` settings are set, but strawberry-graphql-django is not installed
``koherent.E040``  ``koherent.admin`` is installed without ``django.contrib.admin``
``koherent.W040``  a tracked model deletes its history with the object: its deletes cannot be
                   reverted
``koherent.W041``  ``koherent.admin`` is installed but ``RECORD_ASSIGNATIONS`` is off: the
                   assignation list stays empty
``koherent.E050``  an ``OUTGOING_HOSTS`` entry is not a host, ``host:port`` or ``*.domain``
``koherent.E051``  an ``OUTGOING_*_HEADER`` is not a valid header name, or both name the same
                   header
``koherent.E060``  ``ASSIGNATION_ACCESS`` is not ``owner``, ``any`` or the dotted path of a
                   callable
``koherent.W060``  ``ASSIGNATION_ACCESS`` checks owners, but ``RECORD_ASSIGNATIONS`` is off, so
                   no assignation has an owner and every request may join every assignation
``koherent.W070``  ``authentikate`` is installed, but ``APP_RESOLVER`` does not read its client:
                   GraphQL operations are stamped without the app koherent 0.2 recorded
``koherent.W071``  history rows written by koherent 0.2 are not upgraded yet (run
                   ``koherent_upgrade``); only with ``check --database``
``koherent.E070``  ``CAPTURE`` is not ``signal`` or ``trigger``
``koherent.E071``  a model is captured by triggers, but its database is not PostgreSQL
``koherent.E072``  trigger capture is used, but ``pgtrigger`` is not in ``INSTALLED_APPS``
``koherent.E073``  a model captured by triggers uses something triggers cannot capture (tracked
                   many-to-many fields, multi-table inheritance, a custom ``get_user``, a
                   history column the trigger cannot fill, a key type it does not know)
``koherent.E074``  a PostgreSQL database of a trigger-captured model uses server-side binding,
                   which cannot send the context with the statement
=================  ======================================================================
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import sys
import types
import typing
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from koherent.config import (
    ASSIGNATION_ACCESS_POLICIES,
    DEFAULTS,
    DOTTED_PATH_KEYS,
    GRAPHQL_FRESH_ASSIGNATION_MODES,
    KoherentSettings,
)
from koherent.validation import validate_app

MIDDLEWARE_PATH = "koherent.middleware.KoherentMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"
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


@register(Tags.compatibility)
def check_graphql_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E030 and W030: the ``GRAPHQL_*`` settings."""
    raw = getattr(settings, "KOHERENT", None)
    if not isinstance(raw, dict):
        return []
    messages: list[CheckMessage] = []
    mode = raw.get("GRAPHQL_FRESH_ASSIGNATION")
    if isinstance(mode, str) and mode not in GRAPHQL_FRESH_ASSIGNATION_MODES:
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


@register(Tags.compatibility, Tags.admin)
def check_undo(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E040, W040, W041: what querying and reverting by assignation rely on."""
    from django.apps import apps

    from koherent.config import get_setting
    from koherent.registry import tracked_models

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


@register(Tags.security)
def check_signing_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E010 and E011: the keys that sign the audit context in task headers."""
    raw = getattr(settings, "KOHERENT", None)
    if not isinstance(raw, dict):
        return []
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


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@register(Tags.security)
def check_outgoing_http(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E050 and E051: where outgoing HTTP calls send the assignation, and under which names."""
    from koherent.http.hosts import parse_host_pattern

    raw = getattr(settings, "KOHERENT", None)
    if not isinstance(raw, dict):
        return []
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


@register(Tags.security)
def check_assignation_access(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E060 and W060: who may join an assignation a request names."""
    raw = getattr(settings, "KOHERENT", None)
    if not isinstance(raw, dict):
        return []
    policy = raw.get("ASSIGNATION_ACCESS", DEFAULTS["ASSIGNATION_ACCESS"])
    if not isinstance(policy, str):
        return []  # koherent.E004
    messages: list[CheckMessage] = []
    hint = (
        f"Use {' or '.join(map(repr, ASSIGNATION_ACCESS_POLICIES))}, or the dotted path of "
        "fn(user, assignation_id, record) -> bool (see docs/security.md)."
    )
    if policy not in ASSIGNATION_ACCESS_POLICIES:
        if "." not in policy:
            return [
                Error(
                    f"settings.KOHERENT['ASSIGNATION_ACCESS'] = {policy!r} is not a policy "
                    "Koherent knows.",
                    hint=hint,
                    id="koherent.E060",
                )
            ]
        try:
            target = import_string(policy)
        except ImportError as exc:
            return [
                Error(
                    f"settings.KOHERENT['ASSIGNATION_ACCESS'] = {policy!r} does not import: {exc}",
                    hint=hint,
                    id="koherent.E060",
                )
            ]
        if not callable(target):
            return [
                Error(
                    f"settings.KOHERENT['ASSIGNATION_ACCESS'] = {policy!r} is not callable.",
                    hint=hint,
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


AUTHENTIKATE_APP_RESOLVER = "koherent.contrib.authentikate.client_app"


@register(Tags.compatibility)
def check_authentikate(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W070: a koherent 0.2 project on authentikate whose app resolver ignores the client."""
    from django.apps import apps

    from koherent.config import get_setting

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


@register(Tags.compatibility, Tags.models, Tags.database)
def check_capture(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E070 to E074: trigger capture."""
    from django.apps import apps
    from django.db import connections, router

    from koherent.capture import CAPTURE_MODES, MODE_ATTRIBUTE
    from koherent.registry import tracked_models

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
        from koherent.triggers import user_key_check

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
