"""The app module of the worker (and beat) processes the tests start: ``celery -A`` this.

Configured by environment variables set by :mod:`tests.celery.harness`.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from tests.celery.project import make_app  # noqa: E402

logging.basicConfig(
    stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

if os.environ.get("KOHERENT_CELERY_SENTRY") == "1":
    from tests.celery.sentry import init_sentry

    init_sentry()

app, tasks = make_app(
    os.environ["KOHERENT_CELERY_KEY"],
    broker=os.environ["KOHERENT_CELERY_BROKER"],
    backend=os.environ["KOHERENT_CELERY_BACKEND"],
    queue=os.environ["KOHERENT_CELERY_QUEUE"],
    install=os.environ.get("KOHERENT_CELERY_INSTALL", "1") == "1",
    acks_late=os.environ.get("KOHERENT_CELERY_ACKS_LATE") == "1",
    confirm_publish=os.environ.get("KOHERENT_CELERY_CONFIRM_PUBLISH") == "1",
    visibility_timeout=(
        float(os.environ["KOHERENT_CELERY_VISIBILITY_TIMEOUT"])
        if os.environ.get("KOHERENT_CELERY_VISIBILITY_TIMEOUT")
        else None
    ),
)

if os.environ.get("KOHERENT_CELERY_BEAT_LABEL"):
    app.conf.beat_schedule = {
        "fresh-every-second": {
            "task": "kt.fresh",
            "schedule": 1.0,
            "args": (os.environ["KOHERENT_CELERY_BEAT_LABEL"],),
        }
    }
