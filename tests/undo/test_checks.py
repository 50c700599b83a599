"""The system checks of querying and reverting by assignation (koherent.E040-W041)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import models
from django.test.utils import isolate_apps, override_settings

from koherent.checks import check_undo
from koherent.fields import HistoryField
from tests.undoapp.models import Line


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def test_the_test_project_is_clean() -> None:
    assert check_undo() == []


def test_admin_app_without_django_admin() -> None:
    apps = [a for a in django_settings.INSTALLED_APPS if a != "django.contrib.admin"]
    with override_settings(INSTALLED_APPS=apps):
        assert ids(check_undo()) == ["koherent.E040"]


def test_admin_app_without_records(settings: Any) -> None:
    settings.KOHERENT = {"RECORD_ASSIGNATIONS": False}
    [message] = check_undo()
    assert message.id == "koherent.W041"
    assert "stays empty" in message.msg


def test_history_deleted_with_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Line.history.model, "koherent_cascade_delete_history", True)
    [message] = check_undo()
    assert message.id == "koherent.W040"
    assert message.obj is Line
    assert "undoapp.Line" in message.msg


def test_history_field_marks_cascading_history() -> None:
    with isolate_apps("tests.undoapp"):

        class Cascading(models.Model):
            history = HistoryField(cascade_delete_history=True)

            class Meta:
                app_label = "undoapp"

        class Keeping(models.Model):
            history = HistoryField()

            class Meta:
                app_label = "undoapp"

    assert Cascading.history.model.koherent_cascade_delete_history is True
    assert Keeping.history.model.koherent_cascade_delete_history is False
