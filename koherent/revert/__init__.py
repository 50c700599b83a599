"""Undo an assignation: every object it changed goes back to its state from before it.

:func:`revert_assignation` works out a plan per object from the history:

- an object the assignation **created** (its first row there is a creation) is deleted;
- an object it **deleted** (first row a deletion) is re-created, with the same primary key, from
  the state its deletion row kept;
- an object it **updated** gets back the state of its history row just before the
  assignation's first change to it (whoever wrote that row), many-to-many fields tracked by
  simple-history (``HistoryField(m2m_fields=[...])``) included.

Objects whose current state already is the target are left alone. Writes go in an order
foreign keys allow: re-creations first (referenced models before the models referring to them),
then restores, then deletions (referring models first), so no statement ever points at a row
that is not there, even where constraints are checked immediately.

**Conflicts.** Before writing, the objects are locked (``SELECT ... FOR UPDATE``) and their
history read again: a row written after the assignation's first change to an object by another
assignation is a conflict (the revert would silently undo that change), and so is an object
outside the revert that a deletion would take with it (a cascade), an update whose state
before cannot be known (the object predates its history), or an object changed by a write no
history row recorded (raw SQL, another process: see
:func:`koherent.revert._conflicts.read_unrecorded`; forced, the revert leaves the fields only
that write changed as they are). Conflicts raise :class:`RevertConflict` listing each one,
unless ``force=True``. A concurrent change to a locked object waits for the revert to commit;
one committed before the lock is seen.

**Atomic and audited.** Everything runs in one transaction: a failure anywhere leaves every row
as it was. The revert runs as its own assignation (origin ``revert``, parent the reverted one),
written with bulk statements whose history rows are stamped with it like any other change, so
it shows in the history and can itself be reverted. Reverting an assignation that a live revert
already undid raises :class:`AlreadyReverted`, unless ``force=True``.

**Permissions.** A revert made on someone's behalf (``user=``: the admin, the GraphQL
mutation) needs the add, change and delete permissions of everything it writes, including what
its deletions cascade to, as Django's admin asks before its own delete
(:func:`check_revert_permissions`); the check runs inside the transaction, against the plan
applied. Every revert, refusal and failure is logged at WARNING by the ``koherent.revert``
logger.

**Cost.** Queries grow with the number of models and of batches (``batch_size`` objects per
statement), not with the number of changes: reading, locking, conflict checks and writes are
all done per model and batch.

**Where it lives.** This package is the facade: import from ``koherent.revert``. Inside,
``_values`` (the plan, the result, the conflicts), ``errors``, ``_work`` (what a revert knows
while it works), ``_read`` and ``_conflicts`` (reading the history and finding the conflicts),
``_plan`` (the plan and the permission check), ``_apply`` (the writes) and ``_service`` (the
entry point). The history rows are written by :mod:`koherent._history_rows`, shared with the
capture of ``queryset.update()``.
"""

from __future__ import annotations

from koherent.revert._plan import check_revert_permissions, missing_revert_permissions
from koherent.revert._service import ensure_revertible, revert_assignation
from koherent.revert._service import revert_logger as revert_logger
from koherent.revert._values import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from koherent.revert._values import REVERT_ORIGIN as REVERT_ORIGIN
from koherent.revert._values import (
    Conflict,
    ConflictKind,
    PlannedChange,
    RevertAction,
    RevertPlan,
    RevertResult,
)
from koherent.revert._values import ProgressCallback as ProgressCallback
from koherent.revert.errors import (
    AlreadyReverted,
    AssignationNotFound,
    RevertConflict,
    RevertError,
    RevertPermissionDenied,
)

__all__ = [
    "AlreadyReverted",
    "AssignationNotFound",
    "Conflict",
    "ConflictKind",
    "PlannedChange",
    "RevertAction",
    "RevertConflict",
    "RevertError",
    "RevertPermissionDenied",
    "RevertPlan",
    "RevertResult",
    "check_revert_permissions",
    "ensure_revertible",
    "missing_revert_permissions",
    "revert_assignation",
]
