"""What the runner starts in a fresh process: preparing a database, or one scenario.

Each scenario runs in its own process, so no signal receiver, cache or connection of one
scenario can affect the next, and so each can use its own database::

    python -m benchmarks.child prepare
    python -m benchmarks.child scenario write --size tiny --out /tmp/write.json

The database is the one named by ``KOHERENT_BENCH_DB`` (set by the runner).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()


def prepare() -> None:
    """Create every table: migrated apps first, then the contender apps, then the triggers."""
    os.environ["KOHERENT_BENCH_WIDE"] = "1"  # the tables of query_wide's extra models too
    _setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", run_syncdb=True, verbosity=0)
    call_command("pgtrigger", "install", verbosity=0)


def _logger(name: str) -> Any:
    started = time.monotonic()

    def log(message: str) -> None:
        print(
            f"[{time.monotonic() - started:7.1f}s] {name}: {message}", file=sys.stderr, flush=True
        )

    return log


def scenario(name: str, size: str, out: str) -> None:
    from benchmarks.scenarios import BY_ID

    if BY_ID[name].wide:
        os.environ["KOHERENT_BENCH_WIDE"] = "1"
    _setup()
    from benchmarks.sizes import size_of

    module = importlib.import_module(BY_ID[name].module)
    result = module.run(size_of(name, size), _logger(name))
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, default=str)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.child")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare")
    one = sub.add_parser("scenario")
    one.add_argument("name")
    one.add_argument("--size", default="full")
    one.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare()
    else:
        scenario(args.name, args.size, args.out)


if __name__ == "__main__":
    main()
