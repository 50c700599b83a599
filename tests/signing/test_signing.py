"""The signed text form of an audit context: round trip, every refusal, keys, cost."""

from __future__ import annotations

import datetime as _dt
import hashlib as _hashlib
import json as _json
import pickle
import uuid
from decimal import Decimal
from typing import Any

import pytest
from celery import signature as _celery_signature
from django.core.signing import Signer
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from kombu.exceptions import DecodeError as _DecodeError
from kombu.serialization import dumps as _kombu_dumps
from kombu.serialization import loads as _kombu_loads

from koherent._users import StaticUserRef, user_ref_for
from koherent._validation import MAX_ASSIGNATION_ID_LENGTH
from koherent.context import AuditContext
from koherent.exceptions import InvalidSignedContext
from koherent.signing import (
    MAX_SIGNED_LENGTH,
    _bound,
    _current_signer,
    arguments_digest,
    sign_context,
    sign_work,
    verify_context,
    verify_work,
    work_binding,
)

TASK = "5f0c1c9e-4a57-4b0e-9d0f-2b1f1c7d9a11"


def ctx(**fields: Any) -> AuditContext:
    fields.setdefault("assignation_id", "op-1")
    fields.setdefault("app", "backoffice")
    user = fields.pop("user", 42)
    return AuditContext(user_ref=None if user is None else user_ref_for(user), **fields)


def reason(value: object, **kwargs: Any) -> str:
    with pytest.raises(InvalidSignedContext) as info:
        verify_context(value, **kwargs)
    return info.value.reason


def test_round_trip() -> None:
    original = ctx(parent_assignation_id="op-0", task_id="ignored", origin="request")
    value = sign_context(original, bind=TASK, purpose="celery")
    back = verify_context(value, bind=TASK, purpose="celery")
    assert (back.assignation_id, back.app, back.parent_assignation_id) == (
        "op-1",
        "backoffice",
        "op-0",
    )
    assert back.user_id == 42
    assert isinstance(back.user_id, int)  # converted to the user model's primary key type
    # The receiver sets these itself.
    assert (back.task_id, back.origin) == (None, None)


def test_empty_fields_are_none() -> None:
    back = verify_context(sign_context(AuditContext(app="only-app")))
    assert back == AuditContext(app="only-app")
    assert back.user_ref is None


def test_value_is_small_and_readable() -> None:
    value = sign_context(ctx(assignation_id=str(uuid.uuid4())), bind=TASK, purpose="celery")
    assert len(value) < 110
    assert value.startswith("1|")
    assert "|backoffice|" in value


def test_signatures_are_djangos() -> None:
    signer = _current_signer("celery")
    reference = Signer(key=signer.key, salt=signer.salt)
    for message in ("", "a", "1|op|app||5", "ünïcode"):
        assert signer.signature(message) == reference.signature(message)
    value = sign_context(ctx(), bind=TASK, purpose="celery")
    payload, _, signature = value.rpartition(":")
    assert reference.unsign(f"{_bound(TASK, payload)}:{signature}") == _bound(TASK, payload)


def test_user_pk_may_hold_separators() -> None:
    """The primary key comes last, so ``|`` and ``:`` in it cannot shift the other fields."""
    value = sign_context(AuditContext(app="x", user_ref=StaticUserRef("weird|pk:with|bars")))
    payload, _, _ = value.rpartition(":")
    assert payload == "1||x||weird|pk:with|bars"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "missing"),
        (42, "not-a-string"),
        (["1|op"], "not-a-string"),
        ("x" * (MAX_SIGNED_LENGTH + 1), "oversized"),
        ("1|op-1|backoffice||42", "unsigned"),
        ("", "unsigned"),
        ("1|op-1|backoffice||42:" + "A" * 43, "bad-signature"),
        ("1|op-1|backoffice||42:short", "bad-signature"),
    ],
)
def test_refusals(value: object, expected: str) -> None:
    assert reason(value, bind=TASK) == expected


def test_tampered() -> None:
    value = sign_context(ctx(user=42), bind=TASK)
    assert reason(value.replace("||42:", "||43:"), bind=TASK) == "bad-signature"


def test_bound_to_one_task_and_one_purpose() -> None:
    value = sign_context(ctx(), bind=TASK, purpose="celery")
    assert reason(value, bind=str(uuid.uuid4()), purpose="celery") == "bad-signature"
    assert reason(value, bind=TASK, purpose="tasks") == "bad-signature"
    assert reason(value, bind="", purpose="celery") == "bad-signature"
    # The length prefix keeps bindings apart that would otherwise run together.
    assert reason(sign_context(ctx(), bind="ab"), bind="a") == "bad-signature"


