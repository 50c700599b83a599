"""Switching between the Celery hooks of the contenders: none, Koherent, django-guid.

Each library connects its receivers to Celery's ``before_task_publish``, ``task_prerun`` and
``task_postrun`` signals. :func:`select` disconnects every contender's receivers and connects
the chosen one's, so a process runs exactly one library's hooks (or none).
"""

from __future__ import annotations

import functools
import os
from typing import Any

MODES = ("none", "koherent", "guid")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("KOHERENT_REDIS_URL") or DEFAULT_REDIS_URL


@functools.cache
def redis() -> Any:
    import redis as redis_lib

    return redis_lib.Redis.from_url(redis_url())


def _guid_receivers() -> list[tuple[Any, Any]]:
    from celery.signals import before_task_publish, task_postrun, task_prerun
    from django_guid.integrations.celery import signals

    return [
        (before_task_publish, signals.publish_task_from_worker_or_request),
        (task_prerun, signals.worker_prerun),
        (task_postrun, signals.clean_up),
    ]


_KOHERENT_UIDS = ("koherent.celery.publish", "koherent.celery.prerun", "koherent.celery.postrun")


def _disconnect_all() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    for signal, receiver in _guid_receivers():
        signal.disconnect(receiver)
    for signal, uid in zip(
        (before_task_publish, task_prerun, task_postrun), _KOHERENT_UIDS, strict=True
    ):
        signal.disconnect(dispatch_uid=uid)


def select(mode: str, app: Any) -> None:
    """Run ``mode``'s hooks (and only them) in this process."""
    if mode not in MODES:
        raise ValueError(f"unknown propagation mode {mode!r}; one of {', '.join(MODES)}")
    _disconnect_all()
    if mode == "koherent":
        import koherent.celery

        koherent.celery.install(app)
    elif mode == "guid":
        for signal, receiver in _guid_receivers():
            signal.connect(receiver)


def seen() -> dict[str, Any]:
    """The context values a task sees: Koherent's assignation and django-guid's id."""
    from django_guid import get_guid

    import koherent

    return {"koherent": koherent.get_current_assignation_id(), "guid": get_guid()}
