"""System checks koherent.E050 and E051: the outgoing HTTP settings."""

from __future__ import annotations

from typing import Any

from koherent.checks import check_outgoing_http, check_settings


def ids(settings: Any, **koherent: Any) -> list[str]:
    settings.KOHERENT = koherent
    return [str(m.id) for m in check_outgoing_http()] + [str(m.id) for m in check_settings()]


def test_valid_settings_pass(settings: Any) -> None:
    assert (
        ids(
            settings,
            OUTGOING_HOSTS=["api.internal", "*.svc.internal:8443", "[fd00::1]:80"],
            OUTGOING_ASSIGNATION_HEADER="X-Op",
            OUTGOING_APP_HEADER="X-Koherent-App",
        )
        == []
    )
    assert ids(settings, OUTGOING_HOSTS=("api.internal",)) == []


def test_each_bad_host_is_reported(settings: Any) -> None:
    settings.KOHERENT = {"OUTGOING_HOSTS": ["ok.internal", "*", "https://x.internal"]}
    messages = check_outgoing_http()
    assert [m.id for m in messages] == ["koherent.E050", "koherent.E050"]
    assert "'*'" in messages[0].msg
    assert "'https://x.internal'" in messages[1].msg


def test_hosts_of_the_wrong_type(settings: Any) -> None:
    assert ids(settings, OUTGOING_HOSTS="api.internal") == ["koherent.E004"]


def test_bad_header_names(settings: Any) -> None:
    assert ids(settings, OUTGOING_ASSIGNATION_HEADER="X Op", OUTGOING_APP_HEADER="X:App") == [
        "koherent.E051",
        "koherent.E051",
    ]


def test_app_header_must_differ_from_the_assignation_header(settings: Any) -> None:
    assert ids(settings, OUTGOING_APP_HEADER="x-assignation-id") == ["koherent.E051"]
    assert ids(settings, OUTGOING_ASSIGNATION_HEADER="X-Op", OUTGOING_APP_HEADER="X-OP") == [
        "koherent.E051"
    ]
    assert ids(settings, ASSIGNATION_HEADER="X-Op", OUTGOING_APP_HEADER="X-Assignation-ID") == []
