"""Values a forger with write access to the task store could put under the reserved argument,
and the reason each must be refused with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.test import override_settings

from koherent._users import StaticUserRef
from koherent.context import AuditContext
from koherent.django_tasks import PURPOSE
from koherent.django_tasks.kwarg import binding
from koherent.signing import MAX_SIGNED_LENGTH, _bound, _current_signer, sign_context

#: Each kind of forgery, and the reason logged when it is refused.
REASONS = {
    "tampered": "bad-signature",
    "truncated": "bad-signature",
    "wrong-key": "bad-signature",
    "other-arguments": "bad-signature",
    "other-task": "bad-signature",
    "other-purpose": "bad-signature",
    "unsigned": "unsigned",
    "oversized": "oversized",
    "signed-garbage": "malformed",
    "signed-invalid": "invalid",
    "garbage": "not-a-string",
}


def claim(user_pk: Any) -> AuditContext:
    """The identity a forger claims."""
    return AuditContext(
        assignation_id="forged-op", app="forged-app", user_ref=StaticUserRef(user_pk)
    )


def signed_raw(payload: str, bind: str) -> str:
    """``payload`` correctly signed for ``bind``, whatever it holds."""
    return f"{payload}:{_current_signer(PURPOSE).signature(_bound(bind, payload))}"


def genuine(module_path: str, args: Sequence[Any], ctx: AuditContext) -> str:
    """What Koherent itself would store for this call."""
    return sign_context(ctx, bind=binding(module_path, args, {}), purpose=PURPOSE)


def forge(
    kind: str, module_path: str, args: Sequence[Any], ctx: AuditContext, how: Any = None
) -> Any:
    """A forged value of ``kind`` for a call of ``module_path`` with ``args``."""
    bind = binding(module_path, args, {})
    valid = genuine(module_path, args, ctx)
    if kind == "tampered":
        position, character = how if how is not None else (0.5, "~")
        index = int(position * len(valid))
        if valid[index] == character:
            character = "A" if character != "A" else "B"
        return valid[:index] + character + valid[index + 1 :]
    if kind == "truncated":
        return valid[: int((0.5 if how is None else how) * len(valid))]
    if kind == "wrong-key":
        with override_settings(KOHERENT={"SIGNING_KEY": f"not-the-key-{how}"}):
            return sign_context(ctx, bind=bind, purpose=PURPOSE)
    if kind == "other-arguments":
        return sign_context(ctx, bind=binding(module_path, [*args, "x"], {}), purpose=PURPOSE)
    if kind == "other-task":
        return sign_context(ctx, bind=binding("tests.tasks.jobs.fail", args, {}), purpose=PURPOSE)
    if kind == "other-purpose":
        return sign_context(ctx, bind=bind, purpose="celery")  # a Celery header's
    if kind == "unsigned":
        return valid.rpartition(":")[0]
    if kind == "oversized":
        return valid + "x" * (MAX_SIGNED_LENGTH + 1)
    if kind == "signed-garbage":
        return signed_raw(f"9|{'x' if how is None else how}", bind)
    if kind == "signed-invalid":
        return signed_raw(f"1|not a valid id|app||{ctx.user_id}", bind)
    if kind == "garbage":
        return 42 if how is None else how
    raise ValueError(f"unknown forgery {kind!r}")
