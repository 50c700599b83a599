"""Publishes tasks from a process with sentry-sdk's Celery integration active, inside a
Sentry transaction and a Koherent context; prints the task ids as JSON.

Run by ``test_worker_sentry.py`` in a subprocess, because sentry-sdk patches Celery for the
rest of the process it is initialised in.

Usage: ``python -m tests.celery.sentry_publisher USER_PK ASSIGNATION_ID``
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

import sentry_sdk  # noqa: E402

import koherent  # noqa: E402
from tests.celery.project import make_app  # noqa: E402
from tests.celery.sentry import init_sentry  # noqa: E402


def main() -> None:
    user_pk, assignation_id = int(sys.argv[1]), sys.argv[2]
    init_sentry()
    _, tasks = make_app(
        "sentry-publisher",
        broker=os.environ["KOHERENT_CELERY_BROKER"],
        backend=os.environ["KOHERENT_CELERY_BACKEND"],
        queue=os.environ["KOHERENT_CELERY_QUEUE"],
    )
    with (
        sentry_sdk.start_transaction(op="test", name="publish"),
        koherent.context(user=user_pk, app="sentry-app", assignation_id=assignation_id),
    ):
        ids = {
            "delay": tasks.write.delay("sentry-delay").id,
            "headers": tasks.write.apply_async(("sentry-headers",), headers={"custom": "v"}).id,
            "spawn": tasks.spawn.delay("sentry-spawn").id,
        }
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
