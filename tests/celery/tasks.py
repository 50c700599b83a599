"""The tasks of the test project, registered on any Celery app by :func:`register_tasks`.

Every task records what it saw by writing an ``Order`` (a tracked model: its history row is
stamped by Koherent) and returning an observation. Names are fixed strings, so the test
process and the worker processes agree on them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from celery import Celery
from celery.exceptions import Reject
from django.db import InterfaceError, OperationalError, connection, transaction

import koherent
from koherent.celery import HEADER, KoherentTask, audited
from tests.testapp.models import Order

logger = logging.getLogger("tests.celery.tasks")


class TransientError(Exception):
    """Raised by the autoretry task until its last attempt."""


class SoakFailure(Exception):
    """Raised on purpose by ``kt.soak`` in ``fail`` mode."""


#: Set in the environment of a worker whose ``kt.hold`` tasks stop between their two writes.
HOLD_VARIABLE = "KOHERENT_CELERY_HOLD"


def observe(task: Any, label: str, total: int = 0) -> dict[str, Any]:
    """Write an ``Order`` named ``label`` and return what the task saw.

    The order's ``status`` holds the length of the context header the task received.
    """
    ctx = koherent.current()
    request = task.request
    header = request.get(HEADER) or (request.headers or {}).get(HEADER)
    length = len(header) if isinstance(header, str) else None
    Order.objects.create(reference=label, total=total, status=str(length))
    return {
        "label": label,
        "task_id": request.id,
        "parent_id": request.parent_id,
        "root_id": request.root_id,
        "retries": request.retries,
        "assignation_id": ctx.assignation_id,
        "app": ctx.app,
        "user_id": ctx.user_id,
        "context_task_id": ctx.task_id,
        "origin": ctx.origin,
        "header_length": length,
        "sentry_trace": bool(
            request.get("sentry-trace") or (request.headers or {}).get("sentry-trace")
        ),
    }


def register_tasks(app: Celery) -> SimpleNamespace:
    """Register the test tasks on ``app``; returns them by short name."""

    @app.task(shared=False, name="kt.ping")
    def ping() -> str:
        return "pong"

    @app.task(shared=False, name="kt.write", bind=True)
    def write(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    @app.task(shared=False, name="kt.spawn", bind=True)
    def spawn(self: Any, label: str) -> dict[str, Any]:
        seen = observe(self, label)
        seen["child_id"] = self.app.tasks["kt.write"].delay(f"{label}-child").id
        return seen

    @app.task(shared=False, name="kt.spawn_eager", bind=True)
    def spawn_eager(self: Any, label: str) -> dict[str, Any]:
        seen = observe(self, label)
        child = self.app.tasks["kt.write"].apply((f"{label}-child",))
        seen["child"] = child.get(disable_sync_subtasks=False)
        seen["after_child"] = koherent.current().as_dict()
        return seen

    @app.task(shared=False, name="kt.retrying", bind=True)
    def retrying(self: Any, label: str, attempts: int, countdown: float = 1) -> dict[str, Any]:
        seen = observe(self, f"{label}-{self.request.retries}", total=self.request.retries)
        if self.request.retries < attempts:
            raise self.retry(countdown=countdown, max_retries=attempts)
        return seen

    @app.task(shared=False, name="kt.retry_args", bind=True)
    def retry_args(self: Any, /, label: str, step: int = 0, **extra: Any) -> dict[str, Any]:
        """Retry twice with other arguments (``retry(args=..., kwargs=...)``): each attempt is
        a message with its own arguments, signed again by the worker that publishes it."""
        seen = observe(self, f"{label}-{step}", total=step)
        if step < 2:
            raise self.retry(args=(label, step + 1), kwargs={"note": f"after {step}"}, countdown=0)
        seen["kwargs"] = extra
        return seen

    @app.task(
        shared=False,
        name="kt.autoretrying",
        bind=True,
        autoretry_for=(TransientError,),
        retry_kwargs={"max_retries": 3, "countdown": 0},
    )
    def autoretrying(self: Any, label: str, attempts: int) -> dict[str, Any]:
        seen = observe(self, f"{label}-{self.request.retries}", total=self.request.retries)
        if self.request.retries < attempts:
            raise TransientError(label)
        return seen

    @app.task(shared=False, name="kt.failing", bind=True)
    def failing(self: Any, label: str) -> None:
        observe(self, label)
        raise ValueError(f"{label} fails on purpose")

    @app.task(shared=False, name="kt.errback_inline")
    def errback_inline(request: Any, exc: Any, traceback: Any) -> None:
        # Three arguments: Celery calls it in the worker, inside the failed task.
        Order.objects.create(reference=f"eb-in-{request.id}")

    @app.task(shared=False, name="kt.errback_published", bind=True)
    def errback_published(self: Any, task_id: str) -> dict[str, Any]:
        # Bound, one argument: Celery publishes it as a task of its own.
        return observe(self, f"eb-pub-{task_id}")

    @app.task(shared=False, name="kt.replacing", bind=True)
    def replacing(self: Any, label: str) -> Any:
        observe(self, label)
        raise self.replace(self.app.tasks["kt.write"].si(f"{label}-replacement"))

    @app.task(shared=False, name="kt.probe", bind=True)
    def probe(self: Any, label: str, mode: str = "ok") -> dict[str, Any]:
        """The leak probe: after writing, ``raise`` fails, ``retry`` retries once, ``reject``
        rejects the message."""
        seen = observe(self, f"{label}-{self.request.retries}")
        if mode == "raise":
            raise ValueError(f"{label} fails on purpose")
        if mode == "retry" and self.request.retries == 0:
            raise self.retry(countdown=0, max_retries=1)
        if mode == "reject":
            raise Reject(f"{label} rejected on purpose", requeue=False)
        return seen

    # Per-task opt-in (the app of the "optin" worker is not passed to install()).
    @app.task(shared=False, name="kt.optin_decorated", bind=True)
    @audited
    def optin_decorated(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    @app.task(shared=False, name="kt.optin_class", bind=True, base=KoherentTask)
    def optin_class(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    # Above the task decorator (the others: under it, the placement before 0.3.0).
    @audited(fresh_assignation=True, app="nightly", origin="beat")
    @app.task(shared=False, name="kt.fresh", bind=True)
    def fresh(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    @app.task(shared=False, name="kt.required", bind=True)
    @audited(require_context=True)
    def required(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    @app.task(
        shared=False,
        name="kt.required_class",
        bind=True,
        base=KoherentTask,
        koherent_require_context=True,
    )
    def required_class(self: Any, label: str) -> dict[str, Any]:
        return observe(self, label)

    @app.task(shared=False, name="kt.soak", bind=True, ignore_result=True)
    def soak(self: Any, label: str, mode: str = "ok", children: Sequence[str] = ()) -> None:
        """Write the order ``<label>.<attempt>``, send one ``kt.soak`` child ``<label>-c<n>``
        per mode in ``children``; then ``retry`` retries once, ``fail`` raises."""
        attempt = self.request.retries
        Order.objects.create(reference=f"{label}.{attempt}", status=mode, total=attempt)
        for n, child_mode in enumerate(children):
            self.delay(f"{label}-c{n}", child_mode)
        if mode == "retry" and attempt == 0:
            raise self.retry(countdown=0, max_retries=1)
        if mode == "fail":
            raise SoakFailure(f"{label} fails on purpose")

    @app.task(shared=False, name="kt.hold", bind=True, ignore_result=True)
    def hold(self: Any, label: str) -> None:
        """Write ``<label>.start``; on a worker with ``HOLD_VARIABLE`` set, stay there (until
        the worker is killed); else write ``<label>.done``."""
        Order.objects.create(reference=f"{label}.start", status=str(os.getpid()))
        if os.environ.get(HOLD_VARIABLE) == "1":
            time.sleep(300)
        Order.objects.create(reference=f"{label}.done", status=str(os.getpid()))

    @app.task(
        shared=False,
        name="kt.fault_write",
        bind=True,
        autoretry_for=(OperationalError, InterfaceError),
        retry_kwargs={"max_retries": 60, "countdown": 0.25},
    )
    def fault_write(self: Any, label: str, pause: float = 0.0, capture: str = "signal") -> str:
        """Write the order ``label`` and change it, in one transaction with ``pause`` seconds
        (in the database) between on the first attempt; retried when the database connection
        fails. Idempotent: an attempt finding the order written (its predecessor committed,
        the answer was lost) writes nothing. ``capture="trigger"`` writes a trigger-captured
        order (``tests.capture``'s ``FaultOrder``, PostgreSQL) instead of ``Order``."""
        model: Any = Order
        if capture == "trigger":
            from tests.capture.models import FaultOrder

            model = FaultOrder
        with transaction.atomic():
            if model.objects.filter(reference=label).exists():
                logger.info("fault_write %s: committed by an earlier attempt", label)
                return "already"
            order = model.objects.create(reference=label, total=self.request.retries)
            if pause and not self.request.retries:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_sleep(%s)", [pause])
            order.status = "done"
            order.save()
        return "written"

    @app.task(shared=False, name="kt.introspect")
    def introspect(pause: float = 0.0) -> dict[str, Any]:
        """The caches and live contexts of the process running it (``tests.soak.introspect``);
        ``pause`` keeps this pool process busy, so that a second call reaches another."""
        from tests.soak.introspect import snapshot

        time.sleep(pause)
        return snapshot()

    @app.task(shared=False, name="kt.leak", bind=True, ignore_result=True)
    def leak(self: Any, label: str) -> None:
        """Write ``<label>.0`` and keep the task's context past the task (negative control)."""
        from tests.soak.introspect import leak as keep

        Order.objects.create(reference=f"{label}.0")
        keep()

    @app.task(shared=False, name="kt.capture_update", bind=True)
    def capture_update(self: Any, name: str) -> dict[str, Any]:
        """Change a trigger-captured product with update() and with raw SQL (PostgreSQL)."""
        from django.db import connection
        from django.db.models import F

        from tests.capture.models import Product

        Product.objects.filter(name=name).update(price=F("price") + 1)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE capture_product SET stock = stock + 1 WHERE name = %s", [name])
        return observe(self, f"capture-{name}")

    @app.task(shared=False, name="kt.capture_three_ways", bind=True)
    def capture_three_ways(self: Any, name: str) -> dict[str, Any]:
        """Change a trigger-captured product three times, through ``save()`` (price + 10),
        ``queryset.update()`` (stock + 1) and raw SQL (price + 1): three history rows, each
        told apart by its values (PostgreSQL)."""
        from django.db import connection
        from django.db.models import F

        from tests.capture.models import Product

        product = Product.objects.get(name=name)
        product.price += 10
        product.save()
        Product.objects.filter(name=name).update(stock=F("stock") + 1)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE capture_product SET price = price + 1 WHERE name = %s", [name])
        ctx = koherent.current()
        return {"task_id": self.request.id, "assignation_id": ctx.assignation_id}

    @app.task(shared=False, name="kt.reserve", bind=True)
    def reserve(self: Any, label: str) -> dict[str, Any]:
        """``queryset.update()`` of the order ``label`` (captured: its history row is stamped)."""
        count = Order.objects.filter(reference=label).update(status="reserving")
        return {"task_id": self.request.id, "updated": count}

    return SimpleNamespace(
        capture_update=capture_update,
        capture_three_ways=capture_three_ways,
        reserve=reserve,
        ping=ping,
        fault_write=fault_write,
        introspect=introspect,
        leak=leak,
        soak=soak,
        hold=hold,
        write=write,
        spawn=spawn,
        spawn_eager=spawn_eager,
        retrying=retrying,
        retry_args=retry_args,
        autoretrying=autoretrying,
        failing=failing,
        errback_inline=errback_inline,
        errback_published=errback_published,
        replacing=replacing,
        probe=probe,
        optin_decorated=optin_decorated,
        optin_class=optin_class,
        fresh=fresh,
        required=required,
        required_class=required_class,
    )
