"""A genuine header copied, with its task id, into messages of someone else's making.

Someone with write access to Redis (and no ``SECRET_KEY``) reads one genuine message of user
A's, and pushes new messages with plain redis-py that carry its ``koherent_context`` header
and its ``id``:

(A) the same task with other arguments;
(B) another task, with the same arguments;
(C) the same task and arguments, plus a ``callbacks`` entry of their choosing.

The header is bound to the task name, the arguments and the canvas options as well as the id,
so each runs unattributed, with a logged refusal, and the callback that the worker itself
publishes in (C) carries no context either. The control: the genuine message pushed back
unchanged, byte for byte, runs under user A's context, as a redelivery would (the signature
cannot tell an exact replay from a redelivery; docs/celery.md says so).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

import koherent
from koherent.celery.header import HEADER
from tests.celery.harness import Worker, wait_for
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@dataclass
class Genuine:
    """One genuine message of user A's, as it sat in Redis, taken out before any worker ran it."""

    envelope: dict[str, Any]
    body: list[Any]
    ctx: koherent.AuditContext

    @property
    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = self.envelope["headers"]
        return headers

    def crafted(
        self,
        *,
        task: str | None = None,
        args: list[Any] | None = None,
        callbacks: list[dict[str, Any]] | None = None,
    ) -> bytes:
        """A new message with this one's header and id, and the given changes."""
        envelope = json.loads(json.dumps(self.envelope))
        args_, kwargs, embed = json.loads(json.dumps(self.body))
        if task is not None:
            envelope["headers"]["task"] = task
        if args is not None:
            args_ = args
            envelope["headers"]["argsrepr"] = repr(tuple(args))
        if callbacks is not None:
            embed["callbacks"] = callbacks
        body = json.dumps([args_, kwargs, embed]).encode()
        envelope["body"] = base64.b64encode(body).decode()
        envelope["properties"]["delivery_tag"] = str(uuid.uuid4())
        return json.dumps(envelope).encode()


@pytest.fixture
def broker(redis_worker: Worker) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_worker.broker)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def genuine(redis_worker: Worker, broker: redis.Redis, user: Any) -> Iterator[Genuine]:
    """``kt.write("victim")`` sent by user A to a queue no worker reads, read back raw."""
    capture = f"koherent-test-capture-{uuid.uuid4().hex[:10]}"
    with koherent.assignation(user=user, app="victim-app") as ctx:
        result = redis_worker.tasks.write.apply_async(("victim",), queue=capture)
    try:
        raw = wait_for(lambda: broker.rpop(capture), what="the genuine message")
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        assert envelope["headers"]["id"] == result.id
        assert isinstance(envelope["headers"][HEADER], str)
        yield Genuine(envelope=envelope, body=body, ctx=ctx)
    finally:
        broker.delete(capture)


def push(worker: Worker, broker: redis.Redis, message: bytes) -> None:
    """Put ``message`` where the worker takes its next message from (kombu's Redis layout)."""
    broker.lpush(worker.queue, message)


def assert_not_stamped_with(ctx: koherent.AuditContext, user: Any, label: str) -> Any:
    row = Order.history.get(reference=label)
    assert row.history_user_id is None, label
    assert row.user_pk is None, label
    assert row.app is None, label
    assert row.assignation_id is None, label
    return row


def refusals(worker: Worker, task_id: str) -> list[str]:
    return [
        line
        for line in worker.log().splitlines()
        # The worker's log holds each record twice: formatted, and bare.
        if "WARNING koherent.celery" in line
        and f"[{task_id}]: audit context header refused (bad-signature)" in line
    ]


def test_copied_header_and_id_run_unattributed(
    redis_worker: Worker, broker: redis.Redis, genuine: Genuine, user: Any
) -> None:
    task_id = genuine.headers["id"]
    callback: dict[str, Any] = {
        "task": "kt.write",
        "args": ["attack-c-callback"],
        "kwargs": {},
        "options": {},
        "subtask_type": None,
        "immutable": True,
    }
    before = len(refusals(redis_worker, task_id))
    push(redis_worker, broker, genuine.crafted(args=["attack-a"]))  # (A)
    push(redis_worker, broker, genuine.crafted(task="kt.probe"))  # (B): writes "victim-0"
    push(redis_worker, broker, genuine.crafted(callbacks=[callback]))  # (C)
    wait_for(
        lambda: (
            Order.objects.filter(
                reference__in=["attack-a", "victim-0", "victim", "attack-c-callback"]
            ).count()
            == 4
        ),
        timeout=60,
        what="the crafted messages and the callback",
    )
    for label in ("attack-a", "victim-0", "victim"):
        row = assert_not_stamped_with(genuine.ctx, user, label)
        assert row.task_id == task_id, label  # run as the copied id, but as nobody
    # (C)'s callback was published by the worker under a fresh id, and carried no context.
    callback_row = assert_not_stamped_with(genuine.ctx, user, "attack-c-callback")
    assert callback_row.task_id != task_id
    assert Order.objects.get(reference="attack-c-callback").status == "None"  # no header
    # Nothing anywhere was written under user A's assignation or identity.
    assert not Order.history.filter(assignation_id=genuine.ctx.assignation_id).exists()
    assert not Order.history.filter(history_user_id=user.pk).exists()
    wait_for(
        lambda: len(refusals(redis_worker, task_id)) - before == 3,
        what="three logged refusals",
    )
    assert redis_worker.alive()


def test_the_unchanged_message_runs_as_a_redelivery_would(
    redis_worker: Worker, broker: redis.Redis, genuine: Genuine, user: Any
) -> None:
    """Control: the crafting keeps a valid message valid; an exact copy is not detectable."""
    push(redis_worker, broker, json.dumps(genuine.envelope).encode())
    wait_for(lambda: Order.objects.filter(reference="victim").exists(), what="the replay")
    row = Order.history.get(reference="victim")
    assert (row.history_user_id, row.app, row.assignation_id) == (
        user.pk,
        "victim-app",
        genuine.ctx.assignation_id,
    )
    assert row.task_id == genuine.headers["id"]