def signed(payload: str, bind: str = TASK) -> str:
    return f"{payload}:{_current_signer('').signature(_bound(bind, payload))}"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("2|op|app||5", "malformed"),
        ("1|op|app", "malformed"),
        ("garbage", "malformed"),
        ("1|not valid|app||5", "invalid"),
        ("1|op|bad app||5", "invalid"),
        ("1|op|app|bad parent|5", "invalid"),
        ("1|op|app||not-an-int", "invalid"),  # the test project's users have int pks
        ("1|op|app||" + "9" * 65, "invalid"),
    ],
)
def test_signed_but_refused(payload: str, expected: str) -> None:
    assert reason(signed(payload), bind=TASK) == expected
    assert verify_context(signed("1|op|app||5"), bind=TASK).user_id == 5  # control


def test_wrong_key_and_rotation(settings: Any) -> None:
    settings.SECRET_KEY = "old-key"
    old = sign_context(ctx(), bind=TASK)
    settings.SECRET_KEY = "new-key"
    assert reason(old, bind=TASK) == "bad-signature"
    settings.SECRET_KEY_FALLBACKS = ["old-key"]
    assert verify_context(old, bind=TASK).assignation_id == "op-1"
    # New values are signed with the new key only.
    new = sign_context(ctx(), bind=TASK)
    settings.SECRET_KEY_FALLBACKS = []
    assert verify_context(new, bind=TASK).assignation_id == "op-1"


def test_dedicated_key(settings: Any) -> None:
    settings.KOHERENT = {"SIGNING_KEY": "koherent-key"}
    value = sign_context(ctx(), bind=TASK)
    settings.KOHERENT = {}
    assert reason(value, bind=TASK) == "bad-signature"  # not signed with SECRET_KEY
    settings.KOHERENT = {"SIGNING_KEY": "rotated", "SIGNING_KEY_FALLBACKS": ["koherent-key"]}
    assert verify_context(value, bind=TASK).app == "backoffice"
    # With a key of its own, SECRET_KEY_FALLBACKS are not Koherent's fallbacks.
    settings.KOHERENT = {"SIGNING_KEY": "rotated"}
    settings.SECRET_KEY_FALLBACKS = ["koherent-key"]
    assert reason(value, bind=TASK) == "bad-signature"


@pytest.mark.parametrize(
    "bad",
    [
        AuditContext(app="not valid"),
        AuditContext(assignation_id="a b"),
        AuditContext(parent_assignation_id="x|y"),
        AuditContext(user_ref=StaticUserRef("line\nbreak")),
        AuditContext(user_ref=StaticUserRef(True)),
        AuditContext(user_ref=StaticUserRef("x" * 65)),
    ],
)
def test_unsignable(bad: AuditContext) -> None:
    with pytest.raises(InvalidSignedContext) as info:
        sign_context(bad)
    assert info.value.reason == "invalid"


def test_error_pickles_with_its_reason() -> None:
    error = InvalidSignedContext(InvalidSignedContext.UNSIGNED, "no signature")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, str(copy)) == ("unsigned", str(error))
    assert isinstance(copy, ValueError)


ids = st.from_regex(
    rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ASSIGNATION_ID_LENGTH - 1}}}", fullmatch=True
)
apps = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,99}", fullmatch=True)


@examples(max_examples=200)
@given(
    assignation_id=st.none() | ids,
    app=st.none() | apps,
    parent=st.none() | ids,
    user=st.none() | st.integers(min_value=1, max_value=2**62),
    bind=st.text(max_size=40),
)
def test_any_valid_context_round_trips(
    assignation_id: str | None, app: str | None, parent: str | None, user: int | None, bind: str
) -> None:
    original = AuditContext(
        assignation_id=assignation_id,
        app=app,
        parent_assignation_id=parent,
        user_ref=None if user is None else StaticUserRef(user),
    )
    assert verify_context(sign_context(original, bind=bind), bind=bind) == original


@examples(max_examples=300)
@given(value=st.text(max_size=1200) | st.binary(max_size=50) | st.integers())
def test_anything_else_is_refused_cleanly(value: object) -> None:
    with pytest.raises(InvalidSignedContext):
        verify_context(value, bind=TASK)


def test_a_lone_surrogate_is_refused_not_raised() -> None:
    value = sign_context(ctx(), bind=TASK)
    with pytest.raises(InvalidSignedContext) as refused:
        verify_context("\ud800" + value[1:], bind=TASK)
    assert refused.value.reason == InvalidSignedContext.MALFORMED


