"""Django's tasks framework: an audited task runs in the audit context it was enqueued under.

For ``django.tasks`` (Django 6.0 and newer) and the ``django-tasks`` backport (older Django),
with any backend: the immediate one, the database-backed one of ``django-tasks-db`` run by its
``db_worker`` command, or another. Mark each task::

    from koherent.django_tasks import task


    @task
    def send_receipt(order_id): ...

or audit a task made by Django's own decorator::

    from django.tasks import task
    from koherent.django_tasks import audited


    @audited
    @task(queue_name="emails")
    def send_receipt(order_id): ...

``send_receipt.enqueue(order.pk)`` under a context then stores the context, signed, with the
task; the run restores it (with the task result's id as ``task_id``) and resets it afterwards.
See docs/tasks.md. This subpackage is the only part of Koherent that imports a tasks framework.
It imports without one; ``task`` and ``audited`` then raise ``ImproperlyConfigured`` saying
what to install. It was ``koherent.tasks`` before 0.3.0, a name Celery's
``autodiscover_tasks()`` imports from every installed app: that path is now a deprecated alias
that loads nothing until one of its names is used.
"""

from __future__ import annotations

from koherent.django_tasks.audited import AuditedTask, audited, task
from koherent.django_tasks.kwarg import KWARG, ORIGIN, PURPOSE

__all__ = ["KWARG", "ORIGIN", "PURPOSE", "AuditedTask", "audited", "task"]
