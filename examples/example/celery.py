"""The Celery app: ``celery -A example worker`` and ``celery -A example beat`` load it, and so
does the web process (example/__init__.py)."""

from __future__ import annotations

import os

from celery import Celery

import koherent.celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

app = Celery("example")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every task now runs in the audit context of the code that sent it: the request's user, app
# and assignation, and its own task id.
koherent.celery.install(app)
