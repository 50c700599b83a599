"""Which database Koherent reads and writes, asked of Django's database router.

Writes already follow the router: a history row goes where the router sends its history
model. Every read follows it the same way, so a project that routes a tracked app to another
database finds its history there. The rules (see docs/django.md, "Several databases"):

- **History rows** of a model are read from ``router.db_for_read(history_model)`` and a revert
  locks, reads and writes them on ``router.db_for_write(history_model)``.
- **An assignation's history** is read from the one database that holds its rows. When every
  tracked model's history reads from the same database (the usual case) that is the database,
  found without a query. When they are spread over several, Koherent looks (one query per
  tracked model of those databases) for the ones holding rows of the assignation: none, the
  first of them; one, that one; more than one,
  :class:`~koherent.exceptions.AssignationSpansDatabases` (pass ``using=`` to read or revert
  one database's part: a revert is one transaction, which cannot span two databases).
- **The Assignation record** lives next to the history when that database holds Koherent's
  tables (the router lets ``koherent`` migrate there: ``router.allow_migrate_model``);
  otherwise where the router sends :class:`~koherent.models.Assignation`
  (``db_for_write`` / ``db_for_read``; ``default`` without a router). So a tracked app routed
  alone to its own database, with ``koherent`` migrated on ``default`` only, keeps its history
  on its database and its assignation records on ``default``.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, router

from koherent._registry import TrackedModel, tracked_models
from koherent.exceptions import AssignationSpansDatabases

__all__ = [
    "history_database",
    "history_databases",
    "record_database",
]


def _history_db(t: TrackedModel, *, write: bool) -> str:
    if write:
        return str(router.db_for_write(t.history_model))
    return str(router.db_for_read(t.history_model))


def history_databases(*, write: bool = False) -> tuple[str, ...]:
    """The databases tracked history is read from (written to, with ``write``), in the order
    of ``settings.DATABASES``; ``("default",)`` without a router."""
    from django.db import connections

    if not router.routers:  # no router: everything on default, without asking each model
        return (DEFAULT_DB_ALIAS,)
    found = {_history_db(t, write=write) for t in tracked_models()}
    if not found:
        return (DEFAULT_DB_ALIAS,)
    order = list(connections.settings)
    return tuple(
        sorted(found, key=lambda db: (order.index(db) if db in order else len(order), db))
    )


def history_database(assignation_id: str, *, write: bool = False) -> str:
    """The database holding the history of ``assignation_id`` (see the module's rules).

    No query unless the tracked models' history is spread over several databases.
    """
    databases = history_databases(write=write)
    if len(databases) == 1:
        return databases[0]
    holding = [
        db
        for db in databases
        if any(
            t.history_model._default_manager.using(db)
            .filter(assignation_id=assignation_id)
            .exists()
            for t in tracked_models()
            if _history_db(t, write=write) == db
        )
    ]
    if len(holding) > 1:
        raise AssignationSpansDatabases(assignation_id, tuple(holding))
    return holding[0] if holding else databases[0]


def record_database(using: str | None = None, *, write: bool = False) -> str:
    """The database of the :class:`~koherent.models.Assignation` records that go with the
    history on ``using``: ``using`` itself when Koherent's tables may live there, else where
    the router sends ``Assignation`` (:func:`koherent._assignations.record_database`, beside
    the model; imported on first use, so that this module imports before Django is set up)."""
    from koherent._assignations import record_database

    return record_database(using, write=write)
