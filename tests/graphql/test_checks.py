"""System checks of the GraphQL settings (koherent.E030, koherent.W030)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from koherent.checks import check_graphql_settings, check_settings


def test_clean_settings_pass(settings: Any) -> None:
    settings.KOHERENT = {
        "GRAPHQL_FRESH_ASSIGNATION": "operation",
        "GRAPHQL_WEBSOCKET_MUTATIONS": True,
        "GRAPHQL_REVERT_PERMISSION": "koherent.strawberry.permissions.superusers_only",
    }
    assert check_settings() == []
    assert check_graphql_settings() == []


def test_unknown_fresh_assignation_mode(settings: Any) -> None:
    settings.KOHERENT = {"GRAPHQL_FRESH_ASSIGNATION": "mutations"}
    [message] = check_graphql_settings()
    assert message.id == "koherent.E030"
    assert "'mutations'" in message.msg
    assert message.hint is not None
    assert "'mutation'" in message.hint


def test_wrong_types_are_reported_by_the_generic_check(settings: Any) -> None:
    settings.KOHERENT = {
        "GRAPHQL_FRESH_ASSIGNATION": True,
        "GRAPHQL_WEBSOCKET_MUTATIONS": "yes",
        "GRAPHQL_REVERT_PERMISSION": "nowhere.to.be.found",
    }
    assert sorted(str(m.id) for m in check_settings()) == [
        "koherent.E003",
        "koherent.E004",
        "koherent.E004",
    ]
    assert check_graphql_settings() == []


def test_graphql_settings_without_strawberry_warn(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "strawberry_django" else real(name, *a),
    )
    settings.KOHERENT = {"GRAPHQL_WEBSOCKET_MUTATIONS": True}
    [message] = check_graphql_settings()
    assert message.id == "koherent.W030"
    assert message.hint is not None
    assert "koherent[strawberry]" in message.hint
    settings.KOHERENT = {"APP": "x"}
    assert check_graphql_settings() == []
