"""Celery apps of the test project, made the same way in the test process and in workers."""

from __future__ import annotations

from types import SimpleNamespace

from celery import Celery

import koherent.celery
from tests.celery.tasks import register_tasks


def make_app(
    key: str,
    *,
    broker: str,
    backend: str,
    queue: str,
    install: bool = True,
    eager: bool = False,
    acks_late: bool = False,
    visibility_timeout: float | None = None,
    confirm_publish: bool = False,
) -> tuple[Celery, SimpleNamespace]:
    """A Celery app with the test tasks, sending to ``queue``; installs Koherent unless told.

    ``acks_late`` acknowledges a message after its task ran and gives it back to the broker
    when the process running it dies; ``visibility_timeout`` (Redis) is how many seconds an
    unacknowledged message waits before the broker delivers it again (checked every second);
    ``confirm_publish`` (RabbitMQ) makes a publish wait until the broker confirms it has the
    message (a persistent message in a durable queue: on disk).
    """
    app = Celery(f"koherent-tests-{key}", set_as_current=False)
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,
        task_always_eager=eager,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
    )
    if acks_late:
        app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True)
    if visibility_timeout is not None:
        app.conf.broker_transport_options = {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        }
    if confirm_publish:
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "confirm_publish": True,
        }
    tasks = register_tasks(app)
    app.finalize(auto=True)
    if install:
        koherent.celery.install(app)
    return app, tasks
