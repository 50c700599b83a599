"""The errors of a revert: each means nothing was changed.

Re-exported by :mod:`koherent.revert` (and the first four by :mod:`koherent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied

from koherent.exceptions import KoherentError
from koherent.revert._values import ConflictKind, RevertPlan

__all__ = [
    "AlreadyReverted",
    "AssignationNotFound",
    "RevertConflict",
    "RevertError",
    "RevertPermissionDenied",
]


class RevertError(KoherentError):
    """A revert was refused or failed; nothing was changed."""


class AssignationNotFound(KoherentError, LookupError):
    """No record and no history row has this assignation id."""

    def __init__(self, assignation_id: str) -> None:
        self.assignation_id = assignation_id
        super().__init__(
            f"unknown assignation {assignation_id!r}: no Assignation record and no history row"
        )


class RevertConflict(RevertError):
    """Reverting would undo or break later changes; :attr:`conflicts` lists them."""

    def __init__(self, plan: RevertPlan) -> None:
        self.plan = plan
        self.conflicts = plan.conflicts
        super().__init__(self.message())

    def message(self, *, how: str = "pass force=True", name: str = "force=True") -> str:
        """The error, telling how to override it: ``how`` to do it, ``name`` of the switch.

        The admin and ``koherent_revert`` word it for their checkbox and ``--force``.
        """
        shown = "\n".join(f"  - {c}" for c in self.conflicts[:20])
        more = len(self.conflicts) - 20
        extra = f"\n  ... and {more} more" if more > 0 else ""
        if any(c.kind is ConflictKind.PROTECTED for c in self.conflicts):
            advice = f"Protected relations block the deletions, even with {name}."
        else:
            advice = f"{how[:1].upper()}{how[1:]} to revert anyway."
        return (
            f"cannot revert assignation {self.plan.assignation_id}: "
            f"{len(self.conflicts)} conflict(s):\n{shown}{extra}\n"
            f"Nothing was changed. {advice}"
        )


class RevertPermissionDenied(RevertError, PermissionDenied):
    """The user lacks permissions the revert needs; :attr:`missing` names them.

    A :class:`django.core.exceptions.PermissionDenied` too, so a view that lets it through
    answers 403.
    """

    def __init__(self, assignation_id: str, user: Any, missing: Sequence[str]) -> None:
        self.assignation_id = assignation_id
        self.user_pk = getattr(user, "pk", None)
        self.missing = tuple(missing)
        who = f"user {self.user_pk}" if self.user_pk is not None else "an anonymous user"
        super().__init__(
            f"{who} may not revert assignation {assignation_id}: missing permission(s) "
            f"{', '.join(self.missing)}. Nothing was changed."
        )


class AlreadyReverted(RevertError):
    """The assignation was reverted already (by a revert that is itself not reverted)."""

    def __init__(self, assignation_id: str, reverted_by: Sequence[str]) -> None:
        self.assignation_id = assignation_id
        self.reverted_by = tuple(reverted_by)
        super().__init__(self.message())

    def message(self, *, how: str = "pass force=True", name: str = "force=True") -> str:
        """The error, telling how to override it (see :meth:`RevertConflict.message`)."""
        return (
            f"assignation {self.assignation_id} was already reverted by "
            f"{', '.join(self.reverted_by)}; revert that revert to bring the changes back, "
            f"or {how} to revert again"
        )
