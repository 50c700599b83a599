"""The tasks of the test project for Django's tasks framework (module-level, as the framework
requires). Each writes an ``Order`` named after its label (a tracked model: Koherent stamps its
history row) and returns the audit context it saw."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import koherent
from koherent.django_tasks import audited, task
from koherent.django_tasks.compat import FRAMEWORKS
from tests.testapp.models import Order

#: The framework's own ``@task`` (Django's, or the backport's).
if TYPE_CHECKING:  # Framework.task is typed Any; the backport's decorator has its signature
    from django_tasks import task as framework_task
else:
    framework_task = FRAMEWORKS[0].task


def seen() -> dict[str, Any]:
    ctx = koherent.current()
    return {
        "assignation_id": ctx.assignation_id,
        "app": ctx.app,
        "user_id": ctx.user_id,
        "task_id": ctx.task_id,
        "origin": ctx.origin,
    }


@task
def write(label: str, total: int = 0) -> dict[str, Any]:
    Order.objects.create(reference=label, total=total)
    return seen()


@task
def fail(label: str) -> None:
    Order.objects.create(reference=label)
    raise ValueError(f"{label} fails on purpose")


@task
async def write_async(label: str) -> dict[str, Any]:
    await Order.objects.acreate(reference=label)
    return seen()


@audited
@framework_task(takes_context=True)
def write_with_context(context: Any, label: str) -> dict[str, Any]:
    Order.objects.create(reference=label)
    return {**seen(), "result_id": str(context.task_result.id)}


@task
def echo_kwargs(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments the function itself receives, and its context; writes nothing."""
    return {"kwargs": sorted(kwargs), **seen()}


@framework_task
def plain(label: str) -> dict[str, Any]:
    """Not audited."""
    Order.objects.create(reference=label)
    return seen()
