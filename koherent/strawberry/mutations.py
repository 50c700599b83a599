"""The ``revertAssignation(id, dryRun, force)`` mutation.

Add it to a schema by inheriting :class:`KoherentMutation`::

    @strawberry.type
    class Mutation(KoherentMutation):
        ...

It runs :func:`koherent.revert_assignation` for the users
``KOHERENT["GRAPHQL_REVERT_PERMISSION"]`` allows (active staff users by default; others get a
GraphQL error with code ``FORBIDDEN``, dry runs included), on their behalf: the revert is
recorded as theirs, and a revert (not a dry run) also needs the model permissions of every
write it makes, cascades included (:func:`koherent.revert.check_revert_permissions`, the
admin's check); without them it is a ``FORBIDDEN`` error whose
``extensions.missingPermissions`` lists them, and nothing is changed. It answers one of

* ``RevertPlan``: what the revert would do (``dryRun: true``), conflicts listed;
* ``RevertResult``: what it did, and the assignation it ran as;
* ``RevertConflictError``: it was refused because it would undo or break later changes,
  listed in ``conflicts`` (pass ``force: true`` to revert anyway, except protected relations);
* ``AlreadyRevertedError``: a live revert of it exists (``force: true`` reverts again);
* ``AssignationNotFoundError``: nothing was written under that id;
* ``RevertFailedError``: the database refused a write.

In every error case nothing was changed.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import strawberry
from django.contrib.auth.models import AnonymousUser
from graphql import GraphQLError

from koherent import revert
from koherent.strawberry.extension import report_assignation_id
from koherent.strawberry.operation import user_of
from koherent.strawberry.permissions import FORBIDDEN, require_read, require_revert
from koherent.strawberry.types import Assignation, described, run_db

strawberry.enum(revert.RevertAction, name="RevertAction", description="What a revert does.")
strawberry.enum(
    revert.ConflictKind, name="RevertConflictKind", description="Why an object stops a revert."
)


@strawberry.type(description="One write of a revert.")
class PlannedChange:
    action: revert.RevertAction
    model_label: str
    object_id: strawberry.ID
    fields: list[str] = strawberry.field(
        description="For a restore, the fields that get their old value back."
    )

    @classmethod
    def of(cls, change: revert.PlannedChange) -> PlannedChange:
        return cls(
            action=change.action,
            model_label=change.model_label,
            object_id=strawberry.ID(str(change.object_id)),
            fields=list(change.fields),
        )


@strawberry.type(description="An object whose revert would lose or break something.")
class RevertConflictItem:
    kind: revert.ConflictKind
    model_label: str
    object_id: strawberry.ID
    assignation_id: str | None = strawberry.field(
        description="The assignation that changed the object later, if known."
    )
    date: dt.datetime | None = strawberry.field(description="When it did, if known.")
    fields: list[str] = strawberry.field(
        description="For an unrecorded change: the fields it changed."
    )
    message: str

    @classmethod
    def of(cls, conflict: revert.Conflict) -> RevertConflictItem:
        return cls(
            kind=conflict.kind,
            model_label=conflict.model_label,
            object_id=strawberry.ID(str(conflict.object_id)),
            assignation_id=conflict.assignation_id,
            date=conflict.date,
            fields=list(conflict.fields),
            message=str(conflict),
        )


@strawberry.type(description="What reverting an assignation does (a dry run), or did.")
class RevertPlan:
    assignation_id: str
    change_count: int = strawberry.field(description="History rows the assignation wrote.")
    models: list[str]
    deletes: list[PlannedChange]
    restores: list[PlannedChange]
    recreates: list[PlannedChange]
    unchanged: int = strawberry.field(
        description="Objects already in their state from before the assignation."
    )
    conflicts: list[RevertConflictItem]
    reverted_by: list[strawberry.ID] = strawberry.field(
        description="Live reverts of this assignation."
    )
    required_permissions: list[str] = strawberry.field(
        description="The model permissions a user needs to make this revert, cascades included."
    )
    summary: str

    @classmethod
    def of(cls, plan: revert.RevertPlan) -> RevertPlan:
        return cls(
            assignation_id=plan.assignation_id,
            change_count=plan.change_count,
            models=list(plan.models),
            deletes=[PlannedChange.of(c) for c in plan.deletes],
            restores=[PlannedChange.of(c) for c in plan.restores],
            recreates=[PlannedChange.of(c) for c in plan.recreates],
            unchanged=plan.unchanged,
            conflicts=[RevertConflictItem.of(c) for c in plan.conflicts],
            reverted_by=[strawberry.ID(r) for r in plan.reverted_by],
            required_permissions=list(plan.required_permissions),
            summary=plan.summary(),
        )


@strawberry.type(description="What a revert did.")
class RevertResult:
    assignation_id: str
    revert_assignation_id: str = strawberry.field(
        description="The assignation the revert ran as (origin revert)."
    )
    plan: RevertPlan
    deleted: int
    restored: int
    recreated: int
    forced_conflicts: list[RevertConflictItem] = strawberry.field(
        description="The conflicts `force: true` overrode."
    )
    summary: str

    @described("The assignation the revert ran as.")
    def revert_assignation(self, info: strawberry.Info) -> Assignation | None:
        from koherent.models import Assignation as Record

        assignation_id = self.revert_assignation_id

        def fetch() -> Assignation | None:
            require_read(info, assignation_id)
            return Assignation.of(Record.objects.filter(pk=assignation_id).first())

        return run_db(fetch)  # type: ignore[no-any-return]

    @classmethod
    def of(cls, result: revert.RevertResult) -> RevertResult:
        return cls(
            assignation_id=result.assignation_id,
            revert_assignation_id=result.revert_assignation_id,
            plan=RevertPlan.of(result.plan),
            deleted=result.deleted,
            restored=result.restored,
            recreated=result.recreated,
            forced_conflicts=[RevertConflictItem.of(c) for c in result.forced_conflicts],
            summary=result.summary(),
        )


@strawberry.type(description="The revert was refused: it would undo or break later changes.")
class RevertConflictError:
    message: str
    conflicts: list[RevertConflictItem]
    plan: RevertPlan


@strawberry.type(description="The assignation was reverted already.")
class AlreadyRevertedError:
    message: str
    assignation_id: str
    reverted_by: list[strawberry.ID]


@strawberry.type(description="Nothing was written under this assignation id.")
class AssignationNotFoundError:
    message: str
    assignation_id: str


@strawberry.type(description="The database refused a write of the revert; nothing changed.")
class RevertFailedError:
    message: str


RevertOutcome = Annotated[
    RevertPlan
    | RevertResult
    | RevertConflictError
    | AlreadyRevertedError
    | AssignationNotFoundError
    | RevertFailedError,
    strawberry.union(
        "RevertOutcome",
        description="The plan (dry run) or the result of a revert, or why it was refused.",
    ),
]


def revert_outcome(
    assignation_id: str, *, dry_run: bool, force: bool, user: Any = None
) -> RevertOutcome:
    """Revert (or plan to) and turn Koherent's answer or refusal into a GraphQL value.

    ``user`` (``AnonymousUser`` for nobody) is the user the revert runs for: recorded, and
    checked by :func:`koherent.revert.check_revert_permissions`; a refusal is a GraphQL error
    with code ``FORBIDDEN`` and ``extensions.missingPermissions``.
    """
    try:
        if dry_run:
            return RevertPlan.of(revert.revert_assignation(assignation_id, dry_run=True))
        result = revert.revert_assignation(assignation_id, force=force, user=user, via="graphql")
        report_assignation_id(result.revert_assignation_id)
        return RevertResult.of(result)
    except revert.RevertPermissionDenied as error:
        raise GraphQLError(
            str(error),
            extensions={"code": FORBIDDEN, "missingPermissions": list(error.missing)},
        ) from None
    except revert.RevertConflict as error:
        return RevertConflictError(
            message=str(error),
            conflicts=[RevertConflictItem.of(c) for c in error.conflicts],
            plan=RevertPlan.of(error.plan),
        )
    except revert.AlreadyReverted as error:
        return AlreadyRevertedError(
            message=str(error),
            assignation_id=error.assignation_id,
            reverted_by=[strawberry.ID(r) for r in error.reverted_by],
        )
    except revert.AssignationNotFound as error:
        return AssignationNotFoundError(message=str(error), assignation_id=error.assignation_id)
    except revert.RevertError as error:
        return RevertFailedError(message=str(error))


@strawberry.type
class KoherentMutation:
    """The audit trail's mutations; inherit it in your ``Mutation`` type."""

    @described(
        "Undo every change of an assignation, in one transaction (`dryRun`: only say what it "
        "would do). Allowed by the GRAPHQL_REVERT_PERMISSION setting (staff users by default); "
        "a revert also needs the model permissions of everything it writes, cascades included."
    )
    def revert_assignation(
        self,
        info: strawberry.Info,
        id: strawberry.ID,
        dry_run: bool = False,
        force: bool = False,
    ) -> RevertOutcome:
        assignation_id = str(id)

        def run() -> RevertOutcome:
            require_revert(info, assignation_id)
            user = user_of(info.context) or AnonymousUser()
            return revert_outcome(assignation_id, dry_run=dry_run, force=force, user=user)

        return run_db(run)  # type: ignore[no-any-return]
