"""The entry point of the revert, :func:`revert_assignation` (internal: see
:mod:`koherent.revert`).

One transaction (two when the records live on another database), one new assignation the
revert runs as, the plan read under the locks, the permission check and the refusals, the
writes, and a WARNING for every revert, refusal and failure.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Literal, overload

from django.db import DatabaseError, transaction

from koherent._logging import get_logger
from koherent._validation import validate_assignation_id
from koherent.context import assignation as open_assignation
from koherent.context import current
from koherent.records import ensure_record
from koherent.revert._apply import apply
from koherent.revert._plan import check_revert_permissions, gather
from koherent.revert._values import (
    REVERT_ORIGIN,
    ConflictKind,
    ProgressCallback,
    RevertPlan,
    RevertResult,
)
from koherent.revert._work import effective_batch_size
from koherent.revert.errors import AlreadyReverted, RevertConflict, RevertError
from koherent.routing import history_database, record_database

if TYPE_CHECKING:
    from koherent.context import AuditContext

__all__ = ["revert_assignation", "revert_logger"]

#: Every revert that writes, and every refusal, at WARNING: who reverted what, through what.
revert_logger = get_logger("koherent.revert")


def ensure_revertible(plan: RevertPlan, *, force: bool = False) -> None:
    """Raise the refusal :func:`revert_assignation` would raise for ``plan``, if any.

    :class:`AlreadyReverted` when the assignation was reverted before, :class:`RevertConflict`
    when the plan has conflicts; ``force`` lifts both, except a protected relation, which it
    cannot lift. A dry run's plan can be checked with it before asking to apply it.
    """
    if plan.reverted_by and not force:
        raise AlreadyReverted(plan.assignation_id, plan.reverted_by)
    protected = any(c.kind is ConflictKind.PROTECTED for c in plan.conflicts)
    if plan.conflicts and (protected or not force):  # force cannot lift a protection
        raise RevertConflict(plan)


@overload
def revert_assignation(
    assignation_id: str,
    *,
    dry_run: Literal[True],
    force: bool = ...,
    using: str | None = ...,
    batch_size: int | None = ...,
    progress: ProgressCallback | None = ...,
    user: Any = ...,
    via: str | None = ...,
) -> RevertPlan: ...


@overload
def revert_assignation(
    assignation_id: str,
    *,
    dry_run: Literal[False] = ...,
    force: bool = ...,
    using: str | None = ...,
    batch_size: int | None = ...,
    progress: ProgressCallback | None = ...,
    user: Any = ...,
    via: str | None = ...,
) -> RevertResult: ...


def revert_assignation(
    assignation_id: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    using: str | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    user: Any = None,
    via: str | None = None,
) -> RevertPlan | RevertResult:
    """Undo every change of an assignation, in one transaction.

    With ``dry_run=True`` returns the :class:`RevertPlan` (what would be deleted, restored,
    re-created, and the conflicts) and writes nothing. Otherwise returns a
    :class:`RevertResult`, or raises:

    - :class:`AssignationNotFound` for an id with no record and no history;
    - :class:`AlreadyReverted` when a live revert of it exists (unless ``force``);
    - :class:`RevertConflict` listing the conflicts (unless ``force``);
    - :class:`RevertPermissionDenied` when ``user`` lacks a permission the revert needs;
    - :class:`RevertError` when the database refuses a write (a unique value taken since, a
      protected relation); nothing is changed then.

    The revert runs as a new assignation with origin ``revert`` and parent
    ``assignation_id``, under the user and app of the context it is called in.

    ``user``: the user on whose behalf the revert runs (a view's ``request.user``). It is
    recorded as the revert's user (and so owns the revert's assignation), and must hold the
    add, change and delete permissions of everything the revert writes, the objects its
    deletions cascade to included (:func:`check_revert_permissions`). The check is made inside
    the revert's transaction, against the plan read under the locks, i.e. the one applied.
    A dry run is not refused: compare its ``required_permissions`` with
    :func:`missing_revert_permissions`. Without ``user`` (trusted code: a script, a command)
    nothing is checked. ``via`` names the entry point in the WARNING the ``koherent.revert``
    logger writes for each revert (``"admin"``, ``"graphql"``, ``"command"``; default
    ``"python"``).

    ``using`` names the database; without it, the one the database router writes the
    assignation's history to (see :mod:`koherent.routing`), the lock reads included.

    ``batch_size`` is the number of objects per statement (default 1,000); ``progress`` is
    called as ``progress(stage, done, total)`` while writing.
    """
    validate_assignation_id(assignation_id)
    db = using or history_database(assignation_id, write=True)
    batch = effective_batch_size(db, batch_size)
    if dry_run:
        return gather(assignation_id, using=db, batch_size=batch, lock=False, progress=None).plan()
    acting = _authenticated(user)
    who = _describe(acting) if user is not None else _describe_context()
    try:
        with (
            transaction.atomic(using=db),
            # The revert's record, when it lives on another database, commits with the revert.
            (
                transaction.atomic(using=records)
                if (records := record_database(db, write=True)) != db
                else contextlib.nullcontext()
            ),
            open_assignation(
                origin=REVERT_ORIGIN,
                parent_assignation_id=assignation_id,
                **({"user": acting} if acting is not None else {}),
            ) as ctx,
        ):
            work = gather(assignation_id, using=db, batch_size=batch, lock=True, progress=progress)
            plan = work.plan()
            if user is not None:
                # Against the plan read under the locks: the one applied below.
                check_revert_permissions(user, plan)
            ensure_revertible(plan, force=force)
            _ensure_revert_record(ctx, db)
            deleted, restored, recreated = apply(work, force=force, progress=progress)
    except DatabaseError as exc:
        revert_logger.warning(
            "koherent: reverting assignation %s failed (%s via %s), nothing was changed: %s",
            assignation_id,
            who,
            via or "python",
            exc,
        )
        raise RevertError(
            f"reverting assignation {assignation_id} failed and nothing was changed: {exc}"
        ) from exc
    except RevertError as exc:
        revert_logger.warning(
            "koherent: revert of assignation %s refused (%s via %s): %s",
            assignation_id,
            who,
            via or "python",
            str(exc).splitlines()[0],
        )
        raise
    revert_logger.warning(
        "koherent: %s reverted assignation %s via %s as %s (%d deleted, %d restored, "
        "%d re-created%s)",
        who,
        assignation_id,
        via or "python",
        ctx.assignation_id,
        deleted,
        restored,
        recreated,
        f", {len(plan.conflicts)} conflict(s) forced" if plan.conflicts else "",
    )
    return RevertResult(
        assignation_id=assignation_id,
        revert_assignation_id=ctx.assignation_id or "",
        plan=plan,
        deleted=deleted,
        restored=restored,
        recreated=recreated,
        forced_conflicts=plan.conflicts if force else (),
    )


def _authenticated(user: Any) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _describe(user: Any) -> str:
    if user is None:
        return "an anonymous user"
    get_username = getattr(user, "get_username", None)
    name = get_username() if callable(get_username) else ""
    return f"user {user.pk} ({name!r})" if name else f"user {user.pk}"


def _describe_context() -> str:
    ctx = current()
    try:
        user_pk = ctx.user_id
    except Exception:  # the log line must not fail the revert
        user_pk = None
    parts = [f"user {user_pk}" if user_pk is not None else "no user"]
    if ctx.app:
        parts.append(f"app {ctx.app!r}")
    return " ".join(parts)


def _ensure_revert_record(ctx: AuditContext, using: str) -> None:
    """The revert's record, written even when it changes nothing (it marks the revert)."""
    if ctx.assignation_id:
        ensure_record(ctx, ctx.assignation_id, using)  # on the records' database (routing)
