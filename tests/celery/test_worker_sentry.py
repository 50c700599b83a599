"""With sentry-sdk's Celery integration active on both sides, the context still arrives.

Sentry patches ``apply_async``, ``send_task`` and the worker's tracer, sends its own headers
both at the top level and in a nested ``headers`` dict, and wraps every task in a scope.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.celery.harness import ROOT, Worker
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_context_arrives_with_sentry_active(sentry_worker: Worker, user: Any) -> None:
    published = subprocess.run(
        [sys.executable, "-m", "tests.celery.sentry_publisher", str(user.pk), "sentry-op"],
        cwd=ROOT,
        env=sentry_worker.environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert published.returncode == 0, published.stderr
    ids = json.loads(published.stdout.strip().splitlines()[-1])

    seen = {name: sentry_worker.app.AsyncResult(i).get(timeout=60) for name, i in ids.items()}
    seen["child"] = sentry_worker.app.AsyncResult(seen["spawn"]["child_id"]).get(timeout=60)
    for name, observed in seen.items():
        # Sentry's propagation really ran (its trace header reached the task)...
        assert observed["sentry_trace"], name
        # ...and so did Koherent's.
        assert (observed["user_id"], observed["app"], observed["assignation_id"]) == (
            user.pk,
            "sentry-app",
            "sentry-op",
        ), name
    for label in ("sentry-delay", "sentry-headers", "sentry-spawn", "sentry-spawn-child"):
        row = Order.history.get(reference=label)
        assert (row.assignation_id, row.app, row.history_user_id) == (
            "sentry-op",
            "sentry-app",
            user.pk,
        )
