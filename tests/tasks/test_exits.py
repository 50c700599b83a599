"""A task enqueued by a request that may not join the assignation it names goes without it.

The request is anonymous when the middleware sees it and names user A's assignation; its view
enqueues an audited task for the real ``db_worker``. The access verdict is asked before the
task is stored (``koherent.access.may_leave``): it refuses, and the task runs without A's
assignation or identity. The control: user A's own request.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

import koherent
from tests.tasks import jobs
from tests.tasks.worker import DbWorker
from tests.testapp.models import Order

pytestmark = [
    pytest.mark.processes,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.tasks.views"),
]


def owned_by(user: Any) -> str:
    with koherent.assignation(f"owned-{uuid.uuid4().hex[:12]}", user=user) as ctx:
        Order.objects.create(reference=f"opened-{ctx.assignation_id}")
    assert ctx.assignation_id is not None
    return ctx.assignation_id


def run(db_worker: DbWorker, client: Any, label: str, assignation_id: str) -> Any:
    response = client.post(
        f"/enqueue/?queue={db_worker.queue}&label={label}", HTTP_X_ASSIGNATION_ID=assignation_id
    )
    assert response.status_code == 200
    result = db_worker.task(jobs.write).get_result(response.json()["result_id"])
    db_worker.wait([result])
    assert result.status == "SUCCESSFUL", db_worker.log()[-3000:]
    return result.return_value


def test_anonymous_request_enqueues_without_anothers_assignation(
    db_worker: DbWorker, client: Any, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assignation_id = owned_by(user)
    with caplog.at_level(logging.WARNING, logger="koherent"):
        seen = run(db_worker, client, "exit-anonymous", assignation_id)
    assert (seen["assignation_id"], seen["user_id"], seen["app"]) == (None, None, None)
    row = Order.history.get(reference="exit-anonymous")
    assert (row.assignation_id, row.history_user_id) == (None, None)
    [line] = [r.getMessage() for r in caplog.records if "goes without the audit" in r.message]
    assert line.startswith("koherent: task tests.tasks.jobs.write goes without")
    assert f"an anonymous request may not join assignation '{assignation_id}'" in line


def test_the_owners_request_enqueues_with_it(db_worker: DbWorker, client: Any, user: Any) -> None:
    """Control: the same request by user A carries A's context to the worker."""
    assignation_id = owned_by(user)
    client.force_login(user)
    seen = run(db_worker, client, "exit-owner", assignation_id)
    assert (seen["assignation_id"], seen["user_id"]) == (assignation_id, user.pk)
