"""A task sent by a request that may not join the assignation it names goes without it.

The request is anonymous when the middleware sees it (so it is not refused yet: the view could
still authenticate), and names user A's assignation; the view sends a task. The access verdict
is asked before the message leaves (``koherent.access.may_leave``), refuses, and the task runs
on the real worker without A's assignation or identity. The control: user A's own request.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

import koherent
from tests.celery.harness import Worker
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.celery.views"),
]

TIMEOUT = 60


def owned_by(user: Any) -> str:
    with koherent.assignation(f"owned-{uuid.uuid4().hex[:12]}", user=user) as ctx:
        Order.objects.create(reference=f"opened-{ctx.assignation_id}")
    assert ctx.assignation_id is not None
    return ctx.assignation_id


def test_anonymous_request_sends_no_context_for_anothers_assignation(
    redis_worker: Worker, client: Any, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assignation_id = owned_by(user)
    with caplog.at_level(logging.WARNING, logger="koherent"):
        response = client.post(
            f"/enqueue/?worker={redis_worker.key}&label=exit-anonymous",
            HTTP_X_ASSIGNATION_ID=assignation_id,
        )
    assert response.status_code == 200
    seen = redis_worker.app.AsyncResult(response.json()["task_id"]).get(timeout=TIMEOUT)
    assert (seen["assignation_id"], seen["user_id"], seen["header_length"]) == (None, None, None)
    row = Order.history.get(reference="exit-anonymous")
    assert (row.assignation_id, row.history_user_id) == (None, None)
    [line] = [r.getMessage() for r in caplog.records if "goes without the audit" in r.message]
    assert line.startswith("koherent: celery task kt.write[")
    assert f"an anonymous request may not join assignation '{assignation_id}'" in line


def test_the_owners_request_sends_it(redis_worker: Worker, client: Any, user: Any) -> None:
    """Control: the same request by user A carries A's context to the worker."""
    assignation_id = owned_by(user)
    client.force_login(user)
    response = client.post(
        f"/enqueue/?worker={redis_worker.key}&label=exit-owner",
        HTTP_X_ASSIGNATION_ID=assignation_id,
    )
    seen = redis_worker.app.AsyncResult(response.json()["task_id"]).get(timeout=TIMEOUT)
    assert (seen["assignation_id"], seen["user_id"]) == (assignation_id, user.pk)
