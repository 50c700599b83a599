"""Celery integration: the audit context of the code that sends a task is the task's context.

Enable it for every task of an app, in the module that makes the app::

    import koherent.celery

    app = Celery("proj")
    koherent.celery.install(app)

or task by task, with :func:`audited` or :class:`KoherentTask`. See docs/celery.md.

This subpackage is the only part of Koherent that imports Celery.
"""

from __future__ import annotations

from koherent.extras import require

require("koherent.celery", "celery", "celery", "kombu")

from koherent.celery.header import HEADER
from koherent.celery.options import KoherentTask, TaskOptions, audited
from koherent.celery.receivers import install, installed_apps

__all__ = ["HEADER", "KoherentTask", "TaskOptions", "audited", "install", "installed_apps"]
