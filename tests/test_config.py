"""Settings are read at call time, over documented defaults."""

from __future__ import annotations

from typing import Any

import pytest

from koherent.config import DEFAULTS, get_setting, koherent_settings


def test_defaults_when_unset(settings: Any) -> None:
    del settings.KOHERENT
    assert koherent_settings() == DEFAULTS
    assert get_setting("ASSIGNATION_HEADER") == "X-Assignation-ID"
    assert get_setting("ATOMIC_SAVES") is True


def test_overrides_read_at_call_time(settings: Any) -> None:
    settings.KOHERENT = {"ASSIGNATION_HEADER": "X-Op"}
    assert get_setting("ASSIGNATION_HEADER") == "X-Op"
    assert get_setting("RESPONSE_HEADER") is True
    settings.KOHERENT = {"ASSIGNATION_HEADER": "X-Other"}
    assert get_setting("ASSIGNATION_HEADER") == "X-Other"


def test_unknown_key_raises() -> None:
    with pytest.raises(KeyError):
        get_setting("NOPE")


def test_every_default_is_documented() -> None:
    """Every key appears in docs/settings.md with its default."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in text]
    assert missing == []
