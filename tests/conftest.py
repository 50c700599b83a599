"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections
from django.db.backends.base.creation import TEST_DATABASE_PREFIX

from koherent import records
from tests import services

#: Fixtures live in a folder's conftest or in a plugin here, never in a module that tests
#: import: tests import helpers from plain modules (tests.undo.scenario, tests.graphql.client),
#: and no module imports a conftest or a fixture (tests/test_suite_layout.py). The Celery
#: workers are session fixtures of one plugin, whichever folder asks for them. process_guard
#: lets only tests marked ``processes`` start processes; pytester is for its own tests.
pytest_plugins = [
    "pytester",
    "tests.process_guard",
    "tests.celery.fixtures",
    "tests.graphql.fixtures",
    "tests.undo.fixtures",
]


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    where = (
        db["NAME"] if db["ENGINE"].endswith("sqlite3") else f"{db.get('HOST')}:{db.get('PORT')}"
    )
    return [
        f"koherent: database backend {db['ENGINE'].rsplit('.', 1)[-1]} ({where})",
        f"koherent: services {services.summary()}",
    ]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """The test databases, with the triggers of every trigger-captured model installed.

    The test apps' migrations serve both capture modes, so they hold no triggers (but those of
    ``tests.capture``, whose models say their mode): in trigger mode pgtrigger installs the
    others on each PostgreSQL test database, as ``PGTRIGGER_INSTALL_ON_MIGRATE`` would after a
    ``migrate`` (docs/concepts.md, "Setting up trigger capture").
    """
    if settings.KOHERENT.get("CAPTURE") != "trigger":
        return
    import pgtrigger

    with django_db_blocker.unblock():
        for connection in connections.all():
            name = str(connection.settings_dict["NAME"])
            set_up = name == connection.settings_dict["TEST"].get("NAME") or name.startswith(
                TEST_DATABASE_PREFIX
            )  # the test databases of the tests collected (those of other aliases are not)
            if connection.vendor == "postgresql" and set_up:
                pgtrigger.install(database=connection.alias)


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_the_sync_thread(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """Async tests run the ORM in asgiref's shared sync thread; close its connection at the
    end, or the test database cannot be dropped."""
    yield
    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(autouse=True)
def _forget_assignation_records() -> Iterator[None]:
    """Each test starts without the process's memory of written assignation records."""
    records.clear_cache()
    yield
    records.clear_cache()


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="pw")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="pw")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if settings.KOHERENT.get("CAPTURE") == "trigger":
        signal_only = pytest.mark.skip(
            reason="pins signal capture; this pass captures by triggers "
            "(KOHERENT_TEST_CAPTURE=signal runs it)"
        )
        for item in items:
            if "signal_capture" in item.keywords:
                item.add_marker(signal_only)
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs the PostgreSQL backend (KOHERENT_TEST_DB=postgres)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
