"""A PostgreSQL server of the test's own, to terminate backends of and to restart.

Restarting the PostgreSQL server the suite shares would break every other test run on the
machine, so the database-fault scenarios run a server of their own: ``initdb`` in a temporary
directory, ``pg_ctl`` on a free port of 127.0.0.1, trust authentication, the schema of the
test database copied into it (``pg_dump --schema-only``). PostgreSQL refuses to run as root:
as root the server programs run as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import services

DATABASE = "koherent_faults"


def _bin_directory() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class PostgresServer:
    """One PostgreSQL server in a directory of its own; :meth:`url` names its database."""

    directory: Path
    binaries: Path
    port: int = field(init=False)
    starts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        command = [str(self.binaries / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it accepts connections."""
        self.starts += 1
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop it; ``immediate`` is a crash: no checkpoint, every backend killed at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def connect(
        self, database: str = DATABASE, application: str = "koherent-test"
    ) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self.url(database), autocommit=True, application_name=application, connect_timeout=10
        )

    def copy_schema(self, source_database: str, source_url: str) -> None:
        """Create :data:`DATABASE` with the schema (not the rows) of ``source_database``."""
        with self.connect("postgres") as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        parsed = psycopg.conninfo.conninfo_to_dict(source_url)
        dump = subprocess.run(
            [
                str(self.binaries / "pg_dump"),
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                "-h",
                str(parsed.get("host") or "127.0.0.1"),
                "-p",
                str(parsed.get("port") or 5432),
                "-U",
                str(parsed.get("user") or "postgres"),
                source_database,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        # psql, not a driver: a dump holds psql commands (``\\restrict``) too.
        subprocess.run(
            [str(self.binaries / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url()],
            input=dump,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


@contextlib.contextmanager
def own_postgres(source_database: str) -> Iterator[PostgresServer]:
    """A running server of the test's own holding the schema of ``source_database`` (the
    shared server's test database), stopped and removed at the end."""
    binaries = _bin_directory()
    if binaries is None or (os.geteuid() == 0 and not _has_postgres_user()):
        message = "no PostgreSQL server programs (initdb, pg_ctl) to run a server of our own"
        if services.required():
            pytest.fail(message)
        pytest.skip(message)
    directory = Path(tempfile.mkdtemp(prefix="koherent-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PostgresServer(directory, binaries)
    try:
        server.initdb()
        server.start()
        server.copy_schema(source_database, services.url("postgres"))
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True
