"""Values under the reserved argument that must be refused: forged, tampered, signed with
another key or for another use, moved from another task or other arguments, truncated,
garbage. None attributes a change or stops the task; each refusal is logged with the task and
the reason. The real worker's side is in test_worker.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import koherent
from koherent.django_tasks import KWARG
from tests.tasks import jobs
from tests.tasks.forgeries import REASONS, claim, forge, genuine
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def unattributed(label: str) -> bool:
    row = Order.history.get(reference=label)
    return (row.assignation_id, row.app, row.history_user_id, row.user_pk) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("kind", list(REASONS))
def test_each_forgery_is_refused_with_its_reason(
    kind: str, user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    label = f"forged-{kind}"
    value = forge(kind, jobs.write.module_path, [label], claim(user.pk))
    with caplog.at_level(logging.WARNING, logger="koherent.tasks"):
        seen = jobs.write.call(label, **{KWARG: value})
    assert (seen["assignation_id"], seen["user_id"], seen["app"]) == (None, None, None)
    assert unattributed(label)
    assert f"task {jobs.write.module_path}[None]: audit context refused ({REASONS[kind]})" in (
        caplog.text
    )


def test_a_refused_value_does_not_fall_back_to_the_callers_context(user: Any) -> None:
    value = forge("tampered", jobs.write.module_path, ["in-context"], claim(user.pk))
    with koherent.assignation(app="caller"):
        seen = jobs.write.call("in-context", **{KWARG: value})
    assert (seen["assignation_id"], seen["app"], seen["origin"]) == (None, None, "tasks")


def test_genuine_value_given_the_same_way_is_accepted(user: Any) -> None:
    """Control: the refusals come from the checks, not from the way the value is given."""
    value = genuine(jobs.write.module_path, ["genuine"], claim(user.pk))
    seen = jobs.write.call("genuine", **{KWARG: value})
    assert (seen["assignation_id"], seen["app"], seen["user_id"]) == (
        "forged-op",
        "forged-app",
        user.pk,
    )


json_values = st.one_of(
    st.text(max_size=300),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.text(max_size=8), max_size=4),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    position=st.floats(0, 1, exclude_max=True),
    character=st.characters(),
    garbage=json_values,
)
def test_random_tampering_and_garbage_never_verify(
    position: float, character: str, garbage: Any, user: Any
) -> None:
    ctx = claim(user.pk)
    for value in (
        forge("tampered", jobs.echo_kwargs.module_path, [], ctx, (position, character)),
        forge("truncated", jobs.echo_kwargs.module_path, [], ctx, position),
        forge("signed-garbage", jobs.echo_kwargs.module_path, [], ctx, str(garbage)),
        garbage,
    ):
        with koherent.assignation(app="outer"):
            seen = jobs.echo_kwargs.call(**{KWARG: value})
        assert seen["kwargs"] == []
        assert (seen["assignation_id"], seen["app"], seen["user_id"]) == (None, None, None)
