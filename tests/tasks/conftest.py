"""Fixtures of the tests of Django's tasks framework."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.tasks.worker import DbWorker


@pytest.fixture(scope="module")
def db_worker(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbWorker]:
    """A real db_worker process for the module's tests."""
    from django.db import connection

    worker = DbWorker(
        database_name=str(connection.settings_dict["NAME"]),
        log_path=tmp_path_factory.mktemp("db-worker") / "worker.log",
    )
    with django_db_blocker.unblock():
        worker.start()
    yield worker
    worker.stop()
