"""Bring history written by koherent 0.2 up to what this version reads.

History rows written by koherent 0.2 have ``history_user`` and ``assignation_id``, and (0.2's
``ProvenanceField``) a ``client`` foreign key to ``authentikate.Client``; they lack
``user_pk`` and ``app``, and no :class:`~koherent.models.Assignation` record exists for their
assignations. :func:`upgrade` (the ``koherent_upgrade`` management command) fills that in:

1. ``user_pk`` from ``history_user_id``, where ``user_pk`` is empty;
2. ``app`` from ``client`` (the client's ``client_id``), where ``app`` is empty and the history
   model still has its ``client`` column;
3. an :class:`~koherent.models.Assignation` record (origin ``imported``) for every assignation
   id found in history rows without one: the user and app of its first row, and that row's
   date as ``created``.

Every step works in batches (rows by primary key, assignations by id), each in its own
transaction, and only touches what is still missing: it can be stopped and run again, and a
second run changes nothing. :func:`carry_client_to_app` is step 2 alone, for the migration
that drops ``client`` (:class:`koherent.operations.CarryClientToApp`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Required, TypedDict, Unpack

from django.db import models, router, transaction
from django.db.models import Min
from django.db.models.functions import Cast

from koherent._validation import validate_app
from koherent.routing import record_database

#: The origin of the records written for assignations found in koherent 0.2's rows.
IMPORTED_ORIGIN = "imported"
#: Rows (or assignations) per batch, each batch in its own transaction.
DEFAULT_BATCH_SIZE = 2000

#: ``progress(step, done, total)``: called after each batch.
Progress = Callable[[str, int, int], None]


class UpgradeRefused(Exception):
    """The data cannot be carried over as it is; the message names the rows and the fix."""


@dataclass
class StepResult:
    """What one step found (and, unless a dry run, did) for one history model."""

    step: str
    label: str
    #: Rows or assignations that needed the step.
    todo: int = 0
    #: Rows or assignations written (0 in a dry run).
    done: int = 0
    #: Values that could not be carried over, with why.
    refused: list[str] = field(default_factory=list)


def _no_progress(step: str, done: int, total: int) -> None:
    return None


class StepOptions(TypedDict, total=False):
    """The keyword arguments of every step (``using`` is required)."""

    #: The database of the history rows.
    using: Required[str]
    #: Rows (or assignations) per batch: :data:`DEFAULT_BATCH_SIZE` unless given.
    batch_size: int
    #: Count what the step would do, and change nothing.
    dry_run: bool
    #: ``progress(step, done, total)`` after each batch.
    progress: Progress


def _options(options: StepOptions) -> tuple[str, int, bool, Progress]:
    return (
        options["using"],
        options.get("batch_size", DEFAULT_BATCH_SIZE),
        options.get("dry_run", False),
        options.get("progress", _no_progress),
    )


def _batches(
    queryset: models.QuerySet[Any], key: str, batch_size: int
) -> Iterable[list[dict[str, Any]]]:
    """``queryset``'s rows as dicts, in batches ordered by ``key`` (keyset pagination)."""
    last: Any = None
    while True:
        page = queryset.order_by(key)
        if last is not None:
            page = page.filter(**{f"{key}__gt": last})
        rows = list(page[:batch_size])
        if not rows:
            return
        yield rows
        last = rows[-1][key]


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def backfill_user_pk(
    history_model: type[models.Model], **options: Unpack[StepOptions]
) -> StepResult:
    """Set ``user_pk`` to ``history_user_id`` (as text) where ``user_pk`` is empty."""
    using, batch_size, dry_run, progress = _options(options)
    result = StepResult("user_pk", history_model._meta.label)
    if not _has_field(history_model, "history_user") or not _has_field(history_model, "user_pk"):
        return result
    pk = history_model._meta.pk
    assert pk is not None
    pending = history_model._default_manager.db_manager(using).filter(
        user_pk__isnull=True, history_user_id__isnull=False
    )
    result.todo = pending.count()
    if dry_run or not result.todo:
        return result
    for rows in _batches(pending.values(pk.attname), pk.attname, batch_size):
        ids = [row[pk.attname] for row in rows]
        with transaction.atomic(using=using):
            result.done += (
                history_model._default_manager.db_manager(using)
                .filter(**{f"{pk.attname}__in": ids}, user_pk__isnull=True)
                .update(user_pk=Cast("history_user_id", models.CharField()))
            )
        progress(result.step, result.done, result.todo)
    return result


def _app_of_client(client: Any) -> str:
    """The ``app`` value of an ``authentikate.Client`` (its ``client_id``), validated."""
    return validate_app(getattr(client, "client_id", None))


