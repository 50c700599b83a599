"""Settings are read at call time, over documented defaults."""

from __future__ import annotations

from typing import Any

import pytest

from koherent._config import DEFAULTS, get_setting, koherent_settings


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


def test_get_setting_is_typed_per_key() -> None:
    """One overload per key of KoherentSettings, returning that key's type (call sites that
    name their key are typed without a cast)."""
    import typing

    from koherent._config import KoherentSettings

    hints = typing.get_type_hints(KoherentSettings)
    typed: dict[str, Any] = {}
    for overload in typing.get_overloads(get_setting):
        annotations = typing.get_type_hints(overload)
        (key,) = typing.get_args(annotations["name"]) or (None,)
        if key is not None:
            typed[key] = annotations["return"]
    assert typed == hints
    assert set(typed) == set(DEFAULTS)


def test_the_graphql_mode_is_decided_in_one_place() -> None:
    """The GraphQL extension (at run time) and koherent.E030 ask the same function."""
    from django.core.exceptions import ImproperlyConfigured

    from koherent._config import GRAPHQL_FRESH_ASSIGNATION_MODES, fresh_assignation_mode

    assert [fresh_assignation_mode(m) for m in GRAPHQL_FRESH_ASSIGNATION_MODES] == list(
        GRAPHQL_FRESH_ASSIGNATION_MODES
    )
    for wrong in ("always", None, 1):
        with pytest.raises(ImproperlyConfigured, match="GRAPHQL_FRESH_ASSIGNATION must be one"):
            fresh_assignation_mode(wrong)


def test_the_checks_package_registers_every_check_of_its_modules() -> None:
    """koherent.checks imports each area's module, which registers its checks."""
    import importlib
    import pkgutil

    from django.core.checks import registry

    import koherent.checks

    registered = set(registry.registry.registered_checks)
    found = []
    for info in pkgutil.iter_modules(koherent.checks.__path__):
        module = importlib.import_module(f"koherent.checks.{info.name}")
        found += [getattr(module, name) for name in dir(module) if name.startswith("check_")]
    assert len(found) == 12
    assert [check for check in found if check not in registered] == []
