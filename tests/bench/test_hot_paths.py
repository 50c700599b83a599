"""The caches and fast constructors of the per-message and per-scope paths change nothing.

* ``AuditContext`` sets its slots directly in ``__init__``: it stays frozen, takes its fields
  by position and by name, and ``evolve``/``dataclasses.replace`` still work.
* ``sign_context`` keeps the payloads it built and ``verify_context`` the fields it checked:
  the values are the same as without the caches, a bad value is refused every time (errors are
  never cached), every verification gets its own user reference, and a change of the settings
  a conversion depends on forgets the converted primary keys.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from koherent import signing
from koherent._users import StaticUserRef
from koherent.context import AuditContext
from koherent.exceptions import InvalidSignedContext

FIELDS = ("assignation_id", "app", "task_id", "origin", "parent_assignation_id", "user_ref")


def test_audit_context_init_takes_every_field_in_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(AuditContext)) == FIELDS
    assert tuple(inspect.signature(AuditContext).parameters) == FIELDS
    ref = StaticUserRef(7)
    by_position = AuditContext("a-1", "shop", "t-1", "celery", "p-1", ref)
    values: tuple[Any, ...] = ("a-1", "shop", "t-1", "celery", "p-1", ref)
    by_name = AuditContext(**dict(zip(FIELDS, values, strict=True)))
    for ctx in (by_position, by_name):
        assert [getattr(ctx, name) for name in FIELDS] == [
            "a-1",
            "shop",
            "t-1",
            "celery",
            "p-1",
            ref,
        ]
    assert by_position == by_name
    assert [getattr(AuditContext(), name) for name in FIELDS] == [None] * 6


def test_audit_context_stays_frozen_and_evolves() -> None:
    ctx = AuditContext(assignation_id="a-1", app="shop")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.app = "other"  # type: ignore[misc]
    changed = dataclasses.replace(ctx, app="other")
    assert (changed.assignation_id, changed.app, ctx.app) == ("a-1", "other", "shop")
    assert ctx.evolve(user=3).user_id == 3
    assert ctx.user_id is None


def _signed(ctx: AuditContext, bind: str = "task-1") -> str:
    return signing.sign_context(ctx, bind=bind, purpose="celery")


@pytest.mark.django_db
def test_signed_values_are_the_same_with_the_payload_cache() -> None:
    ctx = AuditContext(assignation_id="a-1", app="shop", user_ref=StaticUserRef(5))
    first = _signed(ctx)
    signing._payload.cache_clear()
    assert _signed(ctx) == first
    assert _signed(ctx) == first  # from the cache
    assert first.startswith("1|a-1|shop||5:")
    other = _signed(AuditContext(assignation_id="a-2", app="shop", user_ref=StaticUserRef(5)))
    assert other.startswith("1|a-2|shop||5:")


def test_a_bad_value_is_refused_every_time() -> None:
    bad = AuditContext(app="no spaces allowed")
    for _ in range(2):
        with pytest.raises(InvalidSignedContext) as refused:
            _signed(bad)
        assert refused.value.reason == InvalidSignedContext.INVALID
    # An int and a bool are different keys: True is never a user's primary key.
    assert _signed(AuditContext(user_ref=StaticUserRef(1))).startswith("1||||1:")
    with pytest.raises(InvalidSignedContext):
        _signed(AuditContext(user_ref=StaticUserRef(True)))


@pytest.mark.django_db
def test_verified_fields_and_users_come_back_the_same_each_time() -> None:
    ctx = AuditContext(assignation_id="a-1", app="shop", user_ref=StaticUserRef(5))
    refs = []
    for task_id in ("task-1", "task-2", "task-3"):
        got = signing.verify_context(
            _signed(ctx, bind=task_id),
            bind=task_id,
            purpose="celery",
            task_id=task_id,
            origin="celery",
        )
        assert (got.assignation_id, got.app, got.user_id, got.task_id) == (
            "a-1",
            "shop",
            5,
            task_id,
        )
        refs.append(got.user_ref)
    assert len({id(ref) for ref in refs}) == 3  # each task checks its own user


@pytest.mark.django_db
def test_a_malformed_or_invalid_verified_payload_is_refused_every_time() -> None:
    signer = signing._current_signer("celery")
    for payload, reason in (
        ("2|a-1|shop||5", InvalidSignedContext.MALFORMED),
        ("1|a 1|shop||5", InvalidSignedContext.INVALID),
        ("1|a-1|shop||not-a-number", InvalidSignedContext.INVALID),
    ):
        value = f"{payload}:{signer.signature(signing._bound('t', payload))}"
        for _ in range(2):
            with pytest.raises(InvalidSignedContext) as refused:
                signing.verify_context(value, bind="t", purpose="celery")
            assert refused.value.reason == reason, payload


@pytest.mark.django_db
def test_a_settings_change_forgets_converted_user_keys(settings: Any) -> None:
    ctx = AuditContext(user_ref=StaticUserRef(9))
    signing._user_pks.clear()
    signing.verify_context(_signed(ctx, bind="t"), bind="t", purpose="celery")
    assert signing._user_pks == {"9": 9}
    settings.KOHERENT = {**settings.KOHERENT, "APP": "elsewhere"}
    assert signing._user_pks == {}
