"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections

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
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs the PostgreSQL backend (KOHERENT_TEST_DB=postgres)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
