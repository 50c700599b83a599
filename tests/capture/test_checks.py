"""The system checks of trigger capture (koherent.E070 to E074)."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from koherent import stamping
from koherent._registry import tracked_model
from koherent.checks import _trigger_capture_limits, check_capture
from koherent.fields import HistoryField
from tests.capture.models import Product
from tests.undoapp.models import Invoice


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_the_test_project_passes() -> None:
    assert check_capture() == []


def test_unknown_capture_setting(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "CAPTURE": "database"}
    assert "koherent.E070" in ids(check_capture())


def test_a_bad_capture_argument_is_refused_at_once() -> None:
    with pytest.raises(ImproperlyConfigured, match="capture='db'"):
        HistoryField(capture="db")  # type: ignore[arg-type]


def test_pgtrigger_must_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: name != "pgtrigger" and real(name))
    assert ids(check_capture()) == ["koherent.E072"]


def test_trigger_capture_needs_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")
    messages = check_capture()
    assert set(ids(messages)) == {"koherent.E071"}
    assert any(m.obj is Product for m in messages)
    assert "trigger capture needs PostgreSQL" in messages[0].msg


def test_server_side_binding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {**connection.settings_dict.get("OPTIONS", {}), "server_side_binding": True}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    assert "koherent.E074" in ids(check_capture())


def test_tracked_many_to_many_fields_are_refused() -> None:
    messages = _trigger_capture_limits(tracked_model(Invoice), connection)
    assert ids(messages) == ["koherent.E073"]
    assert "many-to-many" in messages[0].msg


def test_a_custom_get_user_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    field = Product._koherent_history_field  # type: ignore[attr-defined]
    monkeypatch.setattr(field, "get_user", lambda **kwargs: None)
    messages = _trigger_capture_limits(tracked_model(Product), connection)
    assert ids(messages) == ["koherent.E073"]
    assert "get_user" in messages[0].msg
    monkeypatch.setattr(field, "get_user", stamping.get_history_user)
    assert _trigger_capture_limits(tracked_model(Product), connection) == []


def test_the_setting_is_the_default_of_every_field_that_does_not_say(settings: Any) -> None:
    settings.KOHERENT = {**settings.KOHERENT, "CAPTURE": "trigger"}
    assert HistoryField().configured_capture() == "trigger"
    assert HistoryField(capture="signal").configured_capture() == "signal"
    settings.KOHERENT = {**settings.KOHERENT, "CAPTURE": "database"}  # koherent.E070
    assert HistoryField().configured_capture() == "signal"
    del settings.KOHERENT["CAPTURE"]
    assert HistoryField().configured_capture() == "signal"
    assert HistoryField(capture="trigger").configured_capture() == "trigger"


def test_multi_table_inheritance_is_refused() -> None:
    from tests.capture.models import Widget

    messages = _trigger_capture_limits(tracked_model(Widget), connection)
    assert ids(messages) == ["koherent.E073"]
    assert "multi-table inheritance" in messages[0].msg


def test_capture_mode_follows_the_database_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from koherent.capture import capture_mode, configured_mode

    assert capture_mode(Product) == capture_mode(Product, "default") == "trigger"
    monkeypatch.setattr(connection, "vendor", "sqlite")
    # Configured for triggers, but on a database other than PostgreSQL signals capture it.
    assert configured_mode(Product) == "trigger"
    assert capture_mode(Product) == "signal"