@examples(max_examples=200)
@given(position=st.integers(min_value=0), replacement=st.characters())
def test_every_change_is_detected(position: int, replacement: str) -> None:
    value = sign_context(ctx(), bind=TASK)
    index = position % len(value)
    changed = value[:index] + replacement + value[index + 1 :]
    if changed != value:
        with pytest.raises(InvalidSignedContext):
            verify_context(changed, bind=TASK)
    with pytest.raises(InvalidSignedContext):
        verify_context(value[:index], bind=TASK)  # truncated


# -- Binding to the work: the canonical digest survives the serializers ---------------------------


def _through(serializer: str, value: Any) -> Any:
    """``value`` as the receiving end of a kombu serializer gets it."""
    content_type, encoding, data = _kombu_dumps(value, serializer=serializer)
    return _kombu_loads(data, content_type, encoding, accept={content_type})


#: JSON values with what JSON changes: tuples, non-text keys, nesting.
_json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.integers(-50, 50), inner, max_size=3)
    ),
    max_leaves=12,
)


@examples(max_examples=150, deadline=None)
@given(
    args=st.lists(_json_like, max_size=4), kwargs=st.dictionaries(st.text(max_size=8), _json_like)
)
def test_digest_survives_json_msgpack_and_pickle(args: list[Any], kwargs: dict[str, Any]) -> None:
    sent = arguments_digest(tuple(args), kwargs)
    for serializer in ("json", "msgpack", "pickle"):
        try:
            back_args, back_kwargs = _through(serializer, [tuple(args), kwargs])
        except _DecodeError:  # msgpack refuses int map keys: such a message never arrives
            assert serializer == "msgpack"
            continue
        assert arguments_digest(back_args, back_kwargs) == sent, serializer


def test_digest_survives_the_types_kombu_restores() -> None:
    values = [
        _dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=_dt.UTC),
        _dt.date(2026, 1, 2),
        _dt.time(3, 4, 5),
        Decimal("12.30"),
        uuid.UUID(TASK),
        b"bytes",
        b"\xff\x00 not utf-8",
        {1: "int key", "1.5": 2},
    ]
    canvas = {"callbacks": [_celery_signature("kt.write", args=("x",), immutable=True)]}
    sent = arguments_digest(values, {}, canvas)
    for serializer in ("json", "pickle"):
        assert arguments_digest(*_through(serializer, [values, {}, canvas])) == sent, serializer


def test_digest_tells_what_runs_apart() -> None:
    base = arguments_digest(["a", 1], {"k": True}, {"callbacks": None})
    for other in (
        (["a", 2], {"k": True}, {"callbacks": None}),
        ([1, "a"], {"k": True}, {"callbacks": None}),
        (["a", 1], {"k": 1}, {"callbacks": None}),  # True and 1 are not the same argument
        (["a", 1], {"k": True}, {"callbacks": [{"task": "evil"}]}),
        (["a", 1], {"k": True}, {"callbacks": None, "group": "g"}),
    ):
        assert arguments_digest(*other) != base, other


def test_tasks_binding_is_what_it_was() -> None:
    """The tasks framework's binding text is unchanged: values signed before still verify."""
    args, kwargs = [1, "x", [2.5, None], {"a": {"b": True}}], {"n": 3, "m": {"2": "x"}}
    legacy = _json.dumps(
        [args, kwargs], sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )
    expected = f"tests.tasks.jobs.write:{_hashlib.sha256(legacy.encode()).hexdigest()}"
    assert work_binding("tests.tasks.jobs.write", tuple(args), kwargs) == expected


def test_work_is_signed_for_its_name_id_and_arguments() -> None:
    value = sign_work(ctx(), purpose="celery", name="t", args=[1], kwargs={}, work_id="id-1")
    back = verify_work(value, purpose="celery", name="t", args=(1,), kwargs=None, work_id="id-1")
    assert back.assignation_id == "op-1"
    changed: dict[str, Any]
    for changed in ({"name": "u"}, {"args": [2]}, {"work_id": "id-2"}, {"options": {}}):
        given: dict[str, Any] = {"name": "t", "args": [1], "kwargs": {}, "work_id": "id-1"}
        given.update(changed)
        with pytest.raises(InvalidSignedContext) as refused:
            verify_work(value, purpose="celery", **given)
        assert refused.value.reason == "bad-signature", changed


def test_arguments_without_a_canonical_form_are_refused() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(InvalidSignedContext) as refused:
        sign_work(ctx(), purpose="celery", name="t", args=cycle, kwargs={})
    assert refused.value.reason == "invalid"
