"""``manage.py koherent_history_function``: the PostgreSQL functions reading a first page.

Says which function this code reads an assignation's first page with (``HISTORY_FUNCTION``),
whether ``migrate`` created it, and which functions of earlier code are left in the database
(a change of the tracked models or their columns gives a new one). ``--drop-stale`` drops
those, in one transaction, and keeps this code's: run it once no process of the earlier code
is left (one still running reads without its function outside a transaction, and gets the
error inside one). Not PostgreSQL, or no function for this database: says so, exits 0. A
failed drop exits with status 3 and drops nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from koherent.management.commands._options import EXIT_FAILED, add_database_option
from koherent.query import drop_stale_history_functions, history_functions


class Command(BaseCommand):
    help = (
        "Show the PostgreSQL function reading an assignation's first page, and the ones of "
        "earlier code left in the database; --drop-stale drops those."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_database_option(parser, help="The database to look at (default: default).")
        parser.add_argument(
            "--drop-stale",
            action="store_true",
            help="Drop the functions of earlier code (run once none of its processes is left).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using: str = options["database"] or DEFAULT_DB_ALIAS
        if using not in connections:
            raise CommandError(f"unknown database {using!r}")
        try:
            found = history_functions(using)
        except DatabaseError as exc:
            raise CommandError(f"could not read the functions of database {using}: {exc}") from exc
        if found.current is None:
            self.stdout.write(f"Database {using}: history is read without a function here.")
        elif found.installed:
            self.stdout.write(f"Database {using}: reads with {found.current}.")
        else:
            self.stdout.write(
                f"Database {using}: {found.current} is missing (run migrate); "
                "reads take the two-query path."
            )
        if not found.stale:
            self.stdout.write("No function of earlier code.")
            return
        if not options["drop_stale"]:
            self.stdout.write(f"Functions of earlier code: {', '.join(found.stale)}")
            self.stdout.write("Drop them with --drop-stale once none of its processes is left.")
            return
        try:
            dropped = drop_stale_history_functions(using)
        except DatabaseError as exc:
            raise CommandError(
                f"could not drop the functions (none was dropped): {exc}", returncode=EXIT_FAILED
            ) from exc
        self.stdout.write(f"Dropped: {', '.join(dropped)}")
