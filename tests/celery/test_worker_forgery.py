"""Headers a worker must refuse: forged, tampered, signed with another key, copied from
another task, truncated, garbage. None of them crashes the worker or attributes a change;
each refusal is logged with the task id and the reason.

Forged values are written *below* Koherent (see the ``forge`` fixture), as someone with
write access to the broker could.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import koherent
from koherent._users import StaticUserRef
from koherent.celery.header import HEADER, PURPOSE, message_binding
from koherent.context import AuditContext, use
from koherent.signing import MAX_SIGNED_LENGTH, _bound, _current_signer, sign_context
from tests.celery.harness import Worker, wait_for
from tests.testapp.models import Order

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TIMEOUT = 60


def claim(user: Any) -> AuditContext:
    """The identity a forger claims."""
    return AuditContext(
        assignation_id="forged-op", app="forged-app", user_ref=StaticUserRef(user.pk)
    )


def write_binding(task_id: str, label: str) -> str:
    """What the header of ``kt.write(label)`` with id ``task_id`` is bound to."""
    return message_binding(task_id, "kt.write", [label], {})


def signed_raw(payload: str, bind: str) -> str:
    """``payload`` correctly signed for the message ``bind`` names, whatever it holds."""
    return f"{payload}:{_current_signer(PURPOSE).signature(_bound(bind, payload))}"


json_values = st.one_of(
    st.text(max_size=300),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=8), max_size=4),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)


@st.composite
def forgeries(draw: Any) -> tuple[str, Any]:
    """(kind, how) pairs; :func:`forge_value` turns them into a header for a task id."""
    kind = draw(
        st.sampled_from(
            [
                "tampered",
                "truncated",
                "wrong-key",
                "other-task",
                "other-purpose",
                "unsigned",
                "oversized",
                "signed-garbage",
                "signed-invalid",
                "garbage",
            ]
        )
    )
    if kind == "tampered":
        return kind, (draw(st.floats(0, 1, exclude_max=True)), draw(st.characters()))
    if kind == "truncated":
        return kind, draw(st.floats(0, 1, exclude_max=True))
    if kind == "wrong-key":
        return kind, draw(st.text(min_size=1, max_size=50).filter(lambda k: k.strip()))
    if kind in ("signed-garbage", "garbage"):
        return kind, draw(st.text(max_size=200) if kind == "signed-garbage" else json_values)
    return kind, None


def forge_value(kind: str, how: Any, bind: str, ctx: AuditContext) -> Any:
    """The forged header value of ``kind`` for the message whose binding is ``bind``
    (:func:`koherent.celery.header.message_binding`)."""
    valid = sign_context(ctx, bind=bind, purpose=PURPOSE)
    if kind == "tampered":
        position, character = how
        index = int(position * len(valid))
        if valid[index] == character:
            character = "A" if character != "A" else "B"
        return valid[:index] + character + valid[index + 1 :]
    if kind == "truncated":
        return valid[: int(how * len(valid))]
    if kind == "wrong-key":
        with override_settings(KOHERENT={"SIGNING_KEY": f"not-the-key-{how}"}):
            return sign_context(ctx, bind=bind, purpose=PURPOSE)
    if kind == "other-task":
        other = message_binding(str(uuid.uuid4()), "kt.write", ["x"], {})
        return sign_context(ctx, bind=other, purpose=PURPOSE)
    if kind == "other-purpose":
        return sign_context(ctx, bind=bind, purpose="tasks")
    if kind == "unsigned":
        return valid.rpartition(":")[0]
    if kind == "oversized":
        return valid + "x" * (MAX_SIGNED_LENGTH + 1)
    if kind == "signed-garbage":
        return signed_raw(f"9|{how}", bind)
    if kind == "signed-invalid":
        return signed_raw(f"1|not a valid id|app||{ctx.user_id}", bind)
    return how  # garbage


def assert_unattributed(label: str, task_id: str) -> None:
    row = Order.history.get(reference=label)
    assert (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
        None,
        None,
        None,
        None,
    ), label
    assert row.task_id == task_id


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(forgeries(), min_size=8, max_size=8))
def test_forged_headers_are_refused(
    cases: list[tuple[str, Any]], redis_worker: Worker, forge: dict[str, object], user: Any
) -> None:
    sent = []
    for kind, how in cases:
        task_id = str(uuid.uuid4())
        bind = write_binding(task_id, f"f-{task_id}")
        forge[task_id] = forge_value(kind, how, bind, claim(user))
        result = redis_worker.tasks.write.apply_async((f"f-{task_id}",), task_id=task_id)
        sent.append((kind, result))
    for kind, result in sent:
        seen = result.get(timeout=TIMEOUT)
        assert (seen["user_id"], seen["assignation_id"], seen["app"]) == (None, None, None), kind
        assert_unattributed(f"f-{result.id}", result.id)
    log = wait_for(
        lambda: (
            (text := redis_worker.log()) and all(f"[{r.id}]" in text for _, r in sent) and text
        ),
        what="the refusals in the worker log",
    )
    for kind, result in sent:
        line = next(line for line in log.splitlines() if f"[{result.id}]: audit context" in line)
        assert "header refused (" in line, (kind, line)
    assert redis_worker.alive()


def test_each_reason_is_logged(redis_worker: Worker, forge: dict[str, object], user: Any) -> None:
    expected = {
        "tampered": "bad-signature",
        "wrong-key": "bad-signature",
        "other-task": "bad-signature",
        "unsigned": "unsigned",
        "oversized": "oversized",
        "signed-garbage": "malformed",
        "signed-invalid": "invalid",
        "garbage": "not-a-string",
    }
    hows = {"tampered": (0.9, "~"), "wrong-key": "old", "signed-garbage": "x", "garbage": 42}
    results = {}
    for kind in expected:
        task_id = str(uuid.uuid4())
        bind = write_binding(task_id, f"f-{task_id}")
        forge[task_id] = forge_value(kind, hows.get(kind), bind, claim(user))
        results[kind] = redis_worker.tasks.write.apply_async((f"f-{task_id}",), task_id=task_id)
    for kind, result in results.items():
        result.get(timeout=TIMEOUT)
        assert_unattributed(f"f-{result.id}", result.id)

        def refused(r: Any = result, k: str = kind) -> bool:
            return f"[{r.id}]: audit context header refused ({expected[k]})" in redis_worker.log()

        wait_for(refused, what=f"the {kind} refusal")


def test_valid_header_below_koherent_is_accepted(
    redis_worker: Worker, forge: dict[str, object], user: Any
) -> None:
    """Control for the forgery tests: a correctly signed value put there the same way is
    accepted, so the refusals above come from the checks, not from the way of sending."""
    task_id = str(uuid.uuid4())
    forge[task_id] = sign_context(
        claim(user), bind=write_binding(task_id, "genuine"), purpose=PURPOSE
    )
    seen = redis_worker.tasks.write.apply_async(("genuine",), task_id=task_id).get(timeout=TIMEOUT)
    assert (seen["user_id"], seen["assignation_id"]) == (user.pk, "forged-op")


def test_caller_header_without_context_is_stripped(redis_worker: Worker, user: Any) -> None:
    task_id = str(uuid.uuid4())
    valid = sign_context(claim(user), bind=write_binding(task_id, "stripped"), purpose=PURPOSE)
    assert koherent.current().is_empty
    result = redis_worker.tasks.write.apply_async(
        ("stripped",), task_id=task_id, headers={HEADER: valid}
    )
    seen = result.get(timeout=TIMEOUT)
    assert seen["header_length"] is None  # it never reached the worker
    assert_unattributed("stripped", task_id)


def test_caller_header_is_overwritten_by_the_context(redis_worker: Worker, user: Any) -> None:
    task_id = str(uuid.uuid4())
    forged = sign_context(claim(user), bind=write_binding(task_id, "overwritten"), purpose=PURPOSE)
    with koherent.assignation(app="real-app") as ctx:
        result = redis_worker.tasks.write.apply_async(
            ("overwritten",), task_id=task_id, headers={HEADER: forged}
        )
    seen = result.get(timeout=TIMEOUT)
    assert (seen["assignation_id"], seen["app"], seen["user_id"]) == (
        ctx.assignation_id,
        "real-app",
        None,
    )


def test_unsignable_context_still_sends_the_task(
    redis_worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    broken = AuditContext(assignation_id="op-1", user_ref=StaticUserRef("line\nbreak"))
    with use(broken), caplog.at_level("WARNING"):
        result = redis_worker.tasks.write.delay("unsignable")
    seen = result.get(timeout=TIMEOUT)
    assert (seen["assignation_id"], seen["header_length"]) == (None, None)
    assert f"[{result.id}] is sent without its audit context" in caplog.text
