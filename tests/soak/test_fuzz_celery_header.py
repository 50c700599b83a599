"""Fuzzing Koherent's Celery task header through the worker's own ``task_prerun`` receiver,
in process: random text, bytes and JSON, forged, tampered, truncated, oversized values, values
signed with another key, for another task or purpose, and genuine payloads whose claimed user
or assignation was swapped. None raises, none gives the task the claimed identity, each
refusal is logged once with the task id and the reason; only the correctly signed value is
accepted. (The same refusals through a real worker: tests/celery/test_worker_forgery.py.)"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from typing import Any

from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import koherent.celery
from koherent._users import StaticUserRef
from koherent.celery.header import HEADER, PURPOSE, message_binding
from koherent.celery.receivers import _installed_apps, on_task_postrun, on_task_prerun
from koherent.context import AuditContext, _current
from koherent.signing import MAX_SIGNED_LENGTH, sign_context
from tests.celery.test_worker_forgery import forge_value, forgeries, json_values
from tests.soak import support

pytestmark = [support.soak]

EXAMPLES = support.size(10_000, 200)
#: The identities values claim (drawn, so genuine values differ from one example to the next).
claims = st.builds(
    lambda user, assignation, app: AuditContext(
        assignation_id=assignation, app=app, user_ref=StaticUserRef(user)
    ),
    st.integers(1, 10**9),
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,30}", fullmatch=True),
    st.sampled_from(["forged-app", "web", "mobile"]),
)


def binding(task_id: str) -> str:
    """What the header of a ``fuzz.write()`` message with id ``task_id`` is bound to."""
    return message_binding(task_id, "fuzz.write", [], {})


def swapped(task_id: str, claim: AuditContext, field: int, replacement: str) -> str:
    """A genuine value for ``task_id`` with one payload field replaced, signature kept."""
    signed = sign_context(claim, bind=binding(task_id), purpose=PURPOSE)
    payload, _, signature = signed.rpartition(":")
    parts = payload.split("|")
    parts[field] = replacement
    return "|".join(parts) + ":" + signature


@st.composite
def header_cases(draw: Any) -> tuple[str, Any]:
    """(kind, how); :func:`header_value` makes the value for a task id."""
    kind = draw(
        st.sampled_from(["genuine", "forgery", "swapped", "text", "bytes", "json", "huge"]),
    )
    if kind == "forgery":
        return kind, draw(forgeries())
    if kind == "swapped":
        field = draw(st.sampled_from([1, 2, 3, 4]))  # assignation, app, parent, user
        return kind, (field, draw(st.sampled_from(["8", "other-op", "admin", "1", ""])))
    if kind == "text":
        return kind, draw(st.text(max_size=400))
    if kind == "bytes":
        return kind, draw(st.binary(max_size=200))
    if kind == "json":
        return kind, json.dumps(draw(json_values))
    if kind == "huge":
        return kind, draw(st.integers(MAX_SIGNED_LENGTH + 1, 20 * MAX_SIGNED_LENGTH))
    return kind, None


def header_value(kind: str, how: Any, task_id: str, claim: AuditContext) -> Any:
    genuine = sign_context(claim, bind=binding(task_id), purpose=PURPOSE)
    if kind == "genuine":
        return genuine
    if kind == "forgery":
        return forge_value(how[0], how[1], binding(task_id), claim)
    if kind == "swapped":
        field, replacement = how
        value = swapped(task_id, claim, field, replacement)
        return value + "!" if value == genuine else value  # the field already held that
    if kind == "huge":
        return genuine + "A" * (how - len(genuine))
    return how


def test_fuzz_celery_context_header() -> None:
    app = Celery("fuzz-header", set_as_current=False)
    app.conf.update(broker_url="memory://", task_default_queue=f"q-{uuid.uuid4().hex}")

    @app.task(name="fuzz.write")
    def write() -> None: ...

    koherent.celery.install(app)
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    handler = support.LogLines(logging.DEBUG)
    logger = logging.getLogger("koherent.celery")
    logger.addHandler(handler)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=header_cases(), claim=claims, task_uuid=st.uuids())
    def one(case: tuple[str, Any], claim: AuditContext, task_uuid: uuid.UUID) -> None:
        kind, how = case
        task_id = str(task_uuid)
        value = header_value(kind, how, task_id, claim)
        genuine = value == sign_context(claim, bind=binding(task_id), purpose=PURPOSE)
        handler.lines.clear()
        write.push_request(id=task_id, args=[], kwargs={}, is_eager=False, **{HEADER: value})
        try:
            on_task_prerun(task_id=task_id, task=write)  # must not raise
            ctx = _current.get()
        finally:
            on_task_postrun(task=write)
            write.pop_request()
        assert _current.get() is None
        assert ctx is not None
        assert ctx.task_id == task_id
        if genuine:
            assert (ctx.user_id, ctx.assignation_id, ctx.app) == (
                claim.user_id,
                claim.assignation_id,
                claim.app,
            )
            assert handler.lines == []
            outcomes["accepted"] += 1
            return
        # Refused: nothing of the claimed identity, one clear line.
        assert (ctx.user_id, ctx.assignation_id, ctx.app, ctx.parent_assignation_id) == (
            None,
            None,
            None,
            None,
        ), (kind, value)
        [line] = handler.lines
        assert f"[{task_id}]: audit context header refused (" in line, line
        reasons[line.split("header refused (")[1].split(")")[0]] += 1
        outcomes[f"refused-{kind}"] += 1

    try:
        one()
    finally:
        logger.removeHandler(handler)
        _installed_apps.discard(app)
        app.close()
    refused = sum(n for k, n in outcomes.items() if k.startswith("refused"))
    support.report(
        "fuzz-celery-context-header",
        examples=sum(outcomes.values()),
        accepted=outcomes["accepted"],
        refused=refused,
        misattributed=0,
        exceptions=0,
        reasons=dict(sorted(reasons.items())),
        refused_by_kind={k[8:]: n for k, n in sorted(outcomes.items()) if k != "accepted"},
    )
    assert outcomes["accepted"]
    assert refused
