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

import dataclasses
import datetime as dt
from typing import Annotated, Any, TypeVar

import strawberry
from django.contrib.auth.models import AnonymousUser
from graphql import GraphQLError

from koherent import revert
from koherent.exceptions import AssignationSpansDatabases
from koherent.strawberry._renamed import renamed
from koherent.strawberry.extension import report_assignation_id
from koherent.strawberry.operation import user_of
from koherent.strawberry.permissions import FORBIDDEN, require_revert
from koherent.strawberry.types import AssignationType, described, readable_assignation, run_db

T = TypeVar("T")


def _doc(description: str) -> Any:
    """A described field (of a type strawberry reads from the annotation)."""
    return strawberry.field(description=description)


def _copied(cls: type[T], value: Any, **converted: Any) -> T:
    """The GraphQL value ``cls`` of the revert's ``value``: each field is the attribute of the
    same name (a tuple as a list), but for those given in ``converted``."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    copied = {f.name: getattr(value, f.name) for f in fields if f.init and f.name not in converted}
    lists = {name: list(v) for name, v in copied.items() if isinstance(v, tuple)}
    return cls(**{**copied, **lists, **converted})


strawberry.enum(revert.RevertAction, name="RevertAction", description="What a revert does.")
strawberry.enum(
    revert.ConflictKind, name="RevertConflictKind", description="Why an object stops a revert."
)


@strawberry.type(name="PlannedChange", description="One write of a revert.")
class PlannedChangeType:
    action: revert.RevertAction
    model_label: str
    object_id: strawberry.ID
    fields: list[str] = _doc("For a restore, the fields that get their old value back.")

    @classmethod
    def of(cls, change: revert.PlannedChange) -> PlannedChangeType:
        return _copied(cls, change, object_id=strawberry.ID(str(change.object_id)))


@strawberry.type(description="An object whose revert would lose or break something.")
class RevertConflictItem:
    kind: revert.ConflictKind
    model_label: str
    object_id: strawberry.ID
    assignation_id: str | None = _doc("The assignation that changed the object later, if known.")
    date: dt.datetime | None = _doc("When it did, if known.")
    fields: list[str] = _doc("For an unrecorded change: the fields it changed.")
    message: str

    @classmethod
    def of(cls, conflict: revert.Conflict) -> RevertConflictItem:
        return _copied(
            cls, conflict, object_id=strawberry.ID(str(conflict.object_id)), message=str(conflict)
        )


@strawberry.type(
    name="RevertPlan", description="What reverting an assignation does (a dry run), or did."
)
class RevertPlanType:
    assignation_id: str
    change_count: int = _doc("History rows the assignation wrote.")
    models: list[str]
    deletes: list[PlannedChangeType]
    restores: list[PlannedChangeType]
    recreates: list[PlannedChangeType]
    unchanged: int = _doc("Objects already in their state from before the assignation.")
    conflicts: list[RevertConflictItem]
    reverted_by: list[strawberry.ID] = _doc("Live reverts of this assignation.")
    required_permissions: list[str] = _doc(
        "The model permissions a user needs to make this revert, cascades included."
    )
    summary: str

    @classmethod
    def of(cls, plan: revert.RevertPlan) -> RevertPlanType:
        return _copied(
            cls,
            plan,
            deletes=[PlannedChangeType.of(c) for c in plan.deletes],
            restores=[PlannedChangeType.of(c) for c in plan.restores],
            recreates=[PlannedChangeType.of(c) for c in plan.recreates],
            conflicts=[RevertConflictItem.of(c) for c in plan.conflicts],
            reverted_by=[strawberry.ID(r) for r in plan.reverted_by],
            summary=plan.summary(),
        )


@strawberry.type(name="RevertResult", description="What a revert did.")
class RevertResultType:
    assignation_id: str
    revert_assignation_id: str = _doc("The assignation the revert ran as (origin revert).")
    plan: RevertPlanType
    deleted: int
    restored: int
    recreated: int
    forced_conflicts: list[RevertConflictItem] = _doc("The conflicts `force: true` overrode.")
    summary: str

    @described("The assignation the revert ran as.")
    def revert_assignation(self, info: strawberry.Info) -> AssignationType | None:
        return readable_assignation(info, self.revert_assignation_id)

    @classmethod
    def of(cls, result: revert.RevertResult) -> RevertResultType:
        return _copied(
            cls,
            result,
            plan=RevertPlanType.of(result.plan),
            forced_conflicts=[RevertConflictItem.of(c) for c in result.forced_conflicts],
            summary=result.summary(),
        )


@strawberry.type(description="The revert was refused: it would undo or break later changes.")
class RevertConflictError:
    message: str
    conflicts: list[RevertConflictItem]
    plan: RevertPlanType


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
    RevertPlanType
    | RevertResultType
    | RevertConflictError
    | AlreadyRevertedError
    | AssignationNotFoundError
    | RevertFailedError,
    strawberry.union(
        "RevertOutcome",
        description="The plan (dry run) or the result of a revert, or why it was refused.",
    ),
]


#: ``extensions.code`` of the error refusing to revert an assignation with rows on several
#: databases (revert each database's part with ``koherent_revert --database``).
SPANS_DATABASES = "KOHERENT_ASSIGNATION_SPANS_DATABASES"


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
            return RevertPlanType.of(revert.revert_assignation(assignation_id, dry_run=True))
        result = revert.revert_assignation(assignation_id, force=force, user=user, via="graphql")
        report_assignation_id(result.revert_assignation_id)
        return RevertResultType.of(result)
    except revert.RevertPermissionDenied as error:
        raise GraphQLError(
            str(error),
            extensions={"code": FORBIDDEN, "missingPermissions": list(error.missing)},
        ) from None
    except revert.RevertConflict as error:
        return RevertConflictError(
            message=str(error),
            conflicts=[RevertConflictItem.of(c) for c in error.conflicts],
            plan=RevertPlanType.of(error.plan),
        )
    except revert.AlreadyReverted as error:
        return AlreadyRevertedError(
            message=str(error),
            assignation_id=error.assignation_id,
            reverted_by=[strawberry.ID(r) for r in error.reverted_by],
        )
    except revert.AssignationNotFound as error:
        return AssignationNotFoundError(message=str(error), assignation_id=error.assignation_id)
    except AssignationSpansDatabases as error:  # one transaction cannot span two databases
        raise GraphQLError(
            str(error),
            extensions={"code": SPANS_DATABASES, "databases": list(error.databases)},
        ) from None
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


def __getattr__(name: str) -> Any:
    # The former names of the types (PlannedChange, RevertPlan, RevertResult).
    return renamed(__name__, name)
