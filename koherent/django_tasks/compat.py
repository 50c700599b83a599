"""The tasks frameworks Koherent works with: Django's own ``django.tasks`` (Django 6.0 and
newer) and ``django_tasks``, its backport for older Django (the ``django-tasks`` package).

Both are loaded when both are installed, so tasks of either kind can be audited. This module is
the only part of Koherent that imports them.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Framework:
    """One tasks framework: its ``Task`` class, ``task`` decorator, backends and signals."""

    name: str
    task_backends: Any
    task_class: type[Any]
    task: Any
    task_context_class: type[Any]
    task_started: Any
    task_finished: Any


def _load(package: str) -> Framework | None:
    try:
        if importlib.util.find_spec(package) is None:
            return None
        module = importlib.import_module(package)
        base = importlib.import_module(f"{package}.base")
        signals = importlib.import_module(f"{package}.signals")
    except ImportError:
        return None
    return Framework(
        name=package,
        task_backends=module.task_backends,
        task_class=base.Task,
        task=base.task,
        task_context_class=base.TaskContext,
        task_started=signals.task_started,
        task_finished=signals.task_finished,
    )


#: The frameworks installed here, Django's own first.
FRAMEWORKS: tuple[Framework, ...] = tuple(
    framework for framework in (_load("django.tasks"), _load("django_tasks")) if framework
)


def require() -> tuple[Framework, ...]:
    """The installed frameworks; raises ``ImproperlyConfigured`` when there is none.

    Importing ``koherent.django_tasks`` never fails for want of a framework (a project
    without one may import it, through a module that also serves one that has one); using
    it does.
    """
    if not FRAMEWORKS:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "koherent.django_tasks needs Django's tasks framework: Django 6.0 or newer, or the "
            "django-tasks package (pip install 'koherent[tasks]')"
        )
    return FRAMEWORKS


def framework_of(task: object) -> Framework | None:
    """The framework ``task`` is a ``Task`` of, or ``None``."""
    for framework in FRAMEWORKS:
        if isinstance(task, framework.task_class):
            return framework
    return None
