"""The Celery app of the propagation scenario, for its publisher and its workers.

``KOHERENT_BENCH_PROPAGATION`` (``none``, ``koherent`` or ``guid``) says which library's hooks
a worker runs; the publisher switches them itself (:mod:`benchmarks.propagation`). The broker
is the Redis of ``KOHERENT_REDIS_URL``. Start a worker as the scenario does::

    celery -A benchmarks.celery_app worker -P solo -Q <queue>
"""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from celery import Celery  # noqa: E402

from benchmarks import propagation  # noqa: E402

app = Celery("koherent_bench")
app.conf.update(
    broker_url=propagation.redis_url(),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)
propagation.select(os.environ.get("KOHERENT_BENCH_PROPAGATION", "none"), app)


@app.task(name="bench.noop")
def noop() -> None:
    """The task measured: nothing but its hooks."""


@app.task(name="bench.report")
def report(key: str) -> None:
    """Say, in a Redis list, which context this task ran in (the last task of a batch)."""
    propagation.redis().rpush(key, json.dumps(propagation.seen()))


def tasks() -> dict[str, Any]:
    return {"noop": noop, "report": report}
