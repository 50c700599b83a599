"""``manage.py koherent_revert <assignation_id> [--dry-run] [--force]``: undo an assignation.

Prints the plan (``--dry-run``) or what was done, with a progress bar on stderr for large
reverts. Exit status: 0 done (or, with ``--dry-run``, the revert would go through); 1 unknown
or malformed assignation id, unknown user; 2 refused: conflicts, or already reverted (pass
``--force``); 3 the database refused a write (nothing was changed).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import koherent
from koherent.management.commands._options import (
    EXIT_FAILED,
    EXIT_REFUSED,
    EXIT_USAGE,
    add_database_option,
    resolve_user,
)
from koherent.revert import (
    AlreadyReverted,
    AssignationNotFound,
    RevertConflict,
    RevertError,
    RevertPlan,
    revert_assignation,
)

#: Reverts writing at least this many objects show a progress bar (unless ``--no-progress``).
PROGRESS_THRESHOLD = 200
_BAR = 30


class Command(BaseCommand):
    help = "Revert an assignation: undo every change it made, in one transaction."
    _shown = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("assignation_id", help="The assignation to revert.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Print the plan and write nothing."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Revert despite conflicts, or an earlier revert of the same assignation.",
        )
        parser.add_argument(
            "--user", default=None, help="Username or primary key recorded as the reverter."
        )
        parser.add_argument("--app", default=None, help="App name recorded for the revert.")
        parser.add_argument(
            "--batch-size", type=int, default=None, help="Objects per statement (default 1000)."
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar, however large."
        )
        add_database_option(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        assignation_id: str = options["assignation_id"]
        using: str | None = options["database"]
        try:
            user = resolve_user(options["user"], using)
            with koherent.context(
                **({"user": user} if user is not None else {}),
                **({"app": options["app"]} if options["app"] else {}),
            ):
                if options["dry_run"]:
                    plan = revert_assignation(
                        assignation_id,
                        dry_run=True,
                        using=using,
                        batch_size=options["batch_size"],
                    )
                    self._print_plan(plan)
                    self._refuse_if_blocked(plan, force=options["force"])
                    return
                self._shown = False
                result = revert_assignation(
                    assignation_id,
                    force=options["force"],
                    using=using,
                    batch_size=options["batch_size"],
                    progress=None if options["no_progress"] else self._progress,
                )
        except CommandError:
            raise
        except (AssignationNotFound, ValueError) as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from exc
        except (RevertConflict, AlreadyReverted) as exc:
            message = exc.message(how="pass --force", name="--force")
            raise CommandError(message, returncode=EXIT_REFUSED) from exc
        except RevertError as exc:
            raise CommandError(str(exc), returncode=EXIT_FAILED) from exc
        if self._shown:
            self.stderr.write("")
        self.stdout.write(self.style.SUCCESS(result.summary().capitalize() + "."))
        if result.forced_conflicts:
            self.stdout.write(f"{len(result.forced_conflicts)} conflict(s) overridden:")
            for conflict in result.forced_conflicts:
                self.stdout.write(f"  - {conflict}")

    def _refuse_if_blocked(self, plan: RevertPlan, *, force: bool) -> None:
        if plan.reverted_by and not force:
            raise AlreadyReverted(plan.assignation_id, plan.reverted_by)
        if plan.conflicts and not force:
            raise RevertConflict(plan)

    def _print_plan(self, plan: RevertPlan) -> None:
        self.stdout.write(
            f"Plan to revert {plan.assignation_id} ({plan.change_count} change(s) over "
            f"{', '.join(plan.models) or 'no model'}): {plan.summary()}."
        )
        for change in plan.changes:
            self.stdout.write(f"  {change}")
        if plan.reverted_by:
            self.stdout.write(f"Already reverted by {', '.join(plan.reverted_by)}.")
        for conflict in plan.conflicts:
            self.stdout.write(f"  conflict: {conflict}")
        self.stdout.write("Dry run: nothing was written.")

    def _progress(self, stage: str, done: int, total: int) -> None:
        """A bar on stderr for the writes of large reverts."""
        if stage == "read" or total < PROGRESS_THRESHOLD:
            return
        self._shown = True
        filled = _BAR if total <= 0 else min(_BAR, _BAR * done // total)
        percent = 100 if total <= 0 else min(100, 100 * done // total)
        self.stderr.write(
            f"\r{stage:<9} [{'#' * filled}{'.' * (_BAR - filled)}] {percent:3d}% {done}/{total}",
            ending="",
        )
        self.stderr.flush()
