"""Fixtures of the tests that run real Celery workers, shared per configuration for the whole
session (a plugin of the root conftest, so that every folder gets the same workers: two
workers of one configuration would consume the same queue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.signals import before_task_publish

from koherent.celery.header import HEADER
from koherent.celery.receivers import connect
from tests import services
from tests.celery.harness import CONFIGS, Worker


@pytest.fixture(scope="session")
def start_worker(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Worker]]:
    """Start (once per session) the worker of a configuration in :data:`CONFIGS`."""
    from django.db import connection

    database_name = connection.settings_dict["NAME"]
    logs = tmp_path_factory.mktemp("celery-workers")
    workers: dict[str, Worker] = {}

    def start(key: str) -> Worker:
        worker = workers.get(key)
        if worker is None or not worker.alive():
            config = CONFIGS[key]
            services.need(config.broker)
            services.need("redis")
            worker = Worker(key, config, database_name, logs / f"{key}.log")
            workers[key] = worker
            worker.start()
        return worker

    yield start
    for worker in workers.values():
        worker.stop()


def _worker_fixture(key: str) -> Any:
    @pytest.fixture(name=f"{key}_worker")
    def fixture(start_worker: Callable[[str], Worker]) -> Worker:
        return start_worker(key)

    return fixture


redis_worker = _worker_fixture("redis")
rabbitmq_worker = _worker_fixture("rabbitmq")
threads_worker = _worker_fixture("threads")
prefork_worker = _worker_fixture("prefork")
sentry_worker = _worker_fixture("sentry")
optin_worker = _worker_fixture("optin")


@pytest.fixture(params=["redis", "rabbitmq"])
def worker(request: pytest.FixtureRequest, start_worker: Callable[[str], Worker]) -> Worker:
    """The main path's worker, on each broker."""
    return start_worker(request.param)


#: Header values to put on messages by task id, after Koherent wrote its own.
forged: dict[str, object] = {}


def _forge(sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
    if isinstance(headers, dict) and headers.get("id") in forged:
        headers[HEADER] = forged.pop(headers["id"])


@pytest.fixture
def forge() -> Iterator[dict[str, object]]:
    """Maps task ids to header values written *below* Koherent, as a forger with access to
    the broker would; Koherent's receiver runs first, so the forged value is what arrives."""
    connect()  # Koherent's receivers first, whatever the import order
    before_task_publish.connect(_forge, weak=False, dispatch_uid="tests.celery.forge")
    try:
        yield forged
    finally:
        before_task_publish.disconnect(dispatch_uid="tests.celery.forge")
        forged.clear()
