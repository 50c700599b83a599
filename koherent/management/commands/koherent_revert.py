"""``manage.py koherent_revert <assignation_id> [--dry-run] [--force] [--yes]``: undo an
assignation.

Prints the plan (``--dry-run``) or what was done, with a progress bar on stderr for large
reverts. A revert prints its plan and asks for confirmation on a terminal unless ``--yes``;
with no terminal (a script, a cron job) and no ``--yes`` it is refused before anything is
read. The revert is recorded as ``--user``'s; without ``--user`` its app records the operating
system user who ran the command (``--app``, default ``koherent_revert``, then ``@`` and the OS
user name: ``koherent_revert@deploy``). Every revert is logged at WARNING by the
``koherent.revert`` logger, with the OS user.

Exit status: 0 done (or, with ``--dry-run``, the revert would go through); 1 unknown or
malformed assignation id, unknown user, no terminal to confirm on and no ``--yes``; 2 refused:
conflicts, or already reverted (pass ``--force``), or not confirmed at the prompt; 3 the
database refused a write (nothing was changed).
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

import koherent
from koherent.exceptions import AssignationSpansDatabases
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
    ensure_revertible,
    revert_assignation,
)

#: Reverts writing at least this many objects show a progress bar (unless ``--no-progress``).
PROGRESS_THRESHOLD = 200
_BAR = 30
#: The app recorded for a revert run without ``--user`` and ``--app``, before ``@<OS user>``.
DEFAULT_APP = "koherent_revert"
_NOT_IN_APP = re.compile(r"[^A-Za-z0-9._:/+-]")


def os_user() -> str:
    """The name of the operating system user running the command (``uid<n>`` without one)."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        name = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return _NOT_IN_APP.sub("_", name)[:50] or "unknown"


class Command(BaseCommand):
    help = "Revert an assignation: undo every change it made, in one transaction."
    _shown = False
    # call_command(..., stdin=...) reads the confirmation from it (as createsuperuser does).
    stealth_options = ("stdin",)

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
            "--yes",
            action="store_true",
            help="Revert without asking for confirmation (needed when stdin is not a terminal).",
        )
        parser.add_argument(
            "--user",
            default=None,
            help="Username or primary key recorded as the reverter (without it, the app "
            "records the OS user).",
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
        stdin = options.get("stdin") or sys.stdin
        confirm = not options["dry_run"] and not options["yes"]
        if confirm and not _is_terminal(stdin):
            raise CommandError(
                "stdin is not a terminal, so the revert cannot be confirmed: pass --yes to "
                "revert without confirmation (or --dry-run to see the plan). Nothing was changed.",
                returncode=EXIT_USAGE,
            )
        operator = os_user()
        via = f"command (OS user {operator!r})"
        try:
            user = resolve_user(options["user"], using)
            app = options["app"]
            if user is None:
                # Nobody named: the OS user who ran the command is recorded with the app.
                app = f"{app or DEFAULT_APP}@{operator}"[:100]
            with koherent.context(
                **({"user": user} if user is not None else {}),
                **({"app": app} if app else {}),
            ):
                if options["dry_run"] or confirm:
                    plan = revert_assignation(
                        assignation_id,
                        dry_run=True,
                        using=using,
                        batch_size=options["batch_size"],
                    )
                    self._print_plan(plan, dry_run=options["dry_run"])
                    ensure_revertible(plan, force=options["force"])
                    if options["dry_run"]:
                        return
                    self._confirm(stdin, plan)
                self._shown = False
                result = revert_assignation(
                    assignation_id,
                    force=options["force"],
                    using=using,
                    batch_size=options["batch_size"],
                    progress=None if options["no_progress"] else self._progress,
                    via=via,
                )
        except CommandError:
            raise
        except (AssignationNotFound, AssignationSpansDatabases, ValueError) as exc:
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

    def _confirm(self, stdin: Any, plan: RevertPlan) -> None:
        self.stdout.write(
            f"Revert assignation {plan.assignation_id}? Type 'yes' to continue: ", ending=""
        )
        self.stdout.flush()
        answer = stdin.readline()
        if answer.strip().lower() != "yes":
            raise CommandError("Revert cancelled; nothing was changed.", returncode=EXIT_REFUSED)

    def _print_plan(self, plan: RevertPlan, *, dry_run: bool = True) -> None:
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
        if dry_run:
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


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed stream
        return False