def carry_client_to_app(
    history_model: type[models.Model],
    *,
    client_field: str = "client",
    **options: Unpack[StepOptions],
) -> StepResult:
    """Set ``app`` to the ``client_id`` of the row's ``client`` where ``app`` is empty.

    A client whose id is not a valid app (:func:`koherent._validation.validate_app`) is not
    carried: its rows keep ``client`` and an empty ``app``, and the result lists it in
    ``refused``. Works on real models and on the historical models of a migration.
    """
    using, batch_size, dry_run, progress = _options(options)
    result = StepResult("app", history_model._meta.label)
    if not _has_field(history_model, client_field) or not _has_field(history_model, "app"):
        return result
    relation = history_model._meta.get_field(client_field)
    client_model = relation.related_model
    assert isinstance(client_model, type)
    attname = f"{client_field}_id"
    pk = history_model._meta.pk
    assert pk is not None
    pending = history_model._default_manager.db_manager(using).filter(
        app__isnull=True, **{f"{attname}__isnull": False}
    )
    client_ids = set(pending.values_list(attname, flat=True).distinct())
    apps_by_client: dict[Any, str] = {}
    for client in client_model._default_manager.db_manager(using).filter(pk__in=client_ids):
        try:
            apps_by_client[client.pk] = _app_of_client(client)
        except ValueError as exc:
            count = pending.filter(**{attname: client.pk}).count()
            result.refused.append(
                f"client {client.pk} ({exc}; {count} row(s) of {history_model._meta.db_table})"
            )
    carried = pending.filter(**{f"{attname}__in": list(apps_by_client)})
    result.todo = carried.count()
    if dry_run or not result.todo:
        return result
    for rows in _batches(carried.values(pk.attname, attname), pk.attname, batch_size):
        by_app: dict[str, list[Any]] = {}
        for row in rows:
            by_app.setdefault(apps_by_client[row[attname]], []).append(row[pk.attname])
        with transaction.atomic(using=using):
            for app, ids in by_app.items():
                result.done += (
                    history_model._default_manager.db_manager(using)
                    .filter(**{f"{pk.attname}__in": ids}, app__isnull=True)
                    .update(app=app)
                )
        progress(result.step, result.done, result.todo)
    return result


def _first_rows(
    history_model: type[models.Model], using: str, firsts: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The first row (by date, then id) of each assignation in ``firsts`` (id -> first date)."""
    pk = history_model._meta.pk
    assert pk is not None
    columns = ["assignation_id", "history_date", pk.attname, "user_pk", "app"]
    if _has_field(history_model, "history_user"):
        columns.append("history_user_id")
    rows = (
        history_model._default_manager.db_manager(using)
        .filter(assignation_id__in=list(firsts), history_date__in=set(firsts.values()))
        .order_by("assignation_id", "history_date", pk.attname)
        .values(*columns)
    )
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["assignation_id"]
        if key not in found and row["history_date"] == firsts[key]:
            found[key] = row
    return found


def backfill_assignations(
    history_model: type[models.Model], **options: Unpack[StepOptions]
) -> StepResult:
    """Write the missing :class:`~koherent.models.Assignation` records of this model's rows.

    A record written here (origin ``imported``) takes the user, app and date of the
    assignation's first row; when another model has an earlier row of the same assignation,
    the record moves to that one. Records Koherent wrote itself are left alone.
    """
    from koherent.models import Assignation

    using, batch_size, dry_run, progress = _options(options)

    result = StepResult("assignations", history_model._meta.label)
    records = Assignation._default_manager.db_manager(record_database(using, write=True))
    grouped = (
        history_model._default_manager.db_manager(using)
        .filter(assignation_id__isnull=False)
        .values("assignation_id")
        .annotate(first=Min("history_date"))
    )
    total = grouped.count()
    seen = 0
    for batch in _batches(grouped, "assignation_id", batch_size):
        seen += len(batch)
        firsts = {row["assignation_id"]: row["first"] for row in batch}
        existing = {
            r["id"]: r
            for r in records.filter(id__in=list(firsts)).values("id", "origin", "created")
        }
        stale = {
            key
            for key, r in existing.items()
            if r["origin"] == IMPORTED_ORIGIN and r["created"] > firsts[key]
        }
        wanted = [key for key in firsts if key not in existing or key in stale]
        result.todo += len(wanted)
        if dry_run or not wanted:
            progress(result.step, seen, total)
            continue
        first_rows = _first_rows(history_model, using, {k: firsts[k] for k in wanted})
        made = []
        for key in wanted:
            row = first_rows[key]
            user_pk = row["user_pk"]
            user_id = row.get("history_user_id")
            if user_pk is None and user_id is not None:
                user_pk = str(user_id)
            made.append(
                Assignation(
                    id=key,
                    user_id=user_id,
                    user_pk=user_pk,
                    app=row["app"],
                    origin=IMPORTED_ORIGIN,
                    created=row["history_date"],
                )
            )
        with transaction.atomic(using=using):
            if stale:
                records.filter(id__in=stale, origin=IMPORTED_ORIGIN).delete()
            records.bulk_create(made, ignore_conflicts=True)
        result.done += len(made)
        progress(result.step, seen, total)
    return result


def history_models(using: str) -> list[type[models.Model]]:
    """Every Koherent history model whose table lives in ``using``."""
    from koherent._registry import tracked_models

    return [
        t.history_model
        for t in tracked_models()
        if router.allow_migrate_model(using, t.history_model)
    ]


def upgrade(
    *,
    using: str = "default",
    models_: Iterable[type[models.Model]] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    progress: Callable[[type[models.Model], str, int, int], None] | None = None,
) -> list[StepResult]:
    """Run the three steps on every history model (or on ``models_``); see the module doc.

    Records come last, so that they take the ``user_pk`` and ``app`` the first two steps
    filled in. Returns one :class:`StepResult` per model and step.
    """
    targets = list(models_) if models_ is not None else history_models(using)
    results: list[StepResult] = []
    for step in (backfill_user_pk, carry_client_to_app, backfill_assignations):
        for model in targets:

            def report(name: str, done: int, total: int, model: Any = model) -> None:
                if progress is not None:
                    progress(model, name, done, total)

            results.append(
                step(model, using=using, batch_size=batch_size, dry_run=dry_run, progress=report)
            )
    return results
