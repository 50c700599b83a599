#!/usr/bin/env python3
"""Koherent's test command (run by ``make test``): lint, types, and the suite on every backend.

1. Probes the services the suite can use (PostgreSQL, Redis, RabbitMQ) and says which are up.
   With ``KOHERENT_REQUIRE_SERVICES=1`` (CI) a missing service is an error, not a skip.
2. ruff (lint and format), mypy --strict and the import layers (``lint-imports``, the
   contracts in pyproject.toml), unless ``--no-lint``.
3. The suite on PostgreSQL (when up), then on SQLite, then the files of ``MYSQL_PASS`` on
   MySQL/MariaDB (when up). On PostgreSQL the test apps' models are captured by triggers
   (``KOHERENT_TEST_CAPTURE=trigger``); a second PostgreSQL pass captures them by signals
   (``KOHERENT_TEST_CAPTURE=signal``) for the files that pin signal capture's write path
   (``SIGNAL_PASS``; the paths among the pytest arguments instead, if any). ``--capture``
   picks the passes. SQLite and MySQL capture by signals (their only mode).
4. One more cell of the version matrix through nox (``KOHERENT_MATRIX``, default
   ``tests-3.13(django='6.0')``; ``KOHERENT_MATRIX=none`` skips it), without the soak
   scenarios, the tests that start processes and the PostgreSQL pass on signal capture (all
   ran in step 3; ``make matrix`` runs every cell with them).

Arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MATRIX_CELL = "tests-3.13(django='6.0')"
#: What the extra cell leaves out (step 4): the soak scenarios and the tests that start
#: processes.
MATRIX_CELL_MARKS = "not soak and not processes"
#: ... and its PostgreSQL pass is the one on trigger capture (SQLite and MySQL/MariaDB pass on
#: signal capture, the PostgreSQL pass on signal capture runs in step 3).
MATRIX_CELL_OPTIONS = ("--capture", "trigger")
#: The second PostgreSQL pass, on signal capture: every test marked ``signal_capture`` (skipped
#: on the trigger pass) is in these files, with the other tests of signal capture's write path
#: (statements, records, the atomic save, the revert, routing).
SIGNAL_PASS = [
    "tests/test_history.py",
    "tests/test_records.py",
    "tests/test_touched_models.py",
    "tests/test_multidb.py",
    "tests/bench/test_save_paths.py",
    "tests/undo/test_query.py",
    "tests/undo/test_history_function.py",
    "tests/undo/test_revert.py",
    "tests/graphql/test_revert.py",
]

#: The MySQL/MariaDB pass: the capture of ``update()`` without ``UPDATE ... RETURNING``, the
#: migrations (assignation ids in ASCII columns), querying and reverting by assignation, the
#: records and the statements a first save sends (the paths among the pytest arguments
#: instead, if any).
MYSQL_PASS = [
    "tests/capture",
    "tests/undo",
    "tests/bench/test_query_rows.py",
    "tests/test_records.py",
    "tests/test_touched_models.py",
]

SERVICES = {
    "postgres": ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/koherent"),
    "mysql": ("KOHERENT_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "redis": ("KOHERENT_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": ("KOHERENT_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "rabbitmq": 5672}


def service_url(name: str) -> str:
    variable, default = SERVICES[name]
    return os.environ.get(variable) or default


def probe(name: str) -> str | None:
    """None when the service answers, else why not."""
    parsed = urlparse(service_url(name))
    host, port = parsed.hostname or "127.0.0.1", parsed.port or DEFAULT_PORTS[name]
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            if name == "redis":
                sock.sendall(b"PING\r\n")
                if not sock.recv(16).startswith(b"+PONG"):
                    return "no PONG"
            if name == "rabbitmq":
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                if not sock.recv(8):
                    return "no AMQP answer"
    except OSError as exc:
        return str(exc)
    if name == "postgres":
        return probe_postgres()
    if name == "mysql":
        return probe_mysql()
    return None


def probe_mysql() -> str | None:
    try:
        import pymysql
    except ImportError:
        return "PyMySQL is not installed"
    parsed = urlparse(service_url("mysql"))
    try:
        connection = pymysql.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            connect_timeout=5,
        )
        connection.close()
    except Exception as exc:  # any failure means "not usable"
        return str(exc).strip().splitlines()[0]
    return None


def probe_postgres() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    parsed = urlparse(service_url("postgres"))
    try:
        with psycopg.connect(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password or None,
            dbname="postgres",
            connect_timeout=5,
        ) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "not usable"
        return str(exc).strip().splitlines()[0]
    return None


def run(title: str, command: list[str], env: dict[str, str] | None = None) -> float:
    print(f"\n=== {title}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        print(f"\n*** {title} failed (exit {result.returncode}) after {elapsed:.0f} s")
        sys.exit(result.returncode)
    print(f"=== {title}: passed in {elapsed:.0f} s", flush=True)
    return elapsed


def pyenv_versions() -> str | None:
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    out = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout
    versions = [v for v in out.split() if v[:1].isdigit()]
    return ":".join(versions) or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-lint", action="store_true", help="skip ruff, mypy and lint-imports")
    parser.add_argument("--no-matrix", action="store_true", help="skip the extra matrix cell")
    parser.add_argument(
        "--backend",
        choices=["all", "postgres", "sqlite", "mysql"],
        default="all",
        help="which database",
    )
    parser.add_argument(
        "--capture",
        choices=["both", "trigger", "signal"],
        default="both",
        help="PostgreSQL passes: trigger capture, signal capture, or both (default)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()

    required = os.environ.get("KOHERENT_REQUIRE_SERVICES") == "1"
    status = {name: probe(name) for name in SERVICES}
    print("Services:")
    for name, problem in status.items():
        state = "up" if problem is None else f"DOWN ({problem})"
        print(f"  {name:9} {service_url(name):45} {state}")
    print("  sqlite    (embedded)                                    up")
    down = [name for name, problem in status.items() if problem is not None]
    if down and required:
        print(f"\nKOHERENT_REQUIRE_SERVICES=1 and {', '.join(down)} not answering: failing.")
        sys.exit(2)

    python = sys.executable
    if not args.no_lint:
        run("ruff check", [python, "-m", "ruff", "check", "."])
        run("ruff format", [python, "-m", "ruff", "format", "--check", "."])
        run("mypy --strict", [python, "-m", "mypy"])
        lint_imports = "from importlinter.cli import lint_imports_command; lint_imports_command()"
        run("import layers (lint-imports)", [python, "-c", lint_imports])

    up = ",".join(name for name, problem in status.items() if problem is None)
    base_env = {**os.environ, "KOHERENT_SERVICES": up, "PYTHONPATH": str(ROOT)}
    used: list[str] = []
    pytest = [python, "-m", "pytest", "-p", "no:cacheprovider", *args.pytest_args]
    # Paths among the arguments: those; otherwise the arguments on a pass's own list.
    paths = any(
        (ROOT / a.split("::")[0]).exists() for a in args.pytest_args if not a.startswith("-")
    )
    if args.backend in ("all", "postgres"):
        if status["postgres"] is None:
            pg_env = {**base_env, "KOHERENT_TEST_DB": "postgres"}
            if args.capture in ("both", "trigger"):
                run(
                    "tests on PostgreSQL (trigger capture)",
                    pytest,
                    {**pg_env, "KOHERENT_TEST_CAPTURE": "trigger"},
                )
                used.append("PostgreSQL (trigger capture)")
            if args.capture in ("both", "signal"):
                run(
                    "tests on PostgreSQL (signal capture)",
                    pytest if paths else [*pytest, *SIGNAL_PASS],
                    {**pg_env, "KOHERENT_TEST_CAPTURE": "signal"},
                )
                used.append("PostgreSQL (signal capture)")
        else:
            print("\n=== tests on PostgreSQL: skipped, PostgreSQL is down")
    if args.backend in ("all", "sqlite"):
        run("tests on SQLite", pytest, {**base_env, "KOHERENT_TEST_DB": "sqlite"})
        used.append("SQLite")
    if args.backend in ("all", "mysql"):
        if status["mysql"] is None:
            run(
                "tests on MySQL/MariaDB",
                pytest if paths else [*pytest, *MYSQL_PASS],
                {**base_env, "KOHERENT_TEST_DB": "mysql"},
            )
            used.append("MySQL/MariaDB")
        else:
            print("\n=== tests on MySQL/MariaDB: skipped, MySQL/MariaDB is down")

    cell = os.environ.get("KOHERENT_MATRIX", DEFAULT_MATRIX_CELL)
    if not args.no_matrix and cell != "none":
        env = dict(base_env)
        versions = pyenv_versions()
        if versions:
            env["PYENV_VERSION"] = versions
        # The soak scenarios and the tests that start workers, servers or other processes ran
        # above (on the main versions), as did the PostgreSQL pass on signal capture: the
        # extra cell checks the library in process on the newest versions, PostgreSQL with
        # trigger capture, SQLite and MySQL/MariaDB (the last two capture by signals), which
        # keeps CI within 20 minutes. `make matrix` runs every cell in full.
        nox = [python, "-m", "nox", "-r", "-s", cell]
        command = [*nox, "--", *MATRIX_CELL_OPTIONS, "--", "-m", MATRIX_CELL_MARKS]
        run(f"matrix cell {cell}", command, env)
        used.append(f"matrix cell {cell}")

    print(f"\nAll passed. Backends and cells used: {', '.join(used)}.")
    states = (f"{n} {'up' if p is None else 'down'}" for n, p in status.items())
    print(f"Services: {', '.join(states)}")


if __name__ == "__main__":
    main()
