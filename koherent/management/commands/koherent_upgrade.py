"""``manage.py koherent_upgrade``: make history written by koherent 0.2 first-class.

Fills ``user_pk`` from ``history_user``, ``app`` from 0.2's ``client``, and writes the missing
``Assignation`` records (origin ``imported``): see :mod:`koherent.upgrade`. Run it after
``migrate``. It works in batches, each committed on its own; stopping it and running it again
goes on where it stopped, and a run with nothing left to do changes nothing.

``--dry-run`` counts what would be written, and writes nothing. Exits with status 2 when a
client could not be carried into ``app`` (its id is not a valid app name); the message names
the clients and the rows, which keep their ``client``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, models

from koherent.management.commands._options import EXIT_REFUSED, add_database_option
from koherent.upgrade import DEFAULT_BATCH_SIZE, StepResult, history_models, upgrade

_BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Backfill user_pk, app (from koherent 0.2's client) and Assignation records for "
        "history written by koherent 0.2. Idempotent and resumable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_database_option(
            parser, help="The database whose history rows to upgrade (default: default)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be written; write nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows or assignations per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not draw the progress bar."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using: str = options["database"] or DEFAULT_DB_ALIAS
        batch_size: int = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        dry_run: bool = options["dry_run"]
        targets = history_models(using)
        if not targets:
            self.stdout.write("No history model tracked by Koherent: nothing to do.")
            return
        show = not options["no_progress"] and not dry_run
        tty = show and self.stdout.isatty()

        def progress(model: type[models.Model], step: str, done: int, total: int) -> None:
            if not show:
                return
            filled = _BAR_WIDTH if not total else min(_BAR_WIDTH, _BAR_WIDTH * done // total)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            line = f"{model._meta.label} {step}: [{bar}] {done}/{total}"
            if tty:
                self.stdout.write(f"\r{line}", ending="")
                if done >= total:
                    self.stdout.write("")
            else:
                self.stdout.write(line)

        results = upgrade(
            using=using,
            models_=targets,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=progress,
        )
        self._summary(results, dry_run)
        refused = [f"{r.label}: {item}" for r in results for item in r.refused]
        if refused:
            self.stderr.write(
                "These clients were not carried into app, because their client_id is not a "
                "valid app name (koherent._validation.validate_app); their rows keep client and "
                "an empty app. Fix the client ids (or set app on those rows yourself), then run "
                "koherent_upgrade again:\n  " + "\n  ".join(refused)
            )
            sys.exit(EXIT_REFUSED)

    def _summary(self, results: list[StepResult], dry_run: bool) -> None:
        verb = "would write" if dry_run else "wrote"
        for result in results:
            if not result.todo and not result.refused:
                continue
            count = result.todo if dry_run else result.done
            what = {
                "user_pk": "user_pk of {} row(s)",
                "app": "app (from client) of {} row(s)",
                "assignations": "{} assignation record(s)",
            }[result.step].format(count)
            self.stdout.write(f"{result.label}: {verb} {what}")
        if not any(r.todo for r in results):
            self.stdout.write("Nothing to upgrade: every history row is up to date.")
        elif dry_run:
            self.stdout.write("Dry run: nothing was written.")
