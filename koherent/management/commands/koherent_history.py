"""``manage.py koherent_history <assignation_id>``: every change of an assignation.

Prints a table (date in UTC, change, object, user, app, task, fields) whose columns are as wide
as the header and the first batch of rows need (a longer cell of a later batch pushes the rest
of its line right), or with ``--json`` one JSON
document: ``{"assignation": {...} | null, "changes": [{"kind", "date", "model", "object_id",
"history_id", "user_id", "app", "assignation_id", "task_id", "fields": [{"field", "old",
"new"}]}]}``. The assignation is found by :func:`koherent.query.get_assignation` (through the
database router, or on ``--database``); an unknown id exits with status 1.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from koherent.exceptions import AssignationSpansDatabases
from koherent.management.commands._options import EXIT_USAGE, add_database_option
from koherent.query import (
    FieldChange,
    HistoryEntry,
    effective_changes,
    get_assignation,
    history_for_assignation,
)

if TYPE_CHECKING:
    from koherent.models import Assignation

_COLUMNS = ("date (UTC)", "change", "object", "user", "app", "task", "fields")


def _text(value: Any) -> str:
    return "∅" if value is None else str(value)


def _fields(entry: HistoryEntry, changes: list[FieldChange]) -> str:
    if entry.kind.value == "CREATE":
        return "; ".join(f"{c.field}={_text(c.new)}" for c in changes)
    if entry.kind.value == "DELETE":
        return "; ".join(f"{c.field}={_text(c.old)}" for c in changes)
    return "; ".join(f"{c.field}: {_text(c.old)} → {_text(c.new)}" for c in changes) or "-"


def _cells(entry: HistoryEntry, changes: list[FieldChange]) -> tuple[list[str], str]:
    date = entry.date.astimezone(dt.UTC) if entry.date.tzinfo else entry.date
    cells = [
        date.strftime("%Y-%m-%d %H:%M:%S.%f"),
        entry.kind.value.lower(),
        f"{entry.model_label} {entry.object_id}",
        entry.user_id or "-",
        entry.app or "-",
        entry.task_id or "-",
    ]
    return cells, _fields(entry, changes)


def _chain(
    first: list[tuple[list[str], str]], rest: Iterator[tuple[list[str], str]]
) -> Iterator[tuple[list[str], str]]:
    yield from first
    yield from rest


class Command(BaseCommand):
    help = "Print every change written under an assignation, across tracked models."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("assignation_id", help="The assignation to show.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows read per round (default 500)."
        )
        add_database_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        assignation_id: str = options["assignation_id"]
        using: str | None = options["database"]
        try:
            history = history_for_assignation(
                assignation_id, using=using, batch_size=max(1, options["batch_size"])
            )
        except AssignationSpansDatabases as exc:
            raise CommandError(f"{exc} (--database)", returncode=EXIT_USAGE) from exc
        found = get_assignation(assignation_id, using=using)
        if found is None:
            raise CommandError(
                f"unknown assignation {assignation_id!r}: no Assignation record and no "
                f"history row",
                returncode=EXIT_USAGE,
            )
        # A stand-in (history written without a record) is shown as "no record".
        record = None if found._state.adding else found
        pages = history.pages()
        first = next(pages, None)
        all_pages = [] if first is None else [first]
        if options["json"]:
            self._json(record, all_pages, pages, using)
        else:
            self._table(assignation_id, record, all_pages, pages, using)

    def _rows(self, pages: Any, using: str | None) -> Any:
        for page in pages:
            entries = page.entries
            yield from zip(entries, effective_changes(entries, using=using), strict=True)

    def _table(
        self,
        assignation_id: str,
        record: Assignation | None,
        first: list[Any],
        rest: Any,
        using: str | None,
    ) -> None:
        if record is not None:
            self.stdout.write(
                f"Assignation {record.pk}: user {record.user_pk or '-'}, app "
                f"{record.app or '-'}, origin {record.origin}, parent {record.parent_id or '-'}, "
                f"created {record.created.isoformat()}"
            )
        else:
            self.stdout.write(f"Assignation {assignation_id} (no record)")
        count = 0
        # The first batch sets the widths (every row of an assignation of up to --batch-size
        # changes lines up); the rows stream, so a later batch cannot widen the columns.
        first_lines = [_cells(entry, changes) for entry, changes in self._rows(first, using)]
        widths = [len(name) for name in _COLUMNS[:-1]]
        for cells, _ in first_lines:
            widths = [max(w, len(cell)) for w, cell in zip(widths, cells, strict=True)]
        header = "  ".join(name.ljust(w) for name, w in zip(_COLUMNS, [*widths, 0], strict=True))
        self.stdout.write(header.rstrip())
        self.stdout.write("-" * len(header.rstrip()))
        later = (_cells(entry, changes) for entry, changes in self._rows(rest, using))
        for cells, fields in _chain(first_lines, later):
            count += 1
            line = "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True))
            self.stdout.write(f"{line}  {fields}")
        self.stdout.write(f"{count} change(s)")

    def _json(
        self, record: Assignation | None, first: list[Any], rest: Any, using: str | None
    ) -> None:
        head = None
        if record is not None:
            head = {
                "id": record.pk,
                "user_id": record.user_pk,
                "app": record.app,
                "origin": record.origin,
                "parent_id": record.parent_id,
                "task_id": record.task_id,
                "created": record.created,
            }
        changes = [
            {
                "kind": entry.kind.value,
                "date": entry.date,
                "model": entry.model_label,
                "object_id": entry.object_id,
                "history_id": entry.history_id,
                "user_id": entry.user_id,
                "app": entry.app,
                "assignation_id": entry.assignation_id,
                "task_id": entry.task_id,
                "fields": [{"field": c.field, "old": c.old, "new": c.new} for c in entry_changes],
            }
            for entry, entry_changes in self._rows([*first, *rest], using)
        ]
        self.stdout.write(
            json.dumps({"assignation": head, "changes": changes}, cls=DjangoJSONEncoder, indent=2)
        )
