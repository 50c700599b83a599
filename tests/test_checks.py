"""System checks: each fires on its misconfiguration, and a clean setup passes."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from koherent.checks import check_middleware_order, check_settings


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_project_settings_are_clean() -> None:
    assert check_settings() == []
    assert check_middleware_order() == []
    call_command("check")  # registered and passing


def test_not_a_dict(settings: Any) -> None:
    settings.KOHERENT = ["ASSIGNATION_HEADER"]
    assert ids(check_settings()) == ["koherent.E001"]


def test_unknown_key_with_suggestion(settings: Any) -> None:
    settings.KOHERENT = {"ASSIGNATION_HEDER": "X-Op"}
    [message] = check_settings()
    assert message.id == "koherent.E002"
    assert "ASSIGNATION_HEDER" in message.msg
    assert message.hint is not None
    assert "ASSIGNATION_HEADER" in message.hint


def test_resolver_that_does_not_import(settings: Any) -> None:
    settings.KOHERENT = {"APP_RESOLVER": "myproject.nowhere.resolve_app"}
    [message] = check_settings()
    assert message.id == "koherent.E003"
    assert "does not import" in message.msg


def test_resolver_that_is_not_callable(settings: Any) -> None:
    settings.KOHERENT = {"APP_RESOLVER": "koherent._config.DEFAULTS"}
    assert ids(check_settings()) == ["koherent.E003"]


@pytest.mark.parametrize(
    "value",
    [
        {"ATOMIC_SAVES": "yes"},
        {"HISTORY_FUNCTION": True},
        {"HISTORY_FUNCTION": "sometimes"},
        {"FRESH_ASSIGNATION_PER_REQUEST": 1},
        {"ASSIGNATION_HEADER": None},
        {"ASSIGNATION_HEADER": "  "},
        {"APP": "not a valid app"},
        {"APP": 5},
    ],
)
def test_wrong_types_and_forms(settings: Any, value: dict[str, Any]) -> None:
    settings.KOHERENT = value
    assert ids(check_settings()) == ["koherent.E004"]


def test_middleware_before_authentication(settings: Any) -> None:
    settings.MIDDLEWARE = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "koherent.middleware.KoherentMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    [message] = check_middleware_order()
    assert message.id == "koherent.W001"


def test_subclassed_middleware_before_authentication(settings: Any) -> None:
    settings.MIDDLEWARE = [
        "tests.test_checks.MyMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    assert ids(check_middleware_order()) == ["koherent.W001"]


def test_errors_stop_manage_py_check(settings: Any) -> None:
    settings.KOHERENT = {"NOT_A_KEY": True}
    with pytest.raises(SystemCheckError, match=r"koherent\.E002"):
        call_command("check")


from koherent.middleware import KoherentMiddleware  # noqa: E402


class MyMiddleware(KoherentMiddleware):
    pass
